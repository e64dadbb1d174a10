"""The SQL store: runs, klines and run journals in any SQLite or PostgreSQL database.

Opening a store upgrades its schema to the newest migration, so a database written by an older
version of the bot is brought forward before anything reads it. Bulk writes (kline imports,
journals) go through statements compiled once per engine (see :mod:`bot.store.bulk`); the rest
is plain SQLAlchemy Core.

Faults are named, never tracebacks (:mod:`bot.store.faults`): a database that cannot be opened
is a :class:`StoreOpenError`; writes that meet a lock held by another process are retried for
``lock_timeout_s`` with a log line per wait; :meth:`Store.check_alive` tells a process that its
database was deleted or replaced. Runs are leased to one process at a time (:mod:`.lease`).

Paper runs and backtests journal through the batched :class:`StoreJournal`. A live executor
uses the order ledger (:mod:`.ledger`) instead, whose every write is its own committed
transaction fenced by the run's lease: the write-ahead order intent must be in the database
before the order's request leaves, and a process that lost its run must not write at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine, Row

from bot.core.events import RunEvent
from bot.redact import redact_url
from bot.store import lease, ledger, migrate, schema
from bot.store.bulk import insert_ignoring
from bot.store.connect import create_engine
from bot.store.faults import (
    LeaseHeldError,
    LeaseLostError,
    Retrying,
    StoreGoneError,
    StoreOpenError,
    StoreUnavailableError,
    cause,
)
from bot.store.journal import StoreJournal
from bot.store.klines import COLUMNS as KLINE_COLUMNS
from bot.store.klines import frame_chunks, to_frame
from bot.store.ledger import Execution, LastExecution, OrderUpdate
from bot.store.writes import Writes

log = logging.getLogger(__name__)

RUN_KINDS = ("backtest", "paper", "live")
END_STATUSES = ("finished", "failed", "halted")
#: A paper or live run is ``running`` while a daemon works on it and ``stopped`` after a
#: clean stop; either can be resumed.
LIVE_STATUSES = ("running", "stopped")
#: Shortest run id prefix accepted by :meth:`Store.get_run` (shorter ones match too much).
MIN_PREFIX = 4
#: Kline rows per executemany and per fetched partition: bounds memory on million-row imports.
KLINE_CHUNK_ROWS = 50_000
#: How long writes keep retrying a database locked by another process before giving up.
LOCK_TIMEOUT_S = 60.0
#: How long a lease lasts past the write that renews it, unless the caller says otherwise.
LEASE_TTL_S = 30.0

T = TypeVar("T")
#: What opening a database can fail with: a bad or unsupported URL, a missing driver, a file
#: that is not a database, read-only or in an unwritable folder, a server that does not
#: answer, a schema newer than this code.
_OPEN_FAILURES = (
    sa.exc.SQLAlchemyError, OSError, NotImplementedError, ImportError, CommandError, ValueError,
)  # fmt: skip

#: The columns :meth:`Store.orders` and :meth:`Store.positions` return: those a paper run and
#: its backtest share value for value (their parity is checked on them). The live ledger's
#: other columns (exchange ids, times, the execution of a position) are in
#: :meth:`Store.order_ledger` and :meth:`Store.position_changes`.
_JOURNAL_COLUMNS = {
    "orders": ("order_link_id", "symbol", "side", "qty", "order_type", "decision_time",
               "reason", "status"),
    "positions": ("time", "symbol", "qty", "avg_price"),
}  # fmt: skip

_JOURNAL_TABLES: dict[str, sa.Table] = {
    "decisions": schema.decisions,
    "orders": schema.orders,
    "fills": schema.fills,
    "positions": schema.positions,
    "equity": schema.equity,
    "events": schema.events,
}


class Store:
    """A database of runs, klines and journals, opened (and migrated) from a SQLAlchemy URL
    such as ``sqlite:///data/bot.db`` or ``postgresql+psycopg://user@host/db``."""

    def __init__(self, url: str | sa.URL, *, lock_timeout_s: float = LOCK_TIMEOUT_S):
        self.shown_url = redact_url(url)
        self._retry = Retrying(self.shown_url, lock_timeout_s)
        try:
            self._engine = create_engine(url)
            self._writes = Writes(self._engine.dialect)  # fails fast on an unsupported backend
            self._file = _sqlite_file(self._engine.url)
            existed = self._file is None or self._file.exists()
            self._retry(lambda: migrate.upgrade(self._engine), "opening the database")
            self._store_id = self._read_store_id()
            self._file_id = _file_id(self._file)
        except StoreUnavailableError as exc:
            raise StoreOpenError(f"cannot open store {self.shown_url}: {exc}") from None
        except _OPEN_FAILURES as exc:
            raise StoreOpenError(f"cannot open store {self.shown_url}: {cause(exc)}") from None
        self.created = not existed
        log.info("store open: %s%s", self.shown_url, " (new database)" if self.created else "")

    def __repr__(self) -> str:
        return f"Store({self.shown_url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Close pooled connections (journals must be flushed first)."""
        self._engine.dispose()

    def _write(self, work: Callable[[Connection], T], what: str) -> T:
        """Run ``work`` in one transaction, retrying while another process holds the lock."""

        def attempt() -> T:
            with self._engine.begin() as conn:
                return work(conn)

        return self._retry(attempt, what)

    # -- identity: is this still the database we opened? -------------------------------------------
    def _read_store_id(self) -> str:
        with self._engine.connect() as conn:
            return conn.scalar(sa.select(schema.store_meta.c.store_id))

    def check_alive(self, deep: bool = True) -> None:
        """Raise :class:`StoreGoneError` if the database file was deleted or replaced since this
        store opened it, or (``deep``: one query) the database is another one now.

        SQLite keeps writing happily into a deleted file's ghost; without this check a daemon
        would journal into nothing until it stopped, and its next start would open a new run."""
        if self._file is not None:
            try:
                now = _file_id(self._file)
            except FileNotFoundError:
                raise StoreGoneError(
                    f"store {self.shown_url}: the database file was deleted while in use"
                ) from None
            if now != self._file_id:
                raise StoreGoneError(f"store {self.shown_url}: the database file was replaced")
        if deep:
            try:
                found = self._read_store_id()
            except sa.exc.SQLAlchemyError as exc:
                raise StoreGoneError(
                    f"store {self.shown_url}: cannot read it any more ({cause(exc)})"
                ) from None
            if found != self._store_id:
                raise StoreGoneError(f"store {self.shown_url}: it is a different database now")

    # -- leases: one process drives a run ----------------------------------------------------------
    def acquire_lease(self, run_id: str, owner: str, ttl_s: float, *, force: bool = False) -> None:
        """Claim run ``run_id`` for ``owner`` (see :mod:`bot.store.lease`); raises
        :class:`LeaseHeldError` naming the live holder unless ``force``."""

        def claim(conn: Connection) -> lease.Holder | None:
            if conn.scalar(sa.select(schema.runs.c.id).where(schema.runs.c.id == run_id)) is None:
                raise LookupError(f"no run {run_id!r}")
            holder = lease.current(conn, run_id)
            if holder is not None and holder.owner != owner:
                if force:
                    log.warning("run %s: taking the lease over from %s (--force)", run_id,
                                holder.describe())  # fmt: skip
                elif holder.is_dead_here():
                    log.warning("run %s: its last holder (pid %s) is gone; taking over",
                                run_id, holder.pid)  # fmt: skip
            return lease.acquire(conn, run_id, owner, int(ttl_s * 1000), force)

        holder = self._write(claim, "claiming the run")
        if holder is not None:
            raise LeaseHeldError(
                f"run {run_id} is driven by another daemon ({holder.describe()}); stop it, "
                "or take over with --force"
            )

    def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Extend the lease; :class:`LeaseLostError` when it is no longer ``owner``'s."""
        if not self._write(
            lambda conn: lease.renew(conn, run_id, owner, int(ttl_s * 1000)), "renewing the lease"
        ):
            raise LeaseLostError(self._lost(run_id))

    def release_lease(self, run_id: str, owner: str) -> None:
        self._write(lambda conn: lease.release(conn, run_id, owner), "releasing the lease")

    def lease_holder(self, run_id: str) -> lease.Holder | None:
        with self._engine.connect() as conn:
            return lease.current(conn, run_id)

    def _lost(self, run_id: str) -> str:
        try:
            holder = self.lease_holder(run_id)
        except sa.exc.SQLAlchemyError:
            holder = None
        by = f" by {holder.describe()}" if holder else ""
        return f"run {run_id}: this daemon's lease was taken over{by}; it stops without writing"

    def _fence(self, run_id: str, owner: str, ttl_s: float) -> Callable[[Connection], None]:
        """The check every journal transaction of a leased run starts with: the database is
        still the one opened, and the lease still ours (renewed by the same statement)."""
        ttl_ms = int(ttl_s * 1000)

        def fence(conn: Connection) -> None:
            self.check_alive(deep=False)
            if not lease.renew(conn, run_id, owner, ttl_ms):
                raise LeaseLostError(self._lost(run_id))

        return fence

    # -- runs ------------------------------------------------------------------------------------
    def create_run(
        self,
        *,
        run_id: str,
        kind: str,
        strategy: str,
        symbols: list[str] | tuple[str, ...],
        interval: str,
        config: dict[str, Any],
        code_version: str,
        started_at: int,
        data_start: int | None = None,
        data_end: int | None = None,
    ) -> None:
        """Record a run as ``running``. ``config`` is stored exactly as given: the caller strips
        secrets. A run id that exists already is refused."""
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind must be one of {RUN_KINDS}, not {kind!r}")
        runs = schema.runs
        insert = insert_ignoring(runs, ("id",), self._engine.dialect).returning(runs.c.id)

        def create(conn: Connection) -> Row | None:
            return conn.execute(
                insert.values(
                    id=run_id,
                    kind=kind,
                    strategy=strategy,
                    symbols=list(symbols),
                    interval=interval,
                    config=config,
                    code_version=code_version,
                    started_at=started_at,
                    status="running",
                    data_start=data_start,
                    data_end=data_end,
                )
            ).first()

        if self._write(create, "recording the run") is None:  # the id was taken
            raise ValueError(f"run {run_id!r} exists already")

    def finish_run(
        self,
        run_id: str,
        *,
        finished_at: int,
        status: str,
        metrics: dict[str, Any] | None = None,
        halted_reason: str | None = None,
    ) -> None:
        if status not in END_STATUSES:
            raise ValueError(f"a run finishes as one of {END_STATUSES}, not {status!r}")
        runs = schema.runs
        update = (
            runs.update()
            .where(runs.c.id == run_id)
            .values(
                finished_at=finished_at, status=status, metrics=metrics, halted_reason=halted_reason
            )
        )
        if self._write(lambda conn: conn.execute(update).rowcount, "finishing the run") == 0:
            raise LookupError(f"no run {run_id!r}")

    def set_run_status(self, run_id: str, status: str) -> None:
        """Mark a run ``running`` (a daemon resumed it) or ``stopped`` (it stopped cleanly)."""
        if status not in LIVE_STATUSES:
            raise ValueError(f"a live run's status is one of {LIVE_STATUSES}, not {status!r}")
        runs = schema.runs
        update = runs.update().where(runs.c.id == run_id).values(status=status, finished_at=None)
        if self._write(lambda conn: conn.execute(update).rowcount, "setting the run status") == 0:
            raise LookupError(f"no run {run_id!r}")

    def resumable_runs(self, kind: str) -> list[dict[str, Any]]:
        """Runs of ``kind`` a daemon may pick up again (running or stopped), newest first."""
        runs = schema.runs
        stmt = (
            sa.select(runs)
            .where(runs.c.kind == kind, runs.c.status.in_(LIVE_STATUSES))
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        )
        with self._engine.connect() as conn:
            return [row._asdict() for row in conn.execute(stmt)]

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` runs, newest first."""
        runs = schema.runs
        stmt = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [row._asdict() for row in conn.execute(stmt)]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run by id, or by a unique prefix of at least ``MIN_PREFIX`` characters, with the
        row counts of its journal under ``"counts"``; None if nothing matches.

        Raises ValueError when a prefix matches several runs.
        """
        with self._engine.connect() as conn:
            row = _find_run(conn, run_id)
            if row is None:
                return None
            run = row._asdict()
            run["counts"] = {
                name: conn.scalar(
                    sa.select(sa.func.count()).select_from(table).where(table.c.run_id == run["id"])
                )
                for name, table in _JOURNAL_TABLES.items()
            }
            return run

    # -- klines ----------------------------------------------------------------------------------
    def upsert_klines(
        self,
        symbol: str,
        interval: str,
        frame: pd.DataFrame,
        *,
        chunk_rows: int = KLINE_CHUNK_ROWS,
    ) -> int:
        """Insert the bars of ``frame`` that are not stored yet, in one transaction; returns how
        many were new. Columns: ``start`` (int epoch ms), open, high, low, close, volume and
        optionally turnover."""
        return self.import_klines([(symbol, interval, frame)], chunk_rows=chunk_rows)[0]

    def import_klines(
        self,
        frames: Sequence[tuple[str, str, pd.DataFrame]],
        *,
        chunk_rows: int = KLINE_CHUNK_ROWS,
    ) -> list[int]:
        """Insert the new bars of several ``(symbol, interval, frame)`` in **one** transaction
        (all or nothing: an import of a folder never leaves half of it behind); returns how
        many bars of each frame were new."""

        def write(conn: Connection) -> list[int]:
            return [
                sum(
                    self._writes.klines.execute(conn, chunk)
                    for chunk in frame_chunks(symbol, interval, frame, chunk_rows)
                )
                for symbol, interval, frame in frames
            ]

        return self._write(write, "storing bars")

    def load_klines(
        self, symbol: str, interval: str, start: int | None = None, end: int | None = None
    ) -> pd.DataFrame:
        """Bars with ``start <= bar start < end`` in time order (turnover NaN where unknown)."""
        klines = schema.klines
        stmt = (
            sa.select(*(klines.c[name] for name in KLINE_COLUMNS))
            .where(klines.c.symbol == symbol, klines.c.interval == interval)
            .order_by(klines.c.start)
        )
        if start is not None:
            stmt = stmt.where(klines.c.start >= start)
        if end is not None:
            stmt = stmt.where(klines.c.start < end)
        with self._engine.connect() as conn:
            result = conn.execution_options(yield_per=KLINE_CHUNK_ROWS).execute(stmt)
            return to_frame(result.partitions())

    def kline_summary(self) -> list[dict[str, Any]]:
        """Per stored (symbol, interval): the bar count and the first and last bar start."""
        k = schema.klines
        stmt = (
            sa.select(
                k.c.symbol,
                k.c.interval,
                sa.func.count().label("count"),
                sa.func.min(k.c.start).label("first"),
                sa.func.max(k.c.start).label("last"),
            )
            .group_by(k.c.symbol, k.c.interval)
            .order_by(k.c.symbol, k.c.interval)
        )
        with self._engine.connect() as conn:
            return [row._asdict() for row in conn.execute(stmt)]

    # -- funding rates ---------------------------------------------------------------------------
    def upsert_funding(self, symbol: str, times: Sequence[int], rates: Sequence[float]) -> int:
        """Store funding rates not stored yet; returns how many were new."""
        rows = [(symbol, int(t), float(r)) for t, r in zip(times, rates, strict=True)]
        return self._write(lambda conn: self._writes.funding.execute(conn, rows), "storing funding")

    def load_funding(
        self, symbols: Sequence[str], start: int | None = None, end: int | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{symbol: (times, rates)}`` with ``start <= time < end``; symbols with none are left
        out."""
        table = schema.funding_rates
        stmt = (
            sa.select(table.c.symbol, table.c.time, table.c.rate)
            .where(table.c.symbol.in_(list(symbols)))
            .order_by(table.c.symbol, table.c.time)
        )
        if start is not None:
            stmt = stmt.where(table.c.time >= start)
        if end is not None:
            stmt = stmt.where(table.c.time < end)
        found: dict[str, tuple[list[int], list[float]]] = {}
        with self._engine.connect() as conn:
            for symbol, time, rate in conn.execute(stmt):
                times, rates = found.setdefault(symbol, ([], []))
                times.append(time)
                rates.append(rate)
        return {
            s: (np.asarray(t, dtype=np.int64), np.asarray(r, dtype=float))
            for s, (t, r) in found.items()
        }

    # -- trained models --------------------------------------------------------------------------
    def register_model(self, record: dict[str, Any]) -> bool:
        """Register a trained checkpoint (a :data:`schema.models` row); re-registering the same
        weights version changes nothing. Returns True if the row is new."""
        table = schema.models
        insert = insert_ignoring(table, ("version",), self._engine.dialect)
        statement = insert.values(**record).returning(table.c.version)
        created = self._write(lambda conn: conn.execute(statement).first(), "registering a model")
        return created is not None

    def list_models(self, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Registered checkpoints, newest first (optionally of one architecture)."""
        table = schema.models
        stmt = sa.select(table).order_by(table.c.created_at.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(table.c.model == model)
        with self._engine.connect() as conn:
            return [row._asdict() for row in conn.execute(stmt)]

    # -- journal ---------------------------------------------------------------------------------
    def journal(
        self,
        run_id: str,
        batch_rows: int = 20_000,
        background: bool = False,
        *,
        lease_owner: str | None = None,
        lease_ttl_s: float = LEASE_TTL_S,
    ) -> StoreJournal:
        """A journal writing into run ``run_id`` (which must exist: it is the rows' parent);
        ``background`` writes from a thread, overlapping the database with computing. With a
        ``lease_owner``, every write first renews that lease and checks the database is the
        one opened, or writes nothing (:class:`LeaseLostError`, :class:`StoreGoneError`)."""
        runs = schema.runs
        with self._engine.connect() as conn:
            if conn.scalar(sa.select(runs.c.id).where(runs.c.id == run_id)) is None:
                raise LookupError(f"no run {run_id!r}")
        fence = None if lease_owner is None else self._fence(run_id, lease_owner, lease_ttl_s)
        return StoreJournal(
            self._engine, self._writes, run_id, batch_rows, background,
            fence=fence, retry=self._retry,
        )  # fmt: skip

    def decisions(self, run_id: str) -> list[dict[str, Any]]:
        return self._journal_rows(schema.decisions, run_id)

    def orders(self, run_id: str) -> list[dict[str, Any]]:
        """The run's orders as the journal records them (see :meth:`order_ledger` for all the
        ledger's columns)."""
        return self._journal_rows(schema.orders, run_id, _JOURNAL_COLUMNS["orders"])

    def fills(self, run_id: str) -> list[dict[str, Any]]:
        """The run's executions (trades, funding, ...) in the order they were booked: what a
        restart rebuilds the portfolio from."""
        return self._journal_rows(schema.fills, run_id)

    def positions(self, run_id: str) -> list[dict[str, Any]]:
        """The run's position changes (see :meth:`position_changes` for their executions)."""
        return self._journal_rows(schema.positions, run_id, _JOURNAL_COLUMNS["positions"])

    def equity(self, run_id: str) -> list[dict[str, Any]]:
        return self._journal_rows(schema.equity, run_id)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return self._journal_rows(schema.events, run_id)

    def _journal_rows(
        self, table: sa.Table, run_id: str, names: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """A run's rows of one journal table in the order they were recorded: the columns
        ``names`` (default: all but the surrogate ``id`` and the ``run_id`` the caller knows)."""
        if names is None:
            columns = [c for c in table.c if c.name not in ("id", "run_id")]
        else:
            columns = [table.c[name] for name in names]
        stmt = sa.select(*columns).where(table.c.run_id == run_id).order_by(table.c.id)
        with self._engine.connect() as conn:
            return [row._asdict() for row in conn.execute(stmt)]

    # -- the live order ledger (see bot.store.ledger) ----------------------------------------
    def write_order_intent(
        self,
        run_id: str,
        *,
        link_id: str,
        symbol: str,
        side: str,
        qty: float,
        order_type: str,
        decision_time: int,
        leg: int,
        attempt: int,
        reason: str,
        reduce_only: bool,
        price: float | None = None,
        created_at: int,
        lease_owner: str,
        lease_ttl_s: float = LEASE_TTL_S,
    ) -> dict[str, Any]:
        """Commit the order's write-ahead record (status ``Unknown``) before its request is
        sent; returns the stored row (every column but the surrogate id).

        Idempotent: if ``link_id`` is stored already, nothing changes and the stored row is
        returned, status and all: it, not the arguments, is what was (or may have been) sent.
        ``qty`` is unsigned (``side`` gives the direction); ``price`` only for limit orders.
        Fenced: :class:`LeaseLostError` (nothing written) unless ``lease_owner`` still holds
        the run. ValueError for a bad value or a link id of another run."""
        values = ledger.intent_values(
            run_id, link_id=link_id, symbol=symbol, side=side, qty=qty, order_type=order_type,
            decision_time=decision_time, leg=leg, attempt=attempt, reason=reason,
            reduce_only=reduce_only, price=price, created_at=created_at,
        )  # fmt: skip
        fence = self._fence(run_id, lease_owner, lease_ttl_s)

        def write(conn: Connection) -> dict[str, Any]:
            fence(conn)
            return ledger.write_intent(conn, values)

        return self._write(write, "writing an order intent")

    def update_order(
        self,
        link_id: str,
        *,
        status: str,
        order_id: str | None = None,
        cum_exec_qty: float | None = None,
        avg_price: float | None = None,
        reject_code: str | None = None,
        reject_reason: str | None = None,
        updated_at: int,
        lease_owner: str,
        lease_ttl_s: float = LEASE_TTL_S,
    ) -> bool:
        """Apply what the exchange said about an order; True if the stored order changed.

        Monotonic (see :func:`bot.store.ledger.merge`): the status only moves forward and a
        final one (Filled, Cancelled, Rejected) stays, ``cum_exec_qty`` never decreases, the
        exchange id and reject details are kept once known; None says nothing. A late,
        duplicated or reordered message therefore changes nothing. LookupError for a link id
        the store has no order for; fenced like :meth:`write_order_intent`."""
        update = OrderUpdate(
            status=status, updated_at=int(updated_at), order_id=order_id,
            cum_exec_qty=cum_exec_qty, avg_price=avg_price, reject_code=reject_code,
            reject_reason=reject_reason,
        )  # fmt: skip
        orders = schema.orders
        with self._engine.connect() as conn:  # an order's run never changes
            run_id = conn.scalar(
                sa.select(orders.c.run_id).where(orders.c.order_link_id == link_id)
            )
        if run_id is None:
            raise LookupError(f"no order with link id {link_id!r}")
        fence = self._fence(run_id, lease_owner, lease_ttl_s)
        changed_before = False  # by an attempt whose commit failed to say it succeeded

        def write(conn: Connection) -> bool:
            nonlocal changed_before
            fence(conn)
            changed = ledger.apply_update(conn, link_id, update)
            changed_before = changed_before or changed
            return changed

        return self._write(write, "updating an order") or changed_before

    def record_executions(
        self,
        run_id: str,
        executions: Sequence[Execution],
        *,
        lease_owner: str,
        lease_ttl_s: float = LEASE_TTL_S,
    ) -> list[Execution]:
        """Store the executions (``fills`` rows, and a ``positions`` row for each that carries
        the position it left) in one transaction; returns those whose exec id the run did not
        have, in the order given: the ones to book. Executions stored before, or twice in
        ``executions``, add nothing. Fenced like :meth:`write_order_intent`."""
        fence = self._fence(run_id, lease_owner, lease_ttl_s)
        # Exec ids stored by any attempt of this call: a retried attempt finds those of an
        # attempt whose commit went through unacknowledged (a dropped connection) stored
        # already, and they are still this call's new ones, to be booked.
        stored: set[str] = set()

        def write(conn: Connection) -> None:
            fence(conn)
            new = ledger.insert_executions(conn, run_id, executions)
            stored.update(e.fill.exec_id for e in new)

        self._write(write, "storing executions")
        new = []
        for execution in executions:
            if execution.fill.exec_id in stored:
                stored.discard(execution.fill.exec_id)  # a repeat in the input is not new
                new.append(execution)
        return new

    def record_drift(
        self,
        run_id: str,
        *,
        time: int,
        subject: str,
        store: Any,
        exchange: Any,
        action: str,
        lease_owner: str,
        lease_ttl_s: float = LEASE_TTL_S,
    ) -> bool:
        """Record a drift a reconciliation found between the store and the exchange: an
        ``events`` row of kind ``reconcile_drift`` keyed by ``subject`` (what drifted, e.g.
        ``position:BTCUSDT``, ``order:<link id>``, ``wallet``), with both views (JSON values)
        and the ``action`` taken. Committed at once and fenced; the same finding at the same
        ``time`` is kept once. True if it is new."""
        row = ledger.drift_event(run_id, time=time, subject=subject, store=store,
                                 exchange=exchange, action=action)  # fmt: skip
        return self._record_event_now(row, lease_owner, lease_ttl_s, "recording a drift")

    def record_event_now(
        self,
        run_id: str,
        event: RunEvent,
        *,
        lease_owner: str,
        lease_ttl_s: float = LEASE_TTL_S,
    ) -> bool:
        """Record ``event`` at once, outside the journal's batches, and fenced: for what must
        outlive a crash the moment it is known (a live run's wallet baseline). The same
        (time, kind, key) is kept once. True if it is new."""
        row = {"run_id": run_id, "time": int(event.time), "kind": event.kind,
               "key": event.key, "detail": event.detail}  # fmt: skip
        return self._record_event_now(row, lease_owner, lease_ttl_s, f"recording {event.kind}")

    def _record_event_now(
        self, row: dict[str, Any], lease_owner: str, lease_ttl_s: float, doing: str
    ) -> bool:
        events = schema.events
        insert = insert_ignoring(events, ("run_id", "time", "kind", "key"), self._engine.dialect)
        statement = insert.values(**row).returning(events.c.id)
        fence = self._fence(row["run_id"], lease_owner, lease_ttl_s)

        def write(conn: Connection) -> bool:
            fence(conn)
            return conn.execute(statement).first() is not None

        return self._write(write, doing)

    def order_by_link_id(self, link_id: str) -> dict[str, Any] | None:
        """The order with ``link_id`` (every column but the surrogate id, ``run_id`` too)."""
        with self._engine.connect() as conn:
            return ledger.order_row(conn, link_id)

    def order_ledger(self, run_id: str) -> list[dict[str, Any]]:
        """The run's orders with every ledger column, in the order they were written."""
        return self._journal_rows(schema.orders, run_id)

    def unresolved_orders(self, run_id: str) -> list[dict[str, Any]]:
        """The run's orders whose outcome is open (Unknown, New, PartiallyFilled), oldest
        first: what a reconciliation resolves before the run trades again."""
        orders = schema.orders
        stmt = (
            sa.select(*ledger.row_columns(orders))
            .where(orders.c.run_id == run_id, orders.c.status.in_(ledger.UNRESOLVED_STATUSES))
            .order_by(orders.c.id)
        )
        with self._engine.connect() as conn:
            return [row._asdict() for row in conn.execute(stmt)]

    def orders_for_decision(
        self, run_id: str, decision_time: int, symbol: str
    ) -> list[dict[str, Any]]:
        """The orders a decision placed for one symbol, by leg and attempt: how a restart
        finds what it already sent for a decision, so it never sends it again."""
        orders = schema.orders
        stmt = (
            sa.select(*ledger.row_columns(orders))
            .where(
                orders.c.run_id == run_id,
                orders.c.decision_time == decision_time,
                orders.c.symbol == symbol,
            )
            .order_by(orders.c.leg, orders.c.attempt, orders.c.id)
        )
        with self._engine.connect() as conn:
            return [row._asdict() for row in conn.execute(stmt)]

    def last_execution(self, run_id: str) -> LastExecution | None:
        """The run's latest stored execution by exchange time (the last stored of those
        sharing it): executions missed during a gap are fetched from there on."""
        fills = schema.fills
        stmt = (
            sa.select(fills.c.time, fills.c.exec_id)
            .where(fills.c.run_id == run_id)
            .order_by(fills.c.time.desc(), fills.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else LastExecution(int(row.time), row.exec_id)

    def position_changes(self, run_id: str) -> list[dict[str, Any]]:
        """The run's position rows with the execution that produced each (``exec_id``, ''
        for rows recorded without one), in the order they were written."""
        return self._journal_rows(schema.positions, run_id)

    def latest_positions(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Per symbol, the last position row written (time, qty, avg_price, exec_id): the
        run's book as the store has it, to rebuild the portfolio from and to reconcile with
        the exchange's positions. Symbols never traded are absent; a closed one has qty 0."""
        positions = schema.positions
        last = (
            sa.select(sa.func.max(positions.c.id))
            .where(positions.c.run_id == run_id)
            .group_by(positions.c.symbol)
        )
        stmt = sa.select(
            positions.c.symbol, positions.c.time, positions.c.qty, positions.c.avg_price,
            positions.c.exec_id,
        ).where(positions.c.id.in_(last))  # fmt: skip
        with self._engine.connect() as conn:
            return {
                row.symbol: {k: v for k, v in row._asdict().items() if k != "symbol"}
                for row in conn.execute(stmt)
            }

    def drifts(self, run_id: str) -> list[dict[str, Any]]:
        """The drifts recorded for the run, in the order they were: time, subject, the
        store's and the exchange's view, and the action taken."""
        return [
            {"time": e["time"], "subject": e["key"], **e["detail"]}
            for e in self.events(run_id)
            if e["kind"] == ledger.DRIFT_KIND
        ]


def _find_run(conn: Connection, run_id: str) -> Row | None:
    runs = schema.runs
    row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    if row is not None or len(run_id) < MIN_PREFIX:
        return row
    matches = conn.execute(
        sa.select(runs).where(runs.c.id.startswith(run_id, autoescape=True)).limit(5)
    ).all()
    if len(matches) > 1:
        shown = ", ".join(m.id for m in matches[:4]) + (", ..." if len(matches) > 4 else "")
        raise ValueError(f"run id prefix {run_id!r} is ambiguous: {shown}")
    return matches[0] if matches else None


def _sqlite_file(url: sa.URL) -> Path | None:
    """The database file of a SQLite URL (None in memory or for other backends)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("uri"):
        return None
    return Path(url.database).resolve()


def _file_id(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    stat = path.stat()
    return stat.st_dev, stat.st_ino
