"""StoreJournal: what the engine records comes back equal, once, and only after a flush."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sqlalchemy as sa

from bot.core.events import Decision, Fill, Order, RunEvent
from bot.core.ids import order_link_id
from bot.core.journal import Journal
from bot.store import Store, StoreJournal
from bot.store.writes import Writes

T = 1_704_070_800_000
HOUR = 3_600_000


def order(run_id: str, symbol: str, qty: float, time: int = T, reason: str = "rebalance") -> Order:
    return Order(order_link_id(run_id, time, symbol), symbol, qty, time, reason)


def trade(o: Order, price: float, exec_id: str = "") -> Fill:
    fee = abs(o.qty) * price * 0.00055
    return Fill(
        exec_id=exec_id or f"x-{o.link_id}",
        link_id=o.link_id,
        symbol=o.symbol,
        time=o.decision_time + 1,
        qty=o.qty,
        price=price,
        fee=fee,
        exec_type="Trade",
        cash_flow=-o.qty * price - fee,
        realized_pnl=-fee if o.qty < 0 else 0.0,
    )


def test_is_a_journal(store: Store, run_id: str) -> None:
    journal: Journal = store.journal(run_id)
    assert isinstance(journal, StoreJournal)


def test_round_trip(store: Store, run_id: str) -> None:
    journal = store.journal(run_id)
    decision = Decision(
        time=T,
        strategy="momentum",
        version="1.2",
        weights={"BTCUSDT": 0.5, "ETHUSDT": -0.25},
        target={"BTCUSDT": 0.4, "ETHUSDT": -0.2},
        stale=("ETHUSDT",),
        model_version="tft-7",
    )
    buy, sell = order(run_id, "BTCUSDT", 0.012), order(run_id, "ETHUSDT", -0.5, reason="kill")
    fill = trade(buy, 42_000.5)
    funding = Fill(
        exec_id=f"{run_id}-funding-ETHUSDT-{T}",
        link_id=None,
        symbol="ETHUSDT",
        time=T,
        qty=-0.5,
        price=2_200.0,
        fee=-0.11,
        exec_type="Funding",
        cash_flow=0.11,
    )
    event = RunEvent(T + HOUR, "kill_switch", {"reason": "drawdown", "equity": 9_000.25})

    journal.record_decision(decision)
    journal.record_orders([buy, sell])
    journal.record_fill(fill)
    journal.record_fill(funding)
    journal.record_position(T + 1, "BTCUSDT", 0.012, 42_000.5)
    journal.record_position(T + 1, "ETHUSDT", -0.5, 2_199.75)
    journal.record_equity(T, 10_000.0, 10_000.0, 0.0)
    journal.record_equity(T + HOUR, 9_990.125, 9_485.5, 0.0515)
    journal.record_event(event)
    journal.flush()

    assert store.decisions(run_id) == [
        {
            "time": T,
            "strategy": "momentum",
            "strategy_version": "1.2",
            "model_version": "tft-7",
            "weights": decision.weights,
            "target": decision.target,
            "stale": ["ETHUSDT"],
        }
    ]
    assert store.orders(run_id) == [
        {
            "order_link_id": buy.link_id,
            "symbol": "BTCUSDT",
            "side": "Buy",
            "qty": 0.012,
            "order_type": "Market",
            "decision_time": T,
            "reason": "rebalance",
            "status": "Filled",
        },
        {
            "order_link_id": sell.link_id,
            "symbol": "ETHUSDT",
            "side": "Sell",
            "qty": 0.5,
            "order_type": "Market",
            "decision_time": T,
            "reason": "kill",
            "status": "New",
        },
    ]
    assert store.fills(run_id) == [
        {
            "exec_id": f.exec_id,
            "order_link_id": f.link_id,
            "symbol": f.symbol,
            "side": f.side,
            "qty": abs(f.qty),
            "price": f.price,
            "fee": f.fee,
            "exec_type": f.exec_type,
            "cash_flow": f.cash_flow,
            "realized_pnl": f.realized_pnl,
            "time": f.time,
        }
        for f in (fill, funding)
    ]
    assert store.positions(run_id) == [
        {"time": T + 1, "symbol": "BTCUSDT", "qty": 0.012, "avg_price": 42_000.5},
        {"time": T + 1, "symbol": "ETHUSDT", "qty": -0.5, "avg_price": 2_199.75},
    ]
    assert store.equity(run_id) == [
        {"time": T, "equity": 10_000.0, "cash": 10_000.0, "gross": 0.0},
        {"time": T + HOUR, "equity": 9_990.125, "cash": 9_485.5, "gross": 0.0515},
    ]
    assert store.events(run_id) == [
        {"time": T + HOUR, "kind": "kill_switch", "key": "", "detail": event.detail}
    ]


def test_rows_keep_the_order_they_were_recorded_in(store: Store, run_id: str) -> None:
    journal = store.journal(run_id, batch_rows=7)
    times = [T + k * HOUR for k in (5, 1, 4, 2, 3, 0, 9, 8, 6, 7)] * 3
    symbols = ["BTCUSDT"] * 10 + ["ETHUSDT"] * 10 + ["SOLUSDT"] * 10
    for k, (time, symbol) in enumerate(zip(times, symbols, strict=True)):
        journal.record_position(time, symbol, float(k), 1.0)
    journal.flush()
    assert [p["time"] for p in store.positions(run_id)] == times
    assert [p["qty"] for p in store.positions(run_id)] == [float(k) for k in range(len(times))]


def test_a_rebooked_position_is_stored_once(store: Store, run_id: str) -> None:
    """A restarted daemon books again the fill it booked at a bar's open before it stopped."""
    first = store.journal(run_id)
    first.record_position(T, "BTCUSDT", 0.5, 100.0)
    first.flush()
    second = store.journal(run_id)
    second.record_position(T, "BTCUSDT", 0.5, 100.0)
    second.record_position(T, "ETHUSDT", 2.0, 10.0)
    second.flush()
    assert [(p["symbol"], p["qty"]) for p in store.positions(run_id)] == [
        ("BTCUSDT", 0.5),
        ("ETHUSDT", 2.0),
    ]


def test_duplicate_link_ids_are_stored_once(store: Store, run_id: str) -> None:
    first = order(run_id, "BTCUSDT", 0.01)
    journal = store.journal(run_id)
    journal.record_orders([first, first])
    journal.flush()
    journal.record_orders([first])
    journal.flush()
    assert [o["order_link_id"] for o in store.orders(run_id)] == [first.link_id]


def test_a_restarted_run_replays_without_duplicates(store: Store, run_id: str) -> None:
    decision = Decision(T, "momentum", "1", {"BTCUSDT": 1.0}, {"BTCUSDT": 1.0})
    buy = order(run_id, "BTCUSDT", 0.01)
    before = store.journal(run_id)
    before.record_decision(decision)
    before.record_orders([buy])
    before.record_fill(trade(buy, 100.0))
    before.record_equity(T, 1_000.0, 999.0, 0.001)
    before.flush()

    after = store.journal(run_id)  # a new process replays the same decision
    after.record_decision(decision)
    after.record_orders([buy])
    after.record_fill(trade(buy, 100.0))
    after.record_equity(T, 1_000.0, 999.0, 0.001)
    after.flush()

    assert len(store.decisions(run_id)) == 1
    assert [(o["order_link_id"], o["status"]) for o in store.orders(run_id)] == [
        (buy.link_id, "Filled")  # the replayed New did not reset it
    ]
    assert len(store.fills(run_id)) == 1
    assert len(store.equity(run_id)) == 1


def test_cancelled_and_filled_statuses(store: Store, run_id: str) -> None:
    stale, filled = order(run_id, "ETHUSDT", 1.0), order(run_id, "BTCUSDT", -0.1)
    later = order(run_id, "ETHUSDT", 2.0, time=T + HOUR)
    journal = store.journal(run_id)
    journal.record_orders([stale, filled])
    journal.flush()
    journal.record_orders([stale], status="Cancelled")
    journal.record_fill(trade(filled, 50_000.0))
    journal.record_orders([later])  # new and cancelled within one flush
    journal.record_orders([later], status="Cancelled")
    journal.flush()
    assert {o["order_link_id"]: o["status"] for o in store.orders(run_id)} == {
        stale.link_id: "Cancelled",
        filled.link_id: "Filled",
        later.link_id: "Cancelled",
    }
    with pytest.raises(ValueError, match="order status"):
        journal.record_orders([stale], status="Exploded")


def test_nothing_is_written_before_flush(store: Store, run_id: str) -> None:
    journal = store.journal(run_id, batch_rows=100)
    for k in range(10):
        journal.record_equity(T + k * HOUR, 1.0, 1.0, 0.0)
    assert journal.pending == 10
    assert store.equity(run_id) == []
    journal.flush()
    assert journal.pending == 0
    assert len(store.equity(run_id)) == 10


def test_auto_flush_at_batch_rows(store: Store, run_id: str) -> None:
    journal = store.journal(run_id, batch_rows=4)
    for k in range(3):
        journal.record_position(T + k, "BTCUSDT", 1.0, 1.0)
    assert store.positions(run_id) == []
    journal.record_event(RunEvent(T, "note"))  # the 4th row, in another table
    assert journal.pending == 0
    assert len(store.positions(run_id)) == 3
    assert len(store.events(run_id)) == 1
    journal.record_position(T + 9, "BTCUSDT", 1.0, 1.0)
    assert journal.pending == 1
    assert len(store.positions(run_id)) == 3


def test_non_finite_json_values_become_null(store: Store, run_id: str) -> None:
    journal = store.journal(run_id)
    journal.record_decision(
        Decision(T, "momentum", "1", {"BTCUSDT": math.nan}, {"BTCUSDT": 0.0, "ETHUSDT": 0.5})
    )
    detail = {"sharpe": math.inf, "days": [1, math.nan], "qty": np.float64(0.25),
              "fills": np.int64(3), "weights": np.array([0.5, np.nan])}  # fmt: skip
    journal.record_event(RunEvent(T, "summary", detail))
    journal.flush()
    assert store.decisions(run_id)[0]["weights"] == {"BTCUSDT": None}
    assert store.events(run_id)[0]["detail"] == {
        "sharpe": None, "days": [1, None], "qty": 0.25, "fills": 3, "weights": [0.5, None]
    }  # fmt: skip


def test_journal_needs_an_existing_run(store: Store) -> None:
    with pytest.raises(LookupError):
        store.journal("no-such-run")


def test_a_failed_flush_keeps_its_rows(store: Store, run_id: str) -> None:
    orphan = StoreJournal(store.engine, Writes(store.engine.dialect), "ghost")
    orphan.record_equity(T, 1.0, 1.0, 0.0)
    with pytest.raises(sa.exc.IntegrityError):  # foreign key enforced on both backends
        orphan.flush()
    assert orphan.pending == 1
    assert store.equity(run_id) == []


def test_a_background_journal_writes_the_same_rows_in_order(store: Store, run_id: str) -> None:
    journal = store.journal(run_id, batch_rows=7, background=True)  # many small batches
    for k in range(100):
        journal.record_equity(T + k, 1.0 + k, 1.0, 0.0)
        journal.record_event(RunEvent(T + k, "tick", {"k": k}))
    journal.close()
    assert [row["equity"] for row in store.equity(run_id)] == [1.0 + k for k in range(100)]
    assert [row["detail"]["k"] for row in store.events(run_id)] == list(range(100))


def test_a_background_failure_is_raised_at_close(store: Store) -> None:
    orphan = StoreJournal(store.engine, Writes(store.engine.dialect), "ghost", background=True)
    orphan.record_equity(T, 1.0, 1.0, 0.0)  # no such run: the foreign key refuses it
    with pytest.raises(sa.exc.IntegrityError):
        orphan.close()
