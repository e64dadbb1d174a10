"""Run progress (``runs.last_step``) and stored funding rates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

A paper run resumes after the last step whose journal is committed, which ``last_step``
records in the same transaction; funding rates fetched from the exchange are kept so that a
resumed run and a backtest of the same bars settle the same funding.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("last_step", sa.BigInteger(), nullable=True))
    op.create_table(
        "funding_rates",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_rates")),
        sa.UniqueConstraint("symbol", "time", name=op.f("uq_funding_rates_symbol_time")),
    )


def downgrade() -> None:
    op.drop_table("funding_rates")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("last_step")
