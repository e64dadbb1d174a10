"""The live order ledger: write-ahead order intents, exchange updates, executions.

Trading live, the store is what a restarted process knows about its orders, so three rules hold
whatever order messages arrive in, however often, and wherever a process dies:

* **Write-ahead.** An order is committed as an *intent*, status ``Unknown``, before its request
  is sent. After a crash an ``Unknown`` order may or may not exist on the exchange; it is
  resolved by looking its ``orderLinkId`` up (or re-sending the same id), never by a new order.
  Writing an intent twice keeps the first: the link id is deterministic, so a retry or a
  restart derives the same one and finds the order it already wrote.
* **Monotonic updates.** Order messages come from a websocket that drops, duplicates and
  reorders, and from REST look-ups racing it. A status only moves forward (Unknown → New →
  PartiallyFilled → Filled / Cancelled / Rejected); a final status is never replaced, by a late
  ``New`` or by another final one; ``cum_exec_qty`` never decreases (the exchange's count only
  grows, so a larger one is newer whatever the message's status); the exchange id, once known,
  is kept. So applying any message twice, or an old one late, changes nothing.
* **Executions once.** An execution is stored once per ``exec_id``, with the position it left
  (one ``positions`` row per execution, keyed by it): a re-booked or re-fetched execution adds
  nothing, and callers learn which executions were new so they book only those.

This module holds the rules and the statements, run inside a transaction the
:class:`~bot.store.store.Store` opens, fences with the run's lease and retries on lock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.core.events import Fill
from bot.store import schema
from bot.store.bulk import insert_ignoring

log = logging.getLogger("bot.store")

SIDES = ("Buy", "Sell")
ORDER_TYPES = ("Market", "Limit")
#: Orders whose outcome is still open: what a reconciliation must resolve.
UNRESOLVED_STATUSES = ("Unknown", "New", "PartiallyFilled")
#: How far along its life a status is; a message may only move an order forward.
_RANK = {"Unknown": 0, "New": 1, "PartiallyFilled": 2, "Filled": 3, "Cancelled": 3, "Rejected": 3}
#: ``events.kind`` of a reconciliation's findings (see :func:`drift_event`).
DRIFT_KIND = "reconcile_drift"

# Column sizes (PostgreSQL enforces them, SQLite does not: checked here for both alike).
_LIMITS = {"link_id": 36, "symbol": 32, "reason": 32, "order_id": 64, "reject_code": 32,
           "exec_id": 80, "key": 64}  # fmt: skip


class PositionAfter(NamedTuple):
    """A symbol's position right after an execution: signed quantity, average entry price."""

    qty: float
    avg_price: float


@dataclass(frozen=True, slots=True)
class Execution:
    """An execution to store: the fill (a ``fills`` row) and, when it changed the position,
    the position it left (a ``positions`` row keyed by the fill's exec id)."""

    fill: Fill
    position: PositionAfter | None = None


class LastExecution(NamedTuple):
    """The latest stored execution: where fetching missed executions starts after a gap."""

    time: int
    exec_id: str


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """What one exchange message (or look-up) says about an order; None: it says nothing."""

    status: str
    updated_at: int
    order_id: str | None = None
    cum_exec_qty: float | None = None
    avg_price: float | None = None
    reject_code: str | None = None
    reject_reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _RANK:
            raise ValueError(f"order status must be one of {schema.ORDER_STATUSES}, "
                             f"not {self.status!r}")  # fmt: skip
        if self.cum_exec_qty is not None and not (
            math.isfinite(self.cum_exec_qty) and self.cum_exec_qty >= 0
        ):
            raise ValueError(f"cum_exec_qty must be finite and >= 0, not {self.cum_exec_qty}")
        if self.avg_price is not None and not (
            math.isfinite(self.avg_price) and self.avg_price > 0
        ):
            raise ValueError(f"avg_price must be finite and > 0, not {self.avg_price}")
        _fits("order_id", self.order_id)
        _fits("reject_code", self.reject_code)


def _fits(name: str, value: str | None) -> None:
    if value is not None and not 0 < len(value) <= _LIMITS[name]:
        raise ValueError(f"{name} must have 1 to {_LIMITS[name]} characters, not {value!r}")


def intent_values(
    run_id: str,
    *,
    link_id: str,
    symbol: str,
    side: str,
    qty: float,
    order_type: str,
    decision_time: int,
    leg: int,
    attempt: int,
    reason: str,
    reduce_only: bool,
    price: float | None,
    created_at: int,
) -> dict[str, Any]:
    """The ``orders`` row of a new intent, checked: a bad value is refused before anything is
    written (or sent), on SQLite as on PostgreSQL."""
    for name, value in (("link_id", link_id), ("symbol", symbol), ("reason", reason)):
        _fits(name, value)
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, not {side!r}")
    if order_type not in ORDER_TYPES:
        raise ValueError(f"order_type must be one of {ORDER_TYPES}, not {order_type!r}")
    if not (math.isfinite(qty) and qty > 0):
        raise ValueError(f"qty must be finite and > 0 (the side gives the sign), not {qty}")
    if order_type == "Limit":
        if price is None or not (math.isfinite(price) and price > 0):
            raise ValueError(f"a limit order needs a finite price > 0, not {price}")
    elif price is not None:
        raise ValueError("a market order has no price")
    if leg < 0 or attempt < 0:
        raise ValueError(f"leg and attempt must be >= 0, not {leg} and {attempt}")
    return {
        "run_id": run_id,
        "order_link_id": link_id,
        "symbol": symbol,
        "side": side,
        "qty": float(qty),
        "order_type": order_type,
        "decision_time": int(decision_time),
        "reason": reason,
        "status": "Unknown",
        "price": None if price is None else float(price),
        "cum_exec_qty": 0.0,
        "leg": int(leg),
        "attempt": int(attempt),
        "reduce_only": bool(reduce_only),
        "created_at": int(created_at),
        "updated_at": int(created_at),
    }


def order_row(conn: Connection, link_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    """The order with ``link_id`` (every column but the surrogate id), or None; ``lock``: held
    until the transaction ends (PostgreSQL; SQLite's write lock already serializes writers)."""
    orders = schema.orders
    stmt = sa.select(*row_columns(orders)).where(orders.c.order_link_id == link_id)
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return None if row is None else row._asdict()


def write_intent(conn: Connection, values: Mapping[str, Any]) -> dict[str, Any]:
    """Insert the intent unless its link id is stored; returns the stored row either way."""
    orders = schema.orders
    insert = insert_ignoring(orders, ("order_link_id",), conn.dialect)
    conn.execute(insert.values(**values))
    row = order_row(conn, values["order_link_id"])
    assert row is not None  # inserted, or there before
    if row["run_id"] != values["run_id"]:
        raise ValueError(
            f"order link id {values['order_link_id']!r} belongs to run {row['run_id']}, "
            f"not {values['run_id']}"
        )
    return row


def merge(row: Mapping[str, Any], update: OrderUpdate) -> dict[str, Any]:
    """The columns ``update`` changes in the stored ``row`` under the ledger's rules (module
    docstring); empty when it changes nothing."""
    link_id = row["order_link_id"]
    changes: dict[str, Any] = {}
    stored = row["status"]
    if stored in schema.FINAL_ORDER_STATUSES:
        if update.status in schema.FINAL_ORDER_STATUSES and update.status != stored:
            log.warning("order %s: reported %s after %s; it stays %s",
                        link_id, update.status, stored, stored)  # fmt: skip
    elif _RANK[update.status] > _RANK[stored]:
        changes["status"] = update.status
    if update.cum_exec_qty is not None and update.cum_exec_qty > row["cum_exec_qty"]:
        changes["cum_exec_qty"] = update.cum_exec_qty
        if update.avg_price is not None:
            changes["avg_price"] = update.avg_price
    elif update.avg_price is not None and row["avg_price"] is None:
        changes["avg_price"] = update.avg_price
    if update.order_id is not None:
        if row["order_id"] is None:
            changes["order_id"] = update.order_id
        elif row["order_id"] != update.order_id:
            log.warning("order %s: reported with exchange id %s, stored with %s; keeping it",
                        link_id, update.order_id, row["order_id"])  # fmt: skip
    for name in ("reject_code", "reject_reason"):
        value = getattr(update, name)
        if value is not None and row[name] is None:
            changes[name] = value
    if changes:
        changes["updated_at"] = max(int(row["updated_at"]), int(update.updated_at))
    return changes


def apply_update(conn: Connection, link_id: str, update: OrderUpdate) -> bool:
    """Apply ``update`` to the stored order (locked while it is read and written); True if
    anything changed. LookupError when no order has ``link_id``."""
    row = order_row(conn, link_id, lock=True)
    if row is None:
        raise LookupError(f"no order with link id {link_id!r}")
    changes = merge(row, update)
    if changes:
        orders = schema.orders
        conn.execute(orders.update().where(orders.c.order_link_id == link_id).values(**changes))
    return bool(changes)


def insert_executions(
    conn: Connection, run_id: str, executions: Iterable[Execution]
) -> list[Execution]:
    """Store each execution whose exec id the run does not have yet, with its position row;
    returns those, in the order given."""
    fills, positions = schema.fills, schema.positions
    insert_fill = insert_ignoring(fills, ("run_id", "exec_id"), conn.dialect).returning(fills.c.id)
    insert_position = insert_ignoring(
        positions, ("run_id", "time", "symbol", "exec_id"), conn.dialect
    )
    new: list[Execution] = []
    for execution in executions:
        fill = execution.fill
        _fits("exec_id", fill.exec_id)
        stored = conn.execute(
            insert_fill.values(
                run_id=run_id,
                exec_id=fill.exec_id,
                order_link_id=fill.link_id,
                symbol=fill.symbol,
                side=fill.side,
                qty=abs(float(fill.qty)),
                price=float(fill.price),
                fee=float(fill.fee),
                exec_type=fill.exec_type,
                cash_flow=float(fill.cash_flow),
                realized_pnl=float(fill.realized_pnl),
                time=int(fill.time),
            )
        ).first()
        if stored is None:
            continue  # stored before: its position row too
        if execution.position is not None:
            conn.execute(
                insert_position.values(
                    run_id=run_id,
                    time=int(fill.time),
                    symbol=fill.symbol,
                    qty=float(execution.position.qty),
                    avg_price=float(execution.position.avg_price),
                    exec_id=fill.exec_id,
                )
            )
        new.append(execution)
    return new


def drift_event(
    run_id: str, *, time: int, subject: str, store: Any, exchange: Any, action: str
) -> dict[str, Any]:
    """The ``events`` row recording one drift a reconciliation found: what (``subject``, the
    event key), the store's and the exchange's view of it, and what was done."""
    _fits("key", subject)
    return {
        "run_id": run_id,
        "time": int(time),
        "kind": DRIFT_KIND,
        "key": subject,
        "detail": {"store": store, "exchange": exchange, "action": action},
    }


def row_columns(table: sa.Table) -> list[sa.Column]:
    """Every column but the surrogate id: a ledger row as callers see it."""
    return [c for c in table.c if c.name != "id"]
