"""The live order ledger: order lifecycle columns, one position row per execution.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Trading live, an order is written to the store *before* its request is sent (status
``Unknown``: after a crash nobody knows whether the exchange got it) and then follows what the
exchange reports. So ``orders`` gains:

* ``order_id`` (the exchange's id), ``price`` (limit IOC orders), ``cum_exec_qty`` and
  ``avg_price`` (what executed so far), ``leg`` and ``attempt`` (the parts of the
  deterministic ``orderLinkId`` besides run, decision and symbol), ``reduce_only``,
  ``reject_code`` / ``reject_reason``, ``created_at`` / ``updated_at`` (epoch ms);
* a CHECK on ``status``: Unknown, New, PartiallyFilled, Filled, Cancelled, Rejected. Paper runs
  write New, Filled and Cancelled, which stay valid;
* an index on (run_id, status), for the unresolved orders a reconciliation looks up.

Existing rows (all written by paper runs and backtests) get ``created_at = updated_at =
decision_time`` (those runs have no other clock), ``leg = attempt = 0`` (the only values they
ever used), and a ``Filled`` order gets ``cum_exec_qty = qty`` and the volume-weighted price of
its trades as ``avg_price`` (a paper order always filled whole).

**Positions.** ``positions`` was unique on (run_id, time, symbol), so of several executions of
one symbol at one time (the legs of a split order, a partial fill and its rest, a flip's close
and open) only the first position row survived. Now each row names the execution that produced
it, ``exec_id``, and the key is (run_id, time, symbol, exec_id):

* two executions at one time have different exec ids, so both rows are kept;
* a process restarted after booking an execution books it again with the same exec id, and
  the insert (ON CONFLICT DO NOTHING) adds nothing, as before;
* a row recorded without an execution gets ``exec_id = ''``, which keeps the old rule for it
  (one per run, time and symbol).

Keying on (run_id, exec_id) alone would have been enough for live rows, but not for rows
without an execution, nor for the rows already stored. Those are given the exec id of the first
trade of their run, time and symbol (by insertion order): the one row that the old key kept
was the first one written, and the journal writes each fill just before its position. A paper
run stopped before this migration and resumed after it therefore still recognises the fill it
re-books. A row with no matching trade keeps ''.

**Reconciliation drifts** need no table: they are ``events`` of kind ``reconcile_drift``, the key
naming what drifted (``position:BTCUSDT``, ``order:<link id>``, ``wallet``). Drifts are rare,
their details differ by kind (which fields disagreed, what was done about it) and are read by
people and by ``bot runs show``, which JSON in ``events.detail`` serves; the unique (run_id,
time, kind, key) already records one reconciliation's finding once however often it is
written. See ``Store.record_drift``.

The downgrade keeps the first row of each (run, time, symbol), as the old key did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATUSES = ("Unknown", "New", "PartiallyFilled", "Filled", "Cancelled", "Rejected")


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("order_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("price", sa.Double(), nullable=True))
        batch.add_column(sa.Column("cum_exec_qty", sa.Double(), server_default="0", nullable=False))
        batch.add_column(sa.Column("avg_price", sa.Double(), nullable=True))
        batch.add_column(sa.Column("leg", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("attempt", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("reduce_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("reject_code", sa.String(32), nullable=True))
        batch.add_column(sa.Column("reject_reason", sa.Text(), nullable=True))
        # NULL for a moment: filled in from each row's decision time below
        batch.add_column(sa.Column("created_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("updated_at", sa.BigInteger(), nullable=True))
    op.execute("UPDATE orders SET created_at = decision_time, updated_at = decision_time")
    op.execute(
        "UPDATE orders SET cum_exec_qty = qty, avg_price = ("
        " SELECT SUM(f.price * f.qty) / SUM(f.qty) FROM fills f"
        " WHERE f.run_id = orders.run_id AND f.order_link_id = orders.order_link_id"
        " AND f.exec_type = 'Trade' AND f.qty > 0"
        ") WHERE status = 'Filled'"
    )
    listed = ", ".join(f"'{status}'" for status in STATUSES)
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("created_at", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("updated_at", existing_type=sa.BigInteger(), nullable=False)
        batch.create_check_constraint(op.f("ck_orders_status"), f"status IN ({listed})")
        batch.create_index("ix_orders_run_id_status", ["run_id", "status"])

    with op.batch_alter_table("positions") as batch:
        batch.add_column(sa.Column("exec_id", sa.String(80), server_default="", nullable=False))
        batch.drop_constraint("uq_positions_run_id_time_symbol", type_="unique")
        batch.create_unique_constraint(
            "uq_positions_run_id_time_symbol_exec_id", ["run_id", "time", "symbol", "exec_id"]
        )
    op.execute(
        "UPDATE positions SET exec_id = COALESCE(("
        " SELECT f.exec_id FROM fills f"
        " WHERE f.run_id = positions.run_id AND f.time = positions.time"
        " AND f.symbol = positions.symbol AND f.exec_type = 'Trade'"
        " ORDER BY f.id LIMIT 1"
        "), '')"
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM positions WHERE id NOT IN "
        "(SELECT MIN(id) FROM positions GROUP BY run_id, time, symbol)"
    )
    with op.batch_alter_table("positions") as batch:
        batch.drop_constraint("uq_positions_run_id_time_symbol_exec_id", type_="unique")
        batch.create_unique_constraint(
            "uq_positions_run_id_time_symbol", ["run_id", "time", "symbol"]
        )
        batch.drop_column("exec_id")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_run_id_status")
        batch.drop_constraint(op.f("ck_orders_status"), type_="check")
        for column in ("updated_at", "created_at", "reject_reason", "reject_code",
                       "reduce_only", "attempt", "leg", "avg_price", "cum_exec_qty", "price",
                       "order_id"):  # fmt: skip
            batch.drop_column(column)
