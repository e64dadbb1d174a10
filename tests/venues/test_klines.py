"""The kline tracker delivers every symbol's closed bars complete and in order, whatever the
websocket loses, duplicates or reorders."""

import numpy as np
import pytest

from bot.core.events import Bar
from bot.core.timeutil import HOUR_MS
from bot.venues.bybit.klines import Closed, KlineTracker, Missing, Opened
from bot.venues.bybit.ws_protocol import KlineUpdate

SYMBOLS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")


def truth(symbol: str, n: int, seed: int) -> list[Bar]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    opens = np.r_[100.0, close[:-1]]
    return [
        Bar(symbol, "1h", k * HOUR_MS, opens[k], max(opens[k], close[k]) + 1,
            min(opens[k], close[k]) - 1, close[k], 10.0 + k, 1000.0 + k)
        for k in range(n)
    ]  # fmt: skip


def pushes(bar: Bar, k: int = 3) -> list[KlineUpdate]:
    """What the exchange sends for one candle: k partial updates, then the close."""
    partial = [
        KlineUpdate(bar.symbol, "1h", bar.start, bar.open, bar.high, bar.low, bar.open,
                    bar.volume * j / k, 0.0, False, bar.start + j)
        for j in range(k)
    ]  # fmt: skip
    final = KlineUpdate(bar.symbol, "1h", bar.start, bar.open, bar.high, bar.low, bar.close,
                        bar.volume, bar.turnover, True, bar.start + HOUR_MS)  # fmt: skip
    return [*partial, final]


def test_closes_once_and_announces_each_open_once():
    (bar,) = truth("AAAUSDT", 1, 0)
    tracker = KlineTracker("1h", {"AAAUSDT": None})
    actions = [a for u in pushes(bar) for a in tracker.update(u)]
    assert actions == [Opened("AAAUSDT", 0, bar.open), Closed(bar)]
    assert tracker.update(pushes(bar)[-1]) == []  # the duplicate close seen live
    assert tracker.counters["duplicate"] == 1


def test_a_gap_holds_the_revealing_update_until_the_missing_bars_are_filled():
    bars = truth("AAAUSDT", 5, 1)
    tracker = KlineTracker("1h", {"AAAUSDT": 0})  # bar 0 already closed (e.g. from the store)
    (missing,) = tracker.update(pushes(bars[4])[0])  # bars 1..3 never arrived
    assert isinstance(missing, Missing) and (missing.first, missing.last) == (HOUR_MS, 3 * HOUR_MS)
    filled = tracker.fill("AAAUSDT", [bars[1], bars[3]], through=missing.last)  # 2 is gone
    assert [c.bar for c in filled] == [bars[1], bars[3]]
    assert tracker.counters["unrecoverable"] == 1
    assert tracker.update(missing.held) == [Opened("AAAUSDT", 4 * HOUR_MS, bars[4].open)]
    assert tracker.update(pushes(bars[2])[-1]) == []  # a late close of a filled candle
    assert tracker.counters["out_of_order"] == 1


@pytest.mark.parametrize("seed", range(8))
def test_complete_ordered_bars_under_drops_duplicates_and_reordering(seed):
    rng = np.random.default_rng(seed)
    n = 120
    true_bars = {s: truth(s, n, seed * 10 + i) for i, s in enumerate(SYMBOLS)}
    stream = [u for k in range(n) for s in SYMBOLS for u in pushes(true_bars[s][k])]
    faulty = []
    for update in stream:
        roll = rng.random()
        if roll < 0.15:
            continue  # dropped
        faulty.append(update)
        if roll > 0.93:
            faulty.append(update)  # duplicated
    for lo in range(0, len(faulty), 7):  # reordered within windows of 7
        window = faulty[lo : lo + 7]
        faulty[lo : lo + 7] = [window[j] for j in rng.permutation(len(window))]

    tracker = KlineTracker("1h", dict.fromkeys(SYMBOLS, true_bars[SYMBOLS[0]][0].start - HOUR_MS))
    emitted: dict[str, list[Bar]] = {s: [] for s in SYMBOLS}
    opened: dict[str, list[int]] = {s: [] for s in SYMBOLS}

    def apply(update):
        for action in tracker.update(update):
            if isinstance(action, Missing):  # the REST backfill: the exchange's truth
                wanted = [b for b in true_bars[action.symbol]
                          if action.first <= b.start <= action.last]  # fmt: skip
                for closed in tracker.fill(action.symbol, wanted, action.last):
                    emitted[action.symbol].append(closed.bar)
                apply(action.held)
            elif isinstance(action, Closed):
                emitted[action.bar.symbol].append(action.bar)
            else:
                opened[action.symbol].append(action.start)

    for update in faulty:
        apply(update)
    for s in SYMBOLS:
        got = emitted[s]
        # everything up to the last bar the stream revealed, exactly once and in order
        assert got == true_bars[s][: len(got)] and len(got) >= n - 3
        assert opened[s] == sorted(set(opened[s]))  # each open announced once, in order
    assert tracker.counters["gaps"] > 0 and tracker.counters["duplicate"] > 0


def test_updates_of_another_interval_or_symbol_are_counted_and_never_taken_for_bars():
    first, second = truth("AAAUSDT", 2, 0)
    tracker = KlineTracker("1h", {"AAAUSDT": first.start})
    # a kline.1.AAAUSDT close that happens to start on the hour: not the 1h bar
    one_minute = KlineUpdate("AAAUSDT", "1m", second.start, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
                             True, second.start + 60_000)  # fmt: skip
    assert tracker.update(one_minute) == []
    other = pushes(Bar("ZZZUSDT", "1h", second.start, 1.0, 1.0, 1.0, 1.0, 1.0))[-1]
    assert tracker.update(other) == []
    assert tracker.counters["wrong_interval"] == 1 and tracker.counters["unknown_symbol"] == 1
    assert tracker.last_closed("AAAUSDT") == first.start  # nothing was delivered
    actions = [a for u in pushes(second) for a in tracker.update(u)]
    assert [a.bar for a in actions if isinstance(a, Closed)] == [second]
