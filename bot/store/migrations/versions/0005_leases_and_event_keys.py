"""Run leases, unique events and the store's identity.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

* ``runs.lease_owner / lease_heartbeat / lease_expires``: one daemon at a time drives a run;
  a second one is refused while the lease is alive, a crashed holder's lease lapses.
* ``events.key`` and a unique (run_id, time, kind, key): an event is recorded once, however
  often a step is replayed or written (two daemons used to write duplicate daily summaries).
  Duplicates already stored are removed first, keeping the earliest.
* ``store_meta``: a random id per database, so a daemon notices its database was replaced.
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_heartbeat", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("lease_expires", sa.BigInteger(), nullable=True))
    op.execute(
        "DELETE FROM events WHERE id NOT IN "
        "(SELECT MIN(id) FROM events GROUP BY run_id, time, kind)"
    )
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("key", sa.String(64), nullable=False, server_default=""))
        batch.drop_index("ix_events_run_id_time")
        batch.create_unique_constraint(
            "uq_events_run_id_time_kind_key", ["run_id", "time", "kind", "key"]
        )
    meta = op.create_table(
        "store_meta",
        sa.Column("store_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_store_meta")),
    )
    created = int(time.time() * 1000)
    op.bulk_insert(meta, [{"store_id": secrets.token_hex(16), "created_at": created}])


def downgrade() -> None:
    op.drop_table("store_meta")
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_run_id_time_kind_key", type_="unique")
        batch.create_index("ix_events_run_id_time", ["run_id", "time"])
        batch.drop_column("key")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("lease_expires")
        batch.drop_column("lease_heartbeat")
        batch.drop_column("lease_owner")
