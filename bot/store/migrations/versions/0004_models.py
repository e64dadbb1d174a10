"""A registry of trained model checkpoints.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21

``bot train`` registers each checkpoint it writes, keyed by the version string its decisions
record, so a decision in any run can be traced to the weights, features, data window and
training recipe that produced it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("model", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("feature_digest", sa.String(64), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("data_start", sa.BigInteger(), nullable=True),
        sa.Column("data_end", sa.BigInteger(), nullable=True),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("training", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_models")),
    )
    op.create_index("ix_models_created_at", "models", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_models_created_at", table_name="models")
    op.drop_table("models")
