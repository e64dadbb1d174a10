"""One position row per (run, time, symbol).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

A restarted daemon may book again a fill it had booked at a bar's open just before it stopped;
the fill itself is ignored by its unique exec id, and with this key its position row is too.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("positions") as batch:
        batch.drop_index("ix_positions_run_id_time")
        batch.create_unique_constraint(
            "uq_positions_run_id_time_symbol", ["run_id", "time", "symbol"]
        )


def downgrade() -> None:
    with op.batch_alter_table("positions") as batch:
        batch.drop_constraint("uq_positions_run_id_time_symbol", type_="unique")
        batch.create_index("ix_positions_run_id_time", ["run_id", "time"])
