"""Halting a live run by hand (``bot live halt``), so that it stays halted.

The request is an event in the run's journal: the daemon driving the run sees it within a
reconciliation interval, a daemon starting the run sees it before trading; either runs the
kill switch (:func:`kill_switch`) and decides no more. The event stays, so every later start
halts again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from bot.core.events import Order, RunEvent
from bot.core.ids import order_link_id
from bot.store import Store
from bot.venues.bybit.private_records import OrderAck, OrderUpdate, Position

HALT_EVENT = "halt_requested"


def request_halt(store: Store, run_id: str, now: int) -> str:
    """Record the request; returns what the user should read."""
    run = store.get_run(run_id)
    if run is None or run["kind"] != "live":
        raise LookupError(f"no live run {run_id!r} in the store")
    journal = store.journal(run["id"])  # unfenced: the request comes from outside the daemon
    journal.record_event(RunEvent(now, HALT_EVENT, {"by": "bot live halt"}))
    journal.close()
    holder = store.lease_holder(run["id"])
    where = (f"its daemon ({holder.owner}) flattens and halts within a reconciliation interval"
             if holder else "it flattens and halts when its daemon next starts")  # fmt: skip
    return f"halt requested for live run {run['id']}: {where}"


def halt_requested(store: Store, run_id: str) -> bool:
    return any(e["kind"] == HALT_EVENT for e in store.events(run_id))


class Account(Protocol):
    """What the kill switch needs of the exchange (:class:`TradingRest` has it)."""

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]: ...

    async def positions(self, symbol: str | None = None) -> list[Position]: ...

    async def cancel_order(
        self, symbol: str, link_id: str | None = None, *, order_id: str | None = None
    ) -> OrderAck | None: ...


async def kill_switch(
    account: Account,
    execute: Callable[[Order], Awaitable[Any]],
    run_id: str,
    symbols: Iterable[str],
    now: int,
) -> dict[str, list[str]]:
    """Cancel every open order on ``symbols`` (the run's and anyone's: a resting order could
    fill after the flattening and open a position again), then close what the *exchange*
    says is held, with one market order per symbol through ``execute`` (the live executor,
    which sends them reduce-only). Returns what was done, for the run's events."""
    cancelled: list[str] = []
    orders: list[Order] = []
    for symbol in symbols:
        for order in await account.open_orders(symbol):
            if await account.cancel_order(symbol, order_id=order.order_id) is not None:
                cancelled.append(order.link_id or order.order_id)
        held = sum(p.size for p in await account.positions(symbol) if p.symbol == symbol)
        if held:
            orders.append(Order(order_link_id(run_id, now, symbol), symbol, -held, now, "halt"))
    for order in orders:
        await execute(order)
    return {"cancelled_orders": cancelled, "flatten_orders": [o.link_id for o in orders]}
