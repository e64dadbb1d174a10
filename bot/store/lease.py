"""One process per run: a lease on the run's row, judged by the database's own clock.

Two daemons driving one run would both decide and both write (and, trading live, send every
order twice). So a daemon claims its run before doing anything: it writes its identity into
``runs.lease_owner`` with an expiry ``lease_ttl`` ahead, renews it with every journal flush and
from a heartbeat, and gives it up when it stops. The claim is one conditional UPDATE, atomic on
SQLite and PostgreSQL alike; every flush re-checks it in its own transaction (the *fence*), so
a process that lost its lease cannot write a single row after losing it.

Time is the database's clock, not the processes': machines sharing a PostgreSQL store need not
agree on the time, only the database must. A holder that crashed stops renewing and its lease
lapses; a holder on this very machine whose process no longer exists is known dead at once
(so a daemon restarted right after a crash does not have to wait). ``--force`` takes over a
live lease explicitly: the old holder then finds its fence shut and stops.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.core.timeutil import iso
from bot.store import schema

_NOW_MS = {
    "sqlite": "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
}


def db_now(conn: Connection) -> sa.ColumnElement[int]:
    """The database's clock in epoch ms, as an SQL expression."""
    return sa.literal_column(_NOW_MS[conn.dialect.name], sa.BigInteger)


def new_owner() -> str:
    """This process's identity as a lease holder: host, pid and a random tag (pids recur)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a run's lease, as the database saw it at ``now``."""

    owner: str
    heartbeat: int | None
    expires: int | None
    now: int

    @property
    def host(self) -> str:
        return self.owner.rsplit(":", 2)[0]

    @property
    def pid(self) -> int | None:
        parts = self.owner.rsplit(":", 2)
        return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None

    def is_dead_here(self) -> bool:
        """The holder is a process of this machine that no longer exists (it crashed)."""
        if self.host != socket.gethostname() or self.pid is None or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # exists, owned by someone else
            return False
        return False

    def describe(self) -> str:
        seen = f", last heartbeat {iso(self.heartbeat)} UTC" if self.heartbeat else ""
        left = max(0, (self.expires or 0) - self.now) / 1000
        return f"pid {self.pid} on host {self.host}{seen}, lease expires in {left:.0f} s"


def acquire(conn: Connection, run_id: str, owner: str, ttl_ms: int, force: bool) -> Holder | None:
    """Claim the run for ``owner``; None on success, else the live holder that keeps it.

    Free, already ours, lapsed, held by a dead process of this machine, or ``force``: taken."""
    runs = schema.runs
    now = db_now(conn)
    claimable = sa.or_(
        runs.c.lease_owner.is_(None),
        runs.c.lease_owner == owner,
        runs.c.lease_expires < now,
        sa.true() if force else sa.false(),
    )
    holder = current(conn, run_id)
    if holder is not None and holder.is_dead_here():
        claimable = sa.or_(claimable, runs.c.lease_owner == holder.owner)
    taken = conn.execute(
        runs.update()
        .where(runs.c.id == run_id, claimable)
        .values(lease_owner=owner, lease_heartbeat=now, lease_expires=now + ttl_ms)
    )
    return None if taken.rowcount == 1 else current(conn, run_id)


def renew(conn: Connection, run_id: str, owner: str, ttl_ms: int) -> bool:
    """Extend ``owner``'s lease; False when it is no longer theirs (taken over, or the run is
    gone: a replaced database)."""
    runs = schema.runs
    now = db_now(conn)
    renewed = conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.lease_owner == owner)
        .values(lease_heartbeat=now, lease_expires=now + ttl_ms)
    )
    return renewed.rowcount == 1


def release(conn: Connection, run_id: str, owner: str) -> None:
    runs = schema.runs
    conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.lease_owner == owner)
        .values(lease_owner=None, lease_heartbeat=None, lease_expires=None)
    )


def current(conn: Connection, run_id: str) -> Holder | None:
    """The run's holder now (None: nobody holds it)."""
    runs = schema.runs
    row = conn.execute(
        sa.select(
            runs.c.lease_owner, runs.c.lease_heartbeat, runs.c.lease_expires, db_now(conn)
        ).where(runs.c.id == run_id)
    ).first()
    if row is None or row[0] is None:
        return None
    return Holder(row[0], row[1], row[2], int(row[3]))
