"""The tables of the store, as SQLAlchemy Core metadata.

This module is the target that Alembic autogenerate compares against; the migrations in
``migrations/versions`` are the history that builds it. A test holds the two equal on every
supported backend, so a column added here without a migration fails CI.

Times are integer epoch milliseconds (UTC) everywhere, as the rest of the project.
"""

from __future__ import annotations

import sqlalchemy as sa

#: Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: 64-bit surrogate keys; SQLite only auto-increments an ``INTEGER PRIMARY KEY`` (its rowid),
#: which is 64-bit there anyway.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column:
    return sa.Column("id", RowId, primary_key=True, autoincrement=True)


def _run_id() -> sa.Column:
    return sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False)


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("strategy", sa.String(200), nullable=False),
    sa.Column("symbols", sa.JSON, nullable=False),
    sa.Column("interval", sa.String(8), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("code_version", sa.String(64), nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("finished_at", sa.BigInteger),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("halted_reason", sa.Text),
    sa.Column("metrics", sa.JSON),
    sa.Column("data_start", sa.BigInteger),
    sa.Column("data_end", sa.BigInteger),
    # close of the last step whose journal rows are committed (a restart resumes after it)
    sa.Column("last_step", sa.BigInteger),
    # the one process driving the run (a daemon): who, when it last said so (the database's
    # clock, epoch ms) and when its claim lapses unless renewed; NULL owner: nobody
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_heartbeat", sa.BigInteger),
    sa.Column("lease_expires", sa.BigInteger),
    sa.Index("ix_runs_started_at", "started_at"),
)

klines = sa.Table(
    "klines",
    metadata,
    _id(),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("interval", sa.String(8), nullable=False),
    sa.Column("start", sa.BigInteger, nullable=False),
    sa.Column("open", sa.Double, nullable=False),
    sa.Column("high", sa.Double, nullable=False),
    sa.Column("low", sa.Double, nullable=False),
    sa.Column("close", sa.Double, nullable=False),
    sa.Column("volume", sa.Double, nullable=False),
    sa.Column("turnover", sa.Double),
    sa.UniqueConstraint("symbol", "interval", "start"),
)

decisions = sa.Table(
    "decisions",
    metadata,
    _id(),
    _run_id(),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("strategy", sa.String(200), nullable=False),
    sa.Column("strategy_version", sa.String(32), nullable=False),
    sa.Column("model_version", sa.String(64)),
    sa.Column("weights", sa.JSON, nullable=False),
    sa.Column("target", sa.JSON, nullable=False),
    sa.Column("stale", sa.JSON, nullable=False),
    # also serves lookups by (run_id, time): no separate index needed
    sa.UniqueConstraint("run_id", "time", "strategy"),
)

#: Order statuses, as Bybit names them. ``Unknown`` is the write-ahead record of an order that
#: may or may not have reached the exchange (it is resolved, never presumed failed); Filled,
#: Cancelled and Rejected are final. Paper runs use New, Filled and Cancelled.
ORDER_STATUSES = ("Unknown", "New", "PartiallyFilled", "Filled", "Cancelled", "Rejected")
FINAL_ORDER_STATUSES = ("Filled", "Cancelled", "Rejected")

orders = sa.Table(
    "orders",
    metadata,
    _id(),
    _run_id(),
    sa.Column("order_link_id", sa.String(36), nullable=False),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("qty", sa.Double, nullable=False),
    sa.Column("order_type", sa.String(8), nullable=False, server_default="Market"),
    sa.Column("decision_time", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # the exchange's id, once it is known (NULL: never sent, not acknowledged yet, or paper)
    sa.Column("order_id", sa.String(64)),
    # limit price (limit IOC orders); NULL for market orders
    sa.Column("price", sa.Double),
    sa.Column("cum_exec_qty", sa.Double, nullable=False, server_default="0"),
    # average price of what executed; NULL while nothing did
    sa.Column("avg_price", sa.Double),
    # an order too large for one request is split into legs; attempt counts re-decisions
    sa.Column("leg", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reduce_only", sa.Boolean, nullable=False, server_default=sa.false()),
    # the exchange's retCode as text, or the name of a rule of the bot's own that refused it
    sa.Column("reject_code", sa.String(32)),
    sa.Column("reject_reason", sa.Text),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("order_link_id"),
    sa.CheckConstraint(sa.column("status").in_(ORDER_STATUSES), name="status"),
    sa.Index("ix_orders_run_id_decision_time", "run_id", "decision_time"),
    # what a reconciliation looks up: the run's orders that are not finished
    sa.Index("ix_orders_run_id_status", "run_id", "status"),
)

fills = sa.Table(
    "fills",
    metadata,
    _id(),
    _run_id(),
    sa.Column("exec_id", sa.String(80), nullable=False),
    sa.Column("order_link_id", sa.String(36)),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("qty", sa.Double, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("fee", sa.Double, nullable=False),
    sa.Column("exec_type", sa.String(16), nullable=False),
    sa.Column("cash_flow", sa.Double, nullable=False),
    sa.Column("realized_pnl", sa.Double, nullable=False),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("run_id", "exec_id"),
    sa.Index("ix_fills_run_id_time", "run_id", "time"),
)

positions = sa.Table(
    "positions",
    metadata,
    _id(),
    _run_id(),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("qty", sa.Double, nullable=False),
    sa.Column("avg_price", sa.Double, nullable=False),
    # the execution (fills.exec_id) that left the position so; '' for a row recorded without
    # one. Several executions of a symbol at one time each keep their row, and a restarted
    # process re-booking the same execution adds nothing (see migration 0006).
    sa.Column("exec_id", sa.String(80), nullable=False, server_default=""),
    sa.UniqueConstraint("run_id", "time", "symbol", "exec_id"),
)

equity = sa.Table(
    "equity",
    metadata,
    _id(),
    _run_id(),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("equity", sa.Double, nullable=False),
    sa.Column("cash", sa.Double, nullable=False),
    sa.Column("gross", sa.Double, nullable=False),
    sa.UniqueConstraint("run_id", "time"),
)

events = sa.Table(
    "events",
    metadata,
    _id(),
    _run_id(),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    # tells apart events of one kind at one time (e.g. the symbol); '' when there is one
    sa.Column("key", sa.String(64), nullable=False, server_default=""),
    sa.Column("detail", sa.JSON, nullable=False),
    # an event happens once: a replayed or doubled one adds nothing
    sa.UniqueConstraint("run_id", "time", "kind", "key"),
)

funding_rates = sa.Table(
    "funding_rates",
    metadata,
    _id(),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("rate", sa.Double, nullable=False),
    sa.UniqueConstraint("symbol", "time"),
)

models = sa.Table(
    "models",
    metadata,
    # "<model>-<12 hex of the weights>": what every decision made with it records
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(32), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("feature_digest", sa.String(64), nullable=False),
    sa.Column("symbols", sa.JSON, nullable=False),
    sa.Column("interval", sa.String(8), nullable=False),
    sa.Column("data_start", sa.BigInteger),
    sa.Column("data_end", sa.BigInteger),
    sa.Column("hyperparameters", sa.JSON, nullable=False),
    sa.Column("training", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("code_version", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_models_created_at", "created_at"),
)

store_meta = sa.Table(
    "store_meta",
    metadata,
    # one row: a random id given to the database when it is created, so a process can tell
    # that "its" database was replaced under it (restored, recreated, another file)
    sa.Column("store_id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
