"""The stream's hold rules without a socket, a server or a sleep: ``now`` and the venue's
clock are passed in, and what comes back is checked."""

from __future__ import annotations

import pytest

from bot.core.market_data import Closed, Opened
from bot.core.timeutil import HOUR_MS
from bot.venues.bybit.kline_holds import CLOCK_SKEW_MS, REORDER_GRACE_S, BackfillPlan, KlineHolds
from bot.venues.bybit.klines import KlineTracker
from bot.venues.bybit.ws_protocol import KlineUpdate

SYMBOL = "AAAUSDT"
T0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS  # the last close delivered


def update(start: int, confirm: bool = True, symbol: str = SYMBOL, close: float = 10.0):
    return KlineUpdate(symbol, "1h", start, 10.0, 11.0, 9.0, close, 1.0, 10.0, confirm, start)


def holds(last: int | None = T0) -> KlineHolds:
    return KlineHolds(KlineTracker("1h", {SYMBOL: last, "BBBUSDT": last}), HOUR_MS)


def starts(events) -> list[tuple[str, int]]:
    return [("closed", e.bar.start) if isinstance(e, Closed) else ("opened", e.start)
            for e in events]  # fmt: skip


def test_the_next_candle_passes_straight_through():
    h = holds()
    assert starts(h.apply(update(T0 + HOUR_MS, confirm=False), now=0.0)) == [
        ("opened", T0 + HOUR_MS)
    ]
    assert starts(h.apply(update(T0 + HOUR_MS), now=0.1)) == [("closed", T0 + HOUR_MS)]
    assert h.holding == [] and h.expired(now=100.0) == []


def test_an_update_after_a_gap_is_held_in_arrival_order_until_the_late_close_releases_it():
    h = holds()
    second, third = update(T0 + 2 * HOUR_MS, confirm=False), update(T0 + 2 * HOUR_MS)
    assert h.apply(second, now=1.0) == []  # the close of T0+1h is missing
    assert h.apply(third, now=1.1) == []  # still missing: queued behind, not re-checked
    assert h.held(SYMBOL) == [second, third]
    assert h.holding == [SYMBOL]
    # the other symbol is not held back
    assert starts(h.apply(update(T0 + HOUR_MS, symbol="BBBUSDT"), now=1.2)) == [
        ("opened", T0 + HOUR_MS), ("closed", T0 + HOUR_MS)]  # fmt: skip
    # the late close arrives (reordered): it, then what waited, in order; no request needed
    released = h.apply(update(T0 + HOUR_MS), now=1.2)
    one, two = T0 + HOUR_MS, T0 + 2 * HOUR_MS
    assert starts(released) == [("opened", one), ("closed", one), ("opened", two), ("closed", two)]
    assert h.holding == [] and h.expired(now=99.0) == []


def test_the_receive_timeout_ends_with_the_oldest_hold_s_grace():
    h = holds()
    assert h.receive_timeout(now=5.0, catchup_s=30.0) == 30.0
    h.apply(update(T0 + 3 * HOUR_MS), now=5.0)
    assert h.receive_timeout(now=5.0, catchup_s=30.0) == REORDER_GRACE_S
    assert h.receive_timeout(now=5.1, catchup_s=30.0) == pytest.approx(REORDER_GRACE_S - 0.1)
    assert h.receive_timeout(now=9.0, catchup_s=30.0) == 0.001  # overdue: never a busy zero
    assert h.receive_timeout(now=5.0, catchup_s=0.1) == 0.1


def test_the_receive_timeout_follows_the_oldest_of_several_symbols_holds():
    h = holds()
    h.apply(update(T0 + 3 * HOUR_MS), now=5.0)
    h.apply(update(T0 + 3 * HOUR_MS, symbol="BBBUSDT"), now=5.2)
    assert h.holding == ["AAAUSDT", "BBBUSDT"]
    # AAA's grace ends at 5.25, BBB's at 5.45: wake for the first of them
    assert h.receive_timeout(now=5.2, catchup_s=30.0) == pytest.approx(0.05)
    assert h.expired(now=5.25) == [SYMBOL]


def test_a_hold_expires_after_the_grace_and_plans_the_missing_closed_candles():
    h = holds()
    h.apply(update(T0 + 4 * HOUR_MS, confirm=False), now=10.0)
    assert h.expired(now=10.0 + REORDER_GRACE_S / 2) == []
    assert h.expired(now=10.0 + REORDER_GRACE_S) == [SYMBOL]
    server_now = T0 + 4 * HOUR_MS + 60_000  # the held candle has opened, not closed
    plan = h.plan_backfill(SYMBOL, server_now)
    assert plan == BackfillPlan(SYMBOL, 0, T0 + HOUR_MS, T0 + 3 * HOUR_MS)
    # the shell fetches them and hands them to the tracker, then releases the hold
    h.tracker.fill(SYMBOL, [], plan.last)
    assert starts(h.release(SYMBOL, now=10.5)) == [("opened", T0 + 4 * HOUR_MS)]
    assert h.holding == []


def test_no_candle_that_has_not_closed_by_the_venue_s_clock_is_planned():
    h = holds()
    h.apply(update(T0 + 5 * HOUR_MS, confirm=False), now=0.0)
    # the venue's clock a second before the held candle opens (within the skew allowed): the
    # candle of T0+4h is still open, so only T0+1h..T0+3h are fetched
    server_now = T0 + 5 * HOUR_MS - 1_000
    plan = h.plan_backfill(SYMBOL, server_now)
    assert plan == BackfillPlan(SYMBOL, 0, T0 + HOUR_MS, T0 + 3 * HOUR_MS)


def test_nothing_is_planned_while_the_missing_candle_is_still_open_by_the_venue_s_clock():
    h = holds()
    h.apply(update(T0 + 2 * HOUR_MS, confirm=False), now=0.0)
    # a second before the held candle opens (within the skew): T0+1h has not closed yet
    assert h.plan_backfill(SYMBOL, T0 + 2 * HOUR_MS - 1_000) == BackfillPlan(SYMBOL, 0)
    assert h.held(SYMBOL) == [update(T0 + 2 * HOUR_MS, confirm=False)]  # kept, not dropped


def test_a_gap_a_catch_up_already_filled_plans_nothing_and_is_just_released():
    h = holds()
    h.apply(update(T0 + 2 * HOUR_MS), now=0.0)
    h.tracker.fill(SYMBOL, [], T0 + HOUR_MS)  # the reconnect's REST catch-up filled T0+1h
    assert h.plan_backfill(SYMBOL, T0 + 5 * HOUR_MS) == BackfillPlan(SYMBOL, 0)
    released = h.release(SYMBOL, now=1.0)
    assert starts(released) == [("opened", T0 + 2 * HOUR_MS), ("closed", T0 + 2 * HOUR_MS)]
    assert h.holding == []


def test_updates_dated_after_the_venue_s_clock_are_dropped_and_plan_nothing():
    h = holds()
    forged = update(T0 + 50 * HOUR_MS)  # a close far in the future
    h.apply(forged, now=0.0)
    server_now = T0 + HOUR_MS + 10
    assert not h.plausible(forged, server_now)
    assert h.plan_backfill(SYMBOL, server_now) == BackfillPlan(SYMBOL, dropped=1)
    assert h.held(SYMBOL) == []
    assert h.release(SYMBOL, now=1.0) == [] and h.holding == []
    assert h.tracker.last_closed(SYMBOL) == T0  # it marked nothing delivered


def test_plausibility_allows_the_clock_skew_and_needs_a_close_to_have_ended():
    h = holds()
    server_now = T0 + 10 * HOUR_MS
    assert h.plausible(update(T0 + 10 * HOUR_MS, confirm=False), server_now)
    assert not h.plausible(update(T0 + 10 * HOUR_MS, confirm=True), server_now)
    assert h.plausible(update(T0 + 9 * HOUR_MS, confirm=True), server_now)
    edge = update(server_now + CLOCK_SKEW_MS, confirm=False)
    assert h.plausible(edge, server_now)
    assert not h.plausible(update(server_now + CLOCK_SKEW_MS + 1, confirm=False), server_now)


def test_a_hold_released_into_another_gap_keeps_its_first_arrival_time():
    """A bogus update re-held after every close must still expire: the wait counts from when
    the oldest held update arrived, not from the release."""
    h = holds()
    h.apply(update(T0 + 5 * HOUR_MS), now=1.0)  # gap: held at 1.0
    h.apply(update(T0 + HOUR_MS), now=2.0)  # a close comes; the held one is still ahead
    assert h.holding == [SYMBOL]
    assert h.expired(now=1.0 + REORDER_GRACE_S) == [SYMBOL]  # not 2.0 + grace


def test_duplicates_and_out_of_order_updates_pass_nothing_on():
    h = holds()
    assert h.apply(update(T0), now=0.0) == []  # the close already delivered
    assert h.apply(update(T0 - HOUR_MS), now=0.0) == []
    assert h.apply(update(T0 + HOUR_MS, symbol="ZZZUSDT"), now=0.0) == []  # not subscribed
    assert h.tracker.counters["duplicate"] == 1
    assert h.tracker.counters["out_of_order"] == 1
    assert h.tracker.counters["unknown_symbol"] == 1
    assert h.holding == []


def test_a_fresh_symbol_without_a_last_close_is_never_held():
    h = holds(last=None)
    events = h.apply(update(T0 + 7 * HOUR_MS), now=0.0)
    assert starts(events) == [("opened", T0 + 7 * HOUR_MS), ("closed", T0 + 7 * HOUR_MS)]
    assert all(isinstance(e, Opened | Closed) for e in events) and h.holding == []
