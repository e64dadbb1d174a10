"""Fast executemany: a Core statement compiled once, then fed plain tuples.

SQLAlchemy's ``connection.execute(statement, list_of_dicts)`` converts every parameter dict into
the driver's format in Python, row by row; on SQLite that costs about three times the insert
itself. The store's bulk rows (klines, journal rows) are already tuples of driver-ready values,
so each statement is compiled once for the engine's dialect and the tuples go straight to the
driver's ``executemany`` through ``exec_driver_sql``. The SQL is still SQLAlchemy's, so the same
code serves SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _insert(table: sa.Table, dialect: Dialect) -> sa.Insert:
    try:
        return _INSERTS[dialect.name](table)
    except KeyError:
        raise NotImplementedError(
            f"the store supports SQLite and PostgreSQL, not {dialect.name!r}"
        ) from None


def insert_ignoring(table: sa.Table, conflict: Sequence[str], dialect: Dialect) -> sa.Insert:
    """``INSERT ... ON CONFLICT (conflict) DO NOTHING``: replays and re-imports add nothing."""
    return _insert(table, dialect).on_conflict_do_nothing(index_elements=list(conflict))


def upsert(
    table: sa.Table, conflict: Sequence[str], update: Sequence[str], dialect: Dialect
) -> sa.Insert:
    """``INSERT ... ON CONFLICT (conflict) DO UPDATE SET update = excluded.update``: for the
    rare rows that must replace what is stored (a bar the venue corrected)."""
    insert = _insert(table, dialect)
    return insert.on_conflict_do_update(
        index_elements=list(conflict), set_={name: insert.excluded[name] for name in update}
    )


class BulkStatement:
    """One statement run as executemany over tuples whose items follow ``keys``.

    Values must be what the driver accepts as is (``int``, ``float``, ``str``, ``None``; JSON
    already serialized): no SQLAlchemy type processing happens on this path. Inserts name the
    columns they set in ``keys`` (in table order); other statements name their bind parameters
    in the order the SQL uses them.

    ``plan_each_row`` is for lookups (an UPDATE ... WHERE key = ?) into a table that grows
    while the program runs. psycopg prepares a statement it executes repeatedly, and PostgreSQL
    then settles on one generic plan; made while the table was nearly empty, that plan is a
    sequential scan, and it stays cached as the table grows, so a long backtest's flushes slow
    down quadratically. On PostgreSQL the flag plans every execution for the statement's
    duration (``plan_cache_mode``, restored afterwards), which keeps the index lookup.
    """

    def __init__(
        self,
        statement: sa.Insert | sa.Update,
        keys: Sequence[str],
        dialect: Dialect,
        *,
        plan_each_row: bool = False,
    ):
        compiled = statement.compile(
            dialect=dialect,
            column_keys=list(keys) if isinstance(statement, sa.Insert) else None,
            for_executemany=True,
        )
        self.sql = compiled.string
        self.keys = tuple(keys)
        order = compiled.positiontup  # None for named paramstyles (psycopg's pyformat)
        if order is not None and tuple(order) != self.keys:
            raise ValueError(f"keys {self.keys} differ from the statement's parameters {order}")
        self._shape = list if order is not None else self._named
        self._custom_plans = plan_each_row and dialect.name == "postgresql"

    def _named(self, rows: Sequence[tuple]) -> list[dict]:
        keys = self.keys
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def execute(self, conn: Connection, rows: Sequence[tuple]) -> int:
        """Run the statement once per row, in order; returns the rows it changed."""
        if not rows:
            return 0
        if not self._custom_plans:
            return conn.exec_driver_sql(self.sql, self._shape(rows)).rowcount
        # SET LOCAL ends with the transaction, also when a failure rolls it back
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        changed = conn.exec_driver_sql(self.sql, self._shape(rows)).rowcount
        conn.exec_driver_sql("SET LOCAL plan_cache_mode TO DEFAULT")
        return changed
