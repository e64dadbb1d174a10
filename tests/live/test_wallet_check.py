"""Wallet reconciliation by changes: the wallet's move since the baseline against the books'."""

from __future__ import annotations

import pytest

from bot.live.wallet_check import (
    BASELINE_EVENT,
    FLOOR_USDT,
    WalletBaseline,
    WalletWatch,
    booked_balance,
    latest_baseline,
    tolerance,
)
from bot.venues.bybit.private_records import Position


def position(symbol: str, size: float, entry: float) -> Position:
    return Position(symbol, size, entry, entry, 0.0, 0.0, 0, 1, 0, "linear")


def test_the_booked_balance_is_the_flows_plus_the_cost_of_the_run_s_positions_only():
    held = [position("AAAUSDT", 2.0, 100.0), position("BBBUSDT", -1.0, 50.0),
            position("OTHERUSDT", 5.0, 1000.0)]  # fmt: skip
    assert booked_balance(-160.0, held, ["AAAUSDT", "BBBUSDT"]) == pytest.approx(-10.0)


def test_the_tolerance_allows_half_a_tick_of_entry_rounding_per_unit_held():
    held = [position("AAAUSDT", 2.0, 100.0), position("BBBUSDT", -4.0, 50.0)]
    assert tolerance(held, {"AAAUSDT": 0.1, "BBBUSDT": 0.01}) == pytest.approx(
        FLOOR_USDT + 2.0 * 0.05 + 4.0 * 0.005
    )
    assert tolerance([], {}) == FLOOR_USDT


def test_a_wallet_that_moves_as_the_books_do_never_drifts():
    watch = WalletWatch(WalletBaseline(wallet=100_000.0, booked=0.0))
    # the account holds 90,000 the run was never given: only changes are compared
    for booked in (-12.5, 40.0, 39.999, -300.25):
        assert watch.check(100_000.0 + booked, booked, FLOOR_USDT) is None


def test_a_drift_seen_once_is_not_reported_and_one_seen_twice_is_reported_once():
    watch = WalletWatch(WalletBaseline(wallet=1_000.0, booked=10.0))
    # an execution the list did not show yet: the wallet moved, the books have not
    assert watch.check(1_005.0, 10.0, FLOOR_USDT) is None
    assert watch.check(1_005.0, 15.0, FLOOR_USDT) is None  # the books caught up
    # 25 USDT transferred in: seen twice, then reported with both views
    assert watch.check(1_030.0, 15.0, FLOOR_USDT) is None
    drift = watch.check(1_030.0, 15.0, FLOOR_USDT)
    assert drift is not None
    assert drift.expected == pytest.approx(1_005.0)
    assert drift.wallet == pytest.approx(1_030.0)
    assert drift.amount == pytest.approx(25.0)
    assert drift.rebased == WalletBaseline(1_030.0, 15.0)
    # the baseline absorbed it: the same state is no drift any more
    assert watch.check(1_030.0, 15.0, FLOOR_USDT) is None
    assert watch.check(1_030.0, 15.0, FLOOR_USDT) is None
    assert watch.baseline == WalletBaseline(1_030.0, 15.0)


def test_two_different_drifts_in_a_row_do_not_confirm_each_other():
    watch = WalletWatch(WalletBaseline(wallet=0.0, booked=0.0))
    assert watch.check(5.0, 0.0, FLOOR_USDT) is None
    assert watch.check(9.0, 0.0, FLOOR_USDT) is None  # moved again: not yet settled
    drift = watch.check(9.0, 0.0, FLOOR_USDT)
    assert drift is not None and drift.amount == pytest.approx(9.0)


def test_a_drift_within_the_tolerance_is_rounding():
    watch = WalletWatch(WalletBaseline(wallet=0.0, booked=0.0))
    for _ in range(3):
        assert watch.check(0.5, 0.0, allowed=1.0) is None
    assert watch.check(1.5, 0.0, allowed=1.0) is None
    assert watch.check(1.5, 0.0, allowed=1.0) is not None


def test_the_baseline_survives_as_an_event_detail():
    baseline = WalletBaseline(100_123.456789, -42.5)
    assert WalletBaseline.from_detail(baseline.detail()) == baseline


def test_the_latest_stored_baseline_is_the_one_in_force():
    events = [
        {"kind": "halted", "detail": {}},
        {"kind": BASELINE_EVENT, "detail": WalletBaseline(100.0, 0.0).detail()},
        {"kind": "reconcile_drift", "detail": {"store": 1}},
        {"kind": BASELINE_EVENT, "detail": WalletBaseline(125.0, -3.0).detail()},
    ]
    assert latest_baseline(events) == WalletBaseline(125.0, -3.0)
    assert latest_baseline(events[:1]) is None
    assert WalletBaseline(125.0, -3.0).expected(booked=7.0) == pytest.approx(135.0)
