"""Features: one definition, batch and live computations agreeing on real data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.features import (
    ALL_FEATURES,
    DEFAULT_FEATURES,
    FeatureSpec,
    fill_gaps,
    orderbook_features,
)

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "WIFUSDT"]


@pytest.fixture(scope="module")
def real_ohlcv(linear_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Five symbols' hourly bars over the span they all trade, and their funding (ffilled)."""
    frames = [pd.read_csv(linear_dir / "1h" / f"{s}.csv") for s in SYMBOLS]
    start = max(f.timestamp_ms.iloc[0] for f in frames)
    frames = [f[f.timestamp_ms >= start].reset_index(drop=True) for f in frames]
    n = min(len(f) for f in frames)
    ohlcv = np.stack([f[["open", "high", "low", "close", "volume"]].to_numpy()[:n] for f in frames],
                     axis=1)  # fmt: skip
    funding = np.zeros((n, len(SYMBOLS)))
    closes = frames[0].timestamp_ms.to_numpy()[:n] + 3_600_000
    for k, s in enumerate(SYMBOLS):
        rates = pd.read_csv(linear_dir / "funding-8h" / f"{s}.csv")
        idx = np.searchsorted(rates.timestamp_ms.to_numpy(), closes, side="right") - 1
        funding[:, k] = np.where(idx >= 0, rates.funding_rate.to_numpy()[np.maximum(idx, 0)], 0.0)
    return ohlcv, funding


def stream_all(spec: FeatureSpec, ohlcv: np.ndarray, funding: np.ndarray) -> np.ndarray:
    stream = spec.stream()
    return np.stack([stream.update(ohlcv[t], funding[t]) for t in range(len(ohlcv))])


def test_batch_and_live_are_identical_from_the_same_first_bar(real_ohlcv):
    ohlcv, funding = real_ohlcv
    spec = FeatureSpec(ALL_FEATURES)
    batch = spec.batch(ohlcv, funding)
    live = stream_all(spec, ohlcv, funding)
    assert batch.shape == (len(ohlcv), 5, len(ALL_FEATURES))
    np.testing.assert_array_equal(batch, live)  # NaN where NaN, the same bits elsewhere
    assert np.isfinite(batch[spec.warmup :]).all()


def test_a_stream_started_later_agrees_to_1e9_after_the_warmup(real_ohlcv):
    ohlcv, funding = real_ohlcv
    spec = FeatureSpec(ALL_FEATURES)
    batch = spec.batch(ohlcv, funding)
    late = 1000
    live = stream_all(spec, ohlcv[late:], funding[late:])
    settled = slice(spec.warmup, None)
    np.testing.assert_allclose(live[settled], batch[late:][settled], rtol=0, atol=1e-9)
    macd = ALL_FEATURES.index("macd")
    early = np.abs(live[30, :, macd] - batch[late + 30, :, macd]).max()
    assert early > 1e-9  # the warm-up is needed: right after the start they differ


def test_values_mean_what_they_say():
    ohlcv = np.array([[[10, 12, 9, 11, 100]], [[11, 13, 10, 12, 300]]], dtype=float)
    spec = FeatureSpec(("log_return", "intraday_return", "range", "close_position"))
    out = spec.batch(ohlcv)
    assert np.isnan(out[0, 0, 0]) and out[1, 0, 0] == pytest.approx(np.log(12 / 11))
    assert out[0, 0, 1] == pytest.approx(np.log(11 / 10))
    assert out[0, 0, 2] == pytest.approx(3 / 11)
    assert out[1, 0, 3] == pytest.approx(2 / 3)


def test_spec_digest_identifies_the_features_and_their_version():
    a = FeatureSpec()
    assert a.names == DEFAULT_FEATURES and a.digest() == FeatureSpec().digest()
    assert FeatureSpec(DEFAULT_FEATURES[::-1]).digest() != a.digest()
    assert FeatureSpec(DEFAULT_FEATURES, version=2).digest() != a.digest()
    assert FeatureSpec.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError, match="unknown feature 'rsi_99'"):
        FeatureSpec(("rsi_99",))


def test_orderbook_features_on_the_real_bitstamp_book(data_dir: Path):
    frame = pd.read_csv(data_dir / "lob" / "bitstamp-btcusd-2015-05-01-lob20.csv")
    book = frame.drop(columns=["timestamp_ms"]).to_numpy(dtype=float)
    out = orderbook_features(book, levels=10)
    assert out.shape == (len(frame), 3 + 4 * 10)
    mid = np.exp(out[:, 0])
    assert np.all((mid > 200) & (mid < 300))  # BTC/USD on 2015-05-01
    assert np.all(out[:, 1] > 0)  # positive spread
    assert np.all(np.abs(out[:, 2]) <= 1)
    assert np.all(out[:, 3:13] > 0) and np.all(out[:, 23:33] < 0)  # asks above, bids below


def test_decision_windows_depend_only_on_their_own_bars(real_ohlcv):
    """What makes batched and per-bar decisions identical: a window's features are computed
    from its own ``length + warmup`` bars, whichever other windows share the pass."""
    ohlcv, _ = real_ohlcv
    spec = FeatureSpec(DEFAULT_FEATURES)
    length = 24
    ends = np.arange(spec.warmup + length + 100, spec.warmup + length + 700, 7)
    together = spec.windows(ohlcv, ends, length)
    alone = np.stack([spec.windows(ohlcv, ends[[i]], length)[0] for i in (0, 40, -1)])
    np.testing.assert_array_equal(alone, together[[0, 40, -1]])
    changed = ohlcv.copy()
    changed[: ends[0] - length - spec.warmup + 1] *= 3.0  # bars before the first window
    np.testing.assert_array_equal(spec.windows(changed, ends, length), together)
    # and after the warm-up they match features computed over all history (to 1e-9)
    full = spec.batch(ohlcv)
    np.testing.assert_allclose(together[-1], full[ends[-1] - length + 1 : ends[-1] + 1],
                               rtol=0, atol=1e-9)  # fmt: skip
    with pytest.raises(ValueError, match="needs 624 bars"):
        spec.windows(ohlcv, np.array([100]), length)


def test_missing_bars_become_flat_bars_at_the_previous_close():
    ohlcv = np.arange(30, dtype=float).reshape(3, 2, 5)
    ohlcv[0, 1] = np.nan  # before the series' first bar: stays missing
    ohlcv[1, 0] = np.nan
    filled = fill_gaps(ohlcv)
    assert np.isnan(filled[0, 1, :4]).all()
    np.testing.assert_array_equal(filled[1, 0], [3.0, 3.0, 3.0, 3.0, 0.0])
    np.testing.assert_array_equal(filled[2], ohlcv[2])
