"""Features: one definition, batch and live computations agreeing on real data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.features import (
    ALL_FEATURES,
    DEFAULT_FEATURES,
    DecisionFeatures,
    FeatureSpec,
    fill_gaps,
    orderbook_features,
)

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "WIFUSDT"]
HOUR_MS = 3_600_000


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


@pytest.fixture(scope="module")
def btc_and_wif(linear_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ohlcv[T, 2, 5])``: every hourly BTCUSDT bar (13,920 of them) and WIFUSDT's
    on the same hours (missing before its listing, ~1,000 bars in), with a few bars of each
    knocked out (gaps the features fill)."""
    btc, wif = (pd.read_csv(linear_dir / "1h" / f"{s}.csv") for s in ("BTCUSDT", "WIFUSDT"))
    starts = btc.timestamp_ms.to_numpy()
    columns = ["open", "high", "low", "close", "volume"]
    wif = wif.set_index("timestamp_ms").reindex(starts)[columns].to_numpy()
    ohlcv = np.stack([btc[columns].to_numpy(), wif], axis=1)
    ohlcv[[2000, 2001, 5000, 9000], 0] = np.nan
    ohlcv[[3000, 7000, 7001, 7002], 1] = np.nan
    return starts, ohlcv


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


def test_decision_windows_depend_only_on_bar_times_and_their_anchors_bars(real_ohlcv):
    """What makes batched and per-bar decisions identical: a window's features are computed
    from its anchor on, whichever other windows share the pass."""
    ohlcv, _ = real_ohlcv
    starts = np.arange(len(ohlcv)) * HOUR_MS + 1_700_000_000_000 // HOUR_MS * HOUR_MS
    spec = FeatureSpec(DEFAULT_FEATURES)
    assert spec.anchor_period > 1 and spec.lead == spec.warmup + spec.anchor_period - 1
    length = 24
    ends = np.arange(spec.lead + length + 100, spec.lead + length + 700, 7)
    together = spec.windows(ohlcv, starts, ends, length, HOUR_MS)
    alone = np.stack(
        [spec.windows(ohlcv, starts, ends[[i]], length, HOUR_MS)[0] for i in (0, 40, -1)]
    )
    np.testing.assert_array_equal(alone, together[[0, 40, -1]])
    anchors = spec.anchors(starts, ends, length, HOUR_MS)
    assert (starts[anchors] % (spec.anchor_period * HOUR_MS) == 0).all()  # on the time grid
    assert (anchors <= ends - length + 1 - spec.warmup).all()
    assert (anchors > ends - length + 1 - spec.warmup - spec.anchor_period).all()
    changed = ohlcv.copy()
    changed[: anchors[0]] *= 3.0  # bars before the first window's anchor
    np.testing.assert_array_equal(spec.windows(changed, starts, ends, length, HOUR_MS), together)
    # a history that begins later (another block, a restarted daemon) changes nothing
    cut = int(ends[0] - length - spec.lead + 1)
    later = spec.windows(ohlcv[cut:], starts[cut:], ends - cut, length, HOUR_MS)
    np.testing.assert_array_equal(later, together)
    # and after the warm-up they match features computed over all history (to 1e-9)
    full = spec.batch(ohlcv)
    np.testing.assert_allclose(together[-1], full[ends[-1] - length + 1 : ends[-1] + 1],
                               rtol=0, atol=1e-9)  # fmt: skip
    with pytest.raises(ValueError, match=f"needs {length + spec.lead} bars"):
        spec.windows(ohlcv, starts, np.array([100]), length, HOUR_MS)


def test_finite_window_features_need_no_anchor_before_their_warmup(real_ohlcv):
    ohlcv, _ = real_ohlcv
    starts = np.arange(len(ohlcv)) * HOUR_MS
    spec = FeatureSpec(("log_return", "range", "relative_volume", "momentum_5"))
    assert spec.anchor_period == 1 and spec.lead == spec.warmup == 20
    ends = np.arange(200, 400)
    np.testing.assert_array_equal(spec.anchors(starts, ends, 24, HOUR_MS), ends - 24 - 20 + 1)
    windows = spec.windows(ohlcv, starts, ends, 24, HOUR_MS)
    for k, end in enumerate(ends[:5]):  # each from exactly its own 44 bars
        own = spec.batch(ohlcv[end - 43 : end + 1])[20:]
        np.testing.assert_array_equal(windows[k], own)


def test_live_windows_bar_by_bar_equal_the_batched_ones_over_13920_real_bars(btc_and_wif):
    """The live path (one decision a bar, each anchor's recursion carried forward) against
    the batched one (every window of the series in one call), bit for bit, over all hourly
    BTCUSDT bars and WIFUSDT's from before its listing on, gaps included, each live decision
    seeing only the bars the engine holds for it."""
    starts, ohlcv = btc_and_wif
    spec, length = FeatureSpec(ALL_FEATURES[:-1]), 24  # everything a strategy may use
    held = length + spec.lead  # the strategy's lookback: the bars the buffer holds
    ends = np.arange(held - 1, len(ohlcv))
    assert len(ends) > 10_000
    batched = spec.windows(ohlcv, starts, ends, length, HOUR_MS)
    live = DecisionFeatures(spec, length, HOUR_MS)
    for k, end in enumerate(ends):
        lo = end - held + 1
        window = live.windows(ohlcv[lo : end + 1], starts[lo : end + 1], np.array([held - 1]))
        np.testing.assert_array_equal(window[0], batched[k], err_msg=f"decision at row {end}")
    assert np.isfinite(batched[-1]).all() and np.isnan(batched[0, :, 1, 0]).all()  # no WIF yet


def test_a_live_restart_or_a_corrected_bar_gives_the_batched_windows_again(btc_and_wif):
    starts, ohlcv = btc_and_wif
    spec, length = FeatureSpec(DEFAULT_FEATURES), 48
    held = length + spec.lead
    ohlcv = ohlcv[-3 * held :].copy()
    starts = starts[-3 * held :]
    live = DecisionFeatures(spec, length, HOUR_MS)

    def decide(end: int) -> np.ndarray:
        lo = end - held + 1
        return live.windows(ohlcv[lo : end + 1], starts[lo : end + 1], np.array([held - 1]))[0]

    def batched(end: int) -> np.ndarray:
        return spec.windows(ohlcv, starts, np.array([end]), length, HOUR_MS)[0]

    for end in range(held - 1, held + 400, 4):  # every 4th bar: several bars a step
        np.testing.assert_array_equal(decide(end), batched(end))
    ohlcv[held + 380, 0, 3] *= 1.01  # a bar already consumed is corrected (REST backfill)
    np.testing.assert_array_equal(decide(held + 401), batched(held + 401))
    np.testing.assert_array_equal(decide(held + 390), batched(held + 390))  # asked again
    live = DecisionFeatures(spec, length, HOUR_MS)  # a restarted daemon
    np.testing.assert_array_equal(decide(2 * held + 10), batched(2 * held + 10))
    np.testing.assert_array_equal(decide(2 * held + 11), batched(2 * held + 11))


def test_missing_bars_become_flat_bars_at_the_previous_close():
    ohlcv = np.arange(30, dtype=float).reshape(3, 2, 5)
    ohlcv[0, 1] = np.nan  # before the series' first bar: stays missing
    ohlcv[1, 0] = np.nan
    filled = fill_gaps(ohlcv)
    assert np.isnan(filled[0, 1, :4]).all()
    np.testing.assert_array_equal(filled[1, 0], [3.0, 3.0, 3.0, 3.0, 0.0])
    np.testing.assert_array_equal(filled[2], ohlcv[2])
