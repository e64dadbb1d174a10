"""The feature buffer: windows, higher intervals without lookahead, and real-data aggregation."""

from pathlib import Path

import numpy as np
import pytest

from bot.core.buffer import FeatureBuffer
from bot.core.events import CLOSE, HIGH, LOW, OPEN, VOLUME, Panel
from bot.core.timeutil import HOUR_MS, MINUTE_MS
from bot.feeds.loaders import load_panel
from bot.feeds.synthetic import synthetic_panel


def test_hourly_bar_becomes_visible_only_at_the_minute_that_closes_it():
    panel = synthetic_panel(("AAA", "BBB"), "1m", 180, start_ms=0)
    buffer = FeatureBuffer(("AAA", "BBB"), "1m", {"1m": 10, "1h": 3}, block_rows=256)
    buffer.append(panel)
    # Row 58 is 00:58-00:59: the 00:00 hour is still forming, nothing is visible.
    assert len(buffer.window(3, "1h", row=58)) == 0
    hour = buffer.window(3, "1h", row=59)  # the 00:59 minute closes the hour
    assert hour.starts.tolist() == [0]
    block = panel.values[:60]
    expected = [block[0, 0, OPEN], block[:, 0, HIGH].max(), block[:, 0, LOW].min(),
                block[59, 0, CLOSE], block[:, 0, VOLUME].sum()]  # fmt: skip
    np.testing.assert_allclose(hour.values[0, 0], expected, rtol=1e-12)
    assert buffer.window(3, "1h", row=119).starts.tolist() == [0, HOUR_MS]
    assert buffer.window(3, "1h").starts.tolist() == [0, HOUR_MS, 2 * HOUR_MS]


def test_partial_first_bucket_is_dropped_and_block_boundaries_do_not_matter():
    panel = synthetic_panel(("AAA",), "1m", 300, start_ms=30 * MINUTE_MS)  # starts at 00:30
    whole = FeatureBuffer(("AAA",), "1m", {"1h": 8}, block_rows=512)
    whole.append(panel)
    pieces = FeatureBuffer(("AAA",), "1m", {"1h": 8}, block_rows=512)
    for lo in range(0, 300, 7):
        pieces.append(panel.slice(lo, lo + 7))
    a, b = whole.window(8, "1h"), pieces.window(8, "1h")
    assert a.starts.tolist() == [HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS, 4 * HOUR_MS]
    np.testing.assert_array_equal(a.values, b.values)


def test_history_ends_mark_what_each_row_may_see():
    panel = synthetic_panel(("AAA",), "1m", 200, start_ms=0)
    buffer = FeatureBuffer(("AAA",), "1m", {"1m": 5, "1h": 2}, block_rows=256)
    buffer.append(panel)
    base = buffer.history(5, first_row=100, last_row=110)
    assert len(base) == 15
    assert base.ends.tolist() == list(range(4, 15))
    np.testing.assert_array_equal(base.starts[base.ends], panel.starts[100:111])
    hourly = buffer.history(2, first_row=100, last_row=130, interval="1h")
    visible = hourly.starts[hourly.ends]
    closes_by_row = panel.starts[100:131] + MINUTE_MS
    assert np.all(visible + HOUR_MS <= closes_by_row)  # never a bar that has not closed


def test_unknown_interval_is_a_clear_error():
    buffer = FeatureBuffer(("AAA",), "1m", {"1m": 5}, block_rows=16)
    with pytest.raises(KeyError, match="declare it"):
        buffer.window(3, "1h")


def test_real_minute_bars_aggregate_to_bybit_hourly_bars(linear_dir: Path):
    """The exchange's own 1h klines equal our aggregation of its 1m klines (BTC, ETH)."""
    symbols = ("BTCUSDT", "ETHUSDT")
    start, end = 1_748_563_200_000, 1_748_563_200_000 + 72 * HOUR_MS  # 2025-05-30, 3 days
    minutes = load_panel(linear_dir, symbols, "1m", start, end)
    hours = load_panel(linear_dir, symbols, "1h", start, end)
    buffer = FeatureBuffer(symbols, "1m", {"1h": 100}, block_rows=len(minutes))
    buffer.append(minutes)
    ours = buffer.window(100, "1h")
    assert ours.starts.tolist() == hours.starts.tolist()
    np.testing.assert_allclose(ours.values.transpose(1, 0, 2), hours.values, rtol=1e-9)


def test_a_late_bar_is_patched_into_the_buffer_for_later_decisions():
    panel = synthetic_panel(("AAA", "BBB"), "1h", 10, start_ms=0)
    present = panel.present.copy()
    present[6, 1] = False  # BBB's bar at row 6 missed the decision
    values = np.where(present[:, :, None], panel.values, np.nan)
    buffer = FeatureBuffer(("AAA", "BBB"), "1h", {"1h": 10}, block_rows=16)
    buffer.append(Panel(panel.symbols, panel.interval_ms, panel.starts, values, present))
    assert np.isnan(buffer.window(10).values[1, 6]).all()
    assert buffer.patch(int(panel.starts[6]), "BBB", panel.values[6, 1])
    window = buffer.window(10)
    np.testing.assert_array_equal(window.values[1, 6], panel.values[6, 1])
    assert window.present[1].all()
    assert not buffer.patch(int(panel.starts[6]) + 1, "BBB", panel.values[6, 1])  # no such row
