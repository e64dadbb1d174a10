"""The store's bulk write statements, compiled once per engine.

Each constant lists the columns of a row tuple in the order the journal and the kline import
build them; the statements are the idempotent forms the contracts call for (a replayed decision,
order, fill or bar after a restart adds nothing).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from bot.store import schema
from bot.store.bulk import BulkStatement, insert_ignoring, upsert

KLINE_KEYS = ("symbol", "interval", "start", "open", "high", "low", "close", "volume", "turnover")
DECISION_KEYS = (
    "run_id", "time", "strategy", "strategy_version", "model_version", "weights", "target", "stale",
)  # fmt: skip
ORDER_KEYS = (
    "run_id", "order_link_id", "symbol", "side", "qty", "order_type", "decision_time", "reason",
    "status", "cum_exec_qty", "avg_price", "attempt", "created_at", "updated_at",
)  # fmt: skip
FILL_KEYS = (
    "run_id", "exec_id", "order_link_id", "symbol", "side", "qty", "price", "fee", "exec_type",
    "cash_flow", "realized_pnl", "time",
)  # fmt: skip
ORDER_STATUS_KEYS = (
    "new_status", "new_cum_exec_qty", "new_avg_price", "new_updated_at", "match_run_id",
    "match_link_id",
)  # fmt: skip
POSITION_KEYS = ("run_id", "time", "symbol", "qty", "avg_price", "exec_id")
EQUITY_KEYS = ("run_id", "time", "equity", "cash", "gross")
EVENT_KEYS = ("run_id", "time", "kind", "key", "detail")
FUNDING_KEYS = ("symbol", "time", "rate")
PROGRESS_KEYS = ("new_last_step", "match_run_id")


class Writes:
    """Compiled bulk statements for one dialect (shared by the store and all its journals)."""

    def __init__(self, dialect: Dialect):
        def ignoring(table: sa.Table, conflict: tuple[str, ...], keys: tuple[str, ...]):
            return BulkStatement(insert_ignoring(table, conflict, dialect), keys, dialect)

        orders = schema.orders
        self.klines = ignoring(schema.klines, ("symbol", "interval", "start"), KLINE_KEYS)
        self.klines_revised = BulkStatement(
            upsert(schema.klines, ("symbol", "interval", "start"), KLINE_KEYS[3:], dialect),
            KLINE_KEYS,
            dialect,
        )
        self.decisions = ignoring(schema.decisions, ("run_id", "time", "strategy"), DECISION_KEYS)
        self.orders = ignoring(orders, ("order_link_id",), ORDER_KEYS)
        self.fills = ignoring(schema.fills, ("run_id", "exec_id"), FILL_KEYS)
        self.equity = ignoring(schema.equity, ("run_id", "time"), EQUITY_KEYS)
        # The status a paper order reaches (Filled by its fill, Cancelled when replaced); None
        # keeps a value. Only orders nobody but the journal wrote are touched: still New and
        # never given an exchange id. A live order's status is the exchange's, set through the
        # ledger (bot.store.ledger), and a fill booked by the engine must not finish an order
        # the exchange reports partly filled.
        self.order_status = BulkStatement(
            sa.update(orders)
            .where(
                orders.c.run_id == sa.bindparam("match_run_id"),
                orders.c.order_link_id == sa.bindparam("match_link_id"),
                orders.c.status == sa.literal_column("'New'"),
                orders.c.order_id.is_(None),
            )
            .values(
                status=sa.bindparam("new_status"),
                cum_exec_qty=_keep(orders.c.cum_exec_qty, "new_cum_exec_qty"),
                avg_price=_keep(orders.c.avg_price, "new_avg_price"),
                updated_at=_keep(orders.c.updated_at, "new_updated_at"),
            ),
            ORDER_STATUS_KEYS,
            dialect,
            plan_each_row=True,
        )
        self.positions = ignoring(
            schema.positions, ("run_id", "time", "symbol", "exec_id"), POSITION_KEYS
        )
        self.funding = ignoring(schema.funding_rates, ("symbol", "time"), FUNDING_KEYS)
        runs = schema.runs
        self.progress = BulkStatement(
            sa.update(runs)
            .where(runs.c.id == sa.bindparam("match_run_id"))
            .values(last_step=sa.bindparam("new_last_step")),
            PROGRESS_KEYS,
            dialect,
        )
        self.events = ignoring(schema.events, ("run_id", "time", "kind", "key"), EVENT_KEYS)


def _keep(column: sa.Column, name: str) -> sa.ColumnElement:
    """``COALESCE(:name, column)``: the new value, or the stored one when given None."""
    return sa.func.coalesce(sa.bindparam(name, type_=column.type), column)
