"""Engines for the store: any SQLite or PostgreSQL URL, set up the way the store relies on."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.store.encoding import dumps

#: Execution option: the transaction takes the database's write lock as it begins, so that
#: processes opening a fresh database at the same moment migrate it one after the other.
SERIALIZED = "bot_store_serialized"
#: Key of the PostgreSQL advisory lock that serializes those transactions.
_PG_LOCK_KEY = 0x626F7473746F7265  # "botstore"
#: Seconds one SQLite statement waits for another writer's lock. Short on purpose: the store
#: retries locked writes itself (a million-bar import holds the lock ~5 s), logging each wait,
#: so a lock held by another process shows up in the log instead of as a silent minute.
_SQLITE_BUSY_TIMEOUT = 2


def create_engine(url: str | sa.URL) -> Engine:
    """An engine whose JSON columns use :func:`bot.store.encoding.dumps`; for a SQLite file,
    its directory is created and every connection gets the pragmas of :func:`_sqlite_pragmas`."""
    url = sa.make_url(url)
    if url.get_backend_name() != "sqlite":
        engine = sa.create_engine(url, json_serializer=dumps)
        sa.event.listen(engine, "begin", _postgres_begin)
        return engine
    if url.database not in (None, "", ":memory:") and not url.query.get("uri"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url, json_serializer=dumps, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT}
    )
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Per-connection settings (pragmas are not stored in the file, except the journal mode).

    - WAL: readers (``bot runs show``, a notebook) keep reading while a paper-trading run
      writes, and a commit appends to the log instead of rewriting pages in place.
    - synchronous=NORMAL: under WAL this cannot corrupt the database; a power cut may lose the
      last commits, an application crash loses nothing. It saves an fsync per commit, which
      otherwise dominates the many small flushes of a live run.
    - foreign_keys=ON: SQLite ignores foreign keys unless asked; PostgreSQL always enforces
      them, and both backends should refuse the same rows.
    """
    # Python's sqlite3 opens transactions itself, and only before INSERT/UPDATE/DELETE: a
    # migration's CREATE TABLE would commit on its own. Turn that off; _sqlite_begin opens
    # every transaction explicitly instead, so DDL and reads are transactional too.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    serialized = connection.get_execution_options().get(SERIALIZED, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if serialized else "BEGIN")


def _postgres_begin(connection: sa.Connection) -> None:
    if connection.get_execution_options().get(SERIALIZED, False):
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
