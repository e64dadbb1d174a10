"""The multi-asset barrier releases exactly the rows the replay alignment produces."""

from pathlib import Path

import numpy as np
import pytest

from bot.core.barrier import Barrier
from bot.core.events import Bar
from bot.core.timeutil import HOUR_MS
from bot.feeds.loaders import load_panel

SYMS = ("AAA", "BBB", "CCC")


def bar(symbol: str, start: int, price: float = 1.0) -> Bar:
    return Bar(symbol, "1h", start, price, price, price, price, 1.0)


def test_releases_when_all_symbols_closed_not_before():
    barrier = Barrier(SYMS, HOUR_MS, grace_ms=5_000)
    now = HOUR_MS + 10
    assert barrier.add(bar("AAA", 0), now).rows is None
    assert barrier.add(bar("CCC", 0), now).rows is None
    out = barrier.add(bar("BBB", 0), now).rows
    assert out.starts.tolist() == [0]
    assert out.present.all()


def test_grace_period_releases_with_missing_symbols_marked_stale():
    barrier = Barrier(SYMS, HOUR_MS, grace_ms=5_000)
    barrier.add(bar("AAA", 0, 10.0), HOUR_MS + 200)  # the wait starts at the first arrival
    barrier.add(bar("BBB", 0, 20.0), HOUR_MS + 900)
    assert barrier.poll(HOUR_MS + 5_199).rows is None
    assert barrier.deadline() == HOUR_MS + 5_200
    rows = barrier.poll(HOUR_MS + 5_200).rows
    assert rows.present[0].tolist() == [True, True, False]
    assert np.isnan(rows.values[0, 2]).all()
    late = barrier.add(bar("CCC", 0), HOUR_MS + 6_000)  # arrives after the decision
    assert late.rows is None and late.late[0].symbol == "CCC" and barrier.late == 1


def test_an_outage_waits_for_backfill_which_then_meets_without_stale_symbols():
    barrier = Barrier(SYMS, HOUR_MS, grace_ms=1_000)
    for s in SYMS:
        barrier.add(bar(s, 0), HOUR_MS)
    assert barrier.deadline() is None  # nothing of the next step has arrived
    assert barrier.poll(10 * HOUR_MS).rows is None  # feed down: no decision on nothing
    released = []
    for k in (1, 2, 3):  # backfill, 9 hours after these bars closed, a symbol at a time
        for s in SYMS:
            out = barrier.add(bar(s, k * HOUR_MS), 10 * HOUR_MS + k).rows
            if out is not None:
                released.append(out)
    assert [int(r.starts[0]) for r in released] == [HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS]
    assert all(r.present.all() for r in released)


def test_known_gap_releases_without_waiting_and_duplicates_are_dropped():
    barrier = Barrier(SYMS, HOUR_MS, grace_ms=60_000)
    for s in SYMS:
        barrier.add(bar(s, 0), HOUR_MS)
    barrier.add(bar("AAA", HOUR_MS), 2 * HOUR_MS)
    barrier.add(bar("AAA", HOUR_MS), 2 * HOUR_MS)
    barrier.add(bar("BBB", HOUR_MS), 2 * HOUR_MS)
    out = barrier.add(bar("CCC", 2 * HOUR_MS), 2 * HOUR_MS).rows  # CCC skipped HOUR_MS
    assert out.starts.tolist() == [HOUR_MS]
    assert out.present[0].tolist() == [True, True, False]
    assert barrier.duplicates == 1


def test_unknown_symbol_is_rejected():
    with pytest.raises(KeyError, match="unsubscribed"):
        Barrier(SYMS, HOUR_MS, 0).add(bar("ZZZ", 0), 0)


def test_bar_by_bar_arrival_reproduces_the_replay_alignment(linear_dir: Path):
    """Five real symbols (WIF lists weeks after the others), bars arriving shuffled across
    symbols, some dropped: the barrier's rows equal `align` of the same bars."""
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "WIFUSDT")
    start, end = 1_704_067_200_000, 1_706_745_600_000  # January 2024
    panel = load_panel(linear_dir, symbols, "1h", start, end)
    rng = np.random.default_rng(3)
    drop = rng.random(panel.present.shape) < 0.02
    drop[:, 0] = False  # BTC always arrives, so every step has a bar
    kept = panel.present & ~drop
    barrier = Barrier(symbols, HOUR_MS, grace_ms=30_000)
    released = []
    for i, t in enumerate(panel.starts.tolist()):
        order = rng.permutation(len(symbols))
        for s in order:
            if kept[i, s]:
                o, h, lo, c, v = panel.values[i, s].tolist()
                out = barrier.add(Bar(symbols[s], "1h", t, o, h, lo, c, v), t + HOUR_MS + 100)
                if out.rows is not None:
                    released.append(out.rows)
        out = barrier.poll(t + HOUR_MS + 30_000)
        if out.rows is not None:
            released.append(out.rows)
    starts = np.concatenate([r.starts for r in released])
    present = np.concatenate([r.present for r in released])
    values = np.concatenate([r.values for r in released])
    np.testing.assert_array_equal(starts, panel.starts)
    np.testing.assert_array_equal(present, kept)
    np.testing.assert_array_equal(values[kept], panel.values[kept])
