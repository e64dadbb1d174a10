"""Kline import is idempotent and loads return exactly the bars of [start, end)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from bot.core.events import Panel
from bot.store import Store

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def klines(n: int, first: int = T0, turnover: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    close = 40_000 + rng.normal(0, 50, n).cumsum()
    frame = pd.DataFrame(
        {
            "start": first + HOUR * np.arange(n, dtype=np.int64),
            "open": close - 5.25,
            "high": close + 20.5,
            "low": close - 20.125,
            "close": close,
            "volume": rng.uniform(1, 100, n),
        }
    )
    if turnover:
        frame["turnover"] = frame["volume"] * frame["close"]
    return frame


def test_import_is_idempotent(store: Store) -> None:
    frame = klines(100)
    assert store.upsert_klines("BTCUSDT", "1h", frame) == 100
    assert store.upsert_klines("BTCUSDT", "1h", frame) == 0
    pdt.assert_frame_equal(store.load_klines("BTCUSDT", "1h"), frame)


def test_overlapping_import_in_small_chunks_adds_only_new_bars(store: Store) -> None:
    frame = klines(50)
    store.upsert_klines("BTCUSDT", "1h", frame.iloc[:30])
    assert store.upsert_klines("BTCUSDT", "1h", frame.iloc[20:], chunk_rows=7) == 20
    assert store.upsert_klines("BTCUSDT", "1h", frame, chunk_rows=3) == 0
    pdt.assert_frame_equal(store.load_klines("BTCUSDT", "1h"), frame)


def test_load_respects_half_open_range_and_sorts(store: Store) -> None:
    frame = klines(24)
    store.upsert_klines("BTCUSDT", "1h", frame.sample(frac=1.0, random_state=3))
    got = store.load_klines("BTCUSDT", "1h", start=T0 + 5 * HOUR, end=T0 + 10 * HOUR)
    pdt.assert_frame_equal(got, frame.iloc[5:10].reset_index(drop=True))
    assert store.load_klines("BTCUSDT", "1h", end=T0).empty
    assert len(store.load_klines("BTCUSDT", "1h", start=T0 + 20 * HOUR)) == 4


def test_symbols_and_intervals_are_separate_series(store: Store) -> None:
    store.upsert_klines("BTCUSDT", "1h", klines(10))
    store.upsert_klines("ETHUSDT", "1h", klines(5))
    assert store.upsert_klines("BTCUSDT", "4h", klines(3)) == 3
    assert store.kline_summary() == [
        {"symbol": "BTCUSDT", "interval": "1h", "count": 10, "first": T0, "last": T0 + 9 * HOUR},
        {"symbol": "BTCUSDT", "interval": "4h", "count": 3, "first": T0, "last": T0 + 2 * HOUR},
        {"symbol": "ETHUSDT", "interval": "1h", "count": 5, "first": T0, "last": T0 + 4 * HOUR},
    ]


def test_missing_turnover_loads_as_nan(store: Store) -> None:
    store.upsert_klines("BTCUSDT", "1h", klines(3, turnover=False))
    got = store.load_klines("BTCUSDT", "1h")
    assert list(got.columns) == ["start", "open", "high", "low", "close", "volume", "turnover"]
    assert got["start"].dtype == np.int64
    assert got["turnover"].isna().all()


def test_empty_results(store: Store) -> None:
    assert store.upsert_klines("BTCUSDT", "1h", klines(0)) == 0
    empty = store.load_klines("BTCUSDT", "1h")
    assert empty.empty
    assert empty["start"].dtype == np.int64
    assert store.kline_summary() == []


def test_bad_frames_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        store.upsert_klines("BTCUSDT", "1h", klines(3).drop(columns=["volume"]))
    floats = klines(3).astype({"start": float})
    with pytest.raises(ValueError, match="integer epoch ms"):
        store.upsert_klines("BTCUSDT", "1h", floats)


def test_journal_records_present_bars_of_a_panel(store: Store, run_id: str) -> None:
    starts = T0 + HOUR * np.arange(3, dtype=np.int64)
    values = np.arange(3 * 2 * 5, dtype=float).reshape(3, 2, 5) + 0.5
    present = np.array([[True, True], [True, False], [True, True]])
    values[~present] = np.nan
    turnover = np.array([[1.0, 2.0], [3.0, np.nan], [np.nan, 6.0]])
    panel = Panel(("BTCUSDT", "ETHUSDT"), HOUR, starts, values, present, turnover)
    journal = store.journal(run_id)
    journal.record_bars("1h", panel)
    journal.record_bars("1h", panel)  # replayed: ignored
    journal.flush()

    eth = store.load_klines("ETHUSDT", "1h")
    assert eth["start"].tolist() == [T0, T0 + 2 * HOUR]
    np.testing.assert_array_equal(
        eth[["open", "high", "low", "close", "volume"]], values[[0, 2], 1]
    )
    np.testing.assert_array_equal(eth["turnover"], [2.0, 6.0])
    btc = store.load_klines("BTCUSDT", "1h")
    np.testing.assert_array_equal(btc["turnover"], [1.0, 3.0, np.nan])
    expected = {bar.start: bar.close for bar in panel.bars("1h") if bar.symbol == "BTCUSDT"}
    assert dict(zip(btc["start"], btc["close"], strict=True)) == expected


def test_a_long_panel_is_recorded_in_batch_sized_pieces(store: Store, run_id: str) -> None:
    n, width = 50, 3
    starts = T0 + HOUR * np.arange(n, dtype=np.int64)
    values = np.random.default_rng(1).uniform(1, 2, (n, width, 5))
    present = np.random.default_rng(2).uniform(size=(n, width)) < 0.8
    panel = Panel(("A", "B", "C"), HOUR, starts, values, present)
    journal = store.journal(run_id, batch_rows=7)
    journal.record_bars("1h", panel)
    assert journal.pending < 7
    journal.flush()
    for s, symbol in enumerate(panel.symbols):
        got = store.load_klines(symbol, "1h")
        assert got["start"].tolist() == starts[present[:, s]].tolist()
        np.testing.assert_array_equal(got["close"], values[present[:, s], s, 3])
