"""A :class:`bot.core.journal.Journal` that writes into the SQL store.

The engine records on its hot path (a fill, a position and an equity point per bar in paper
trading; millions of rows in a long backtest). A database round trip per call would dominate
the run, so ``record_*`` only append row tuples to in-memory buffers, and :meth:`flush` writes
them all in one transaction, one executemany per table. Buffers flush by themselves once
``batch_rows`` rows are waiting, which bounds memory however long the run.

With ``background=True`` (backtests) a flush hands its rows to one writer thread and returns:
SQLite and PostgreSQL drivers release the GIL while the database works, so writing overlaps
the engine's computing. Batches are still written in order, each in one transaction;
:meth:`StoreJournal.close` waits for them and re-raises a failure. A live daemon writes in the
foreground, so a step's records are committed before it moves on.

Rows of each table are written in the order they were recorded. Inserts run before the order
status updates in a flush, so an update always finds its order, whether that was recorded in
this flush or an earlier one. Every insert that a restart could replay (decisions, orders,
fills, equity points, bars, events) ignores rows that exist already: a resumed run sharing a
run id adds no duplicates, and a replayed ``New`` order never resets a status it had reached.
Bars the venue corrected are the one exception: :meth:`StoreJournal.record_bar_revision`
writes over the stored bar, in the same transaction as the event that says so.

A position row names the execution that produced it: the engine books each fill and, right
after, the symbol's position at the fill's time, so a position recorded just after a fill of
the same symbol and time carries that fill's ``exec_id``. Several fills of a symbol at one time
thus keep a row each, and a re-booked fill still adds none (see migration 0006).

Orders written here are paper orders. Their status only moves from New (to Filled by their
fill, to Cancelled when replaced), never on an order that has an exchange id or another
status: a live order's status is the exchange's, kept by :mod:`bot.store.ledger`.

A daemon's journal has a *fence*: every transaction first checks that its run's lease is still
this process's and its database still the one it opened, and writes nothing otherwise.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from sqlalchemy.engine import Connection, Engine

from bot.core.events import Decision, Fill, Order, Panel, RunEvent
from bot.store.bulk import BulkStatement
from bot.store.encoding import dumps
from bot.store.klines import panel_rows
from bot.store.writes import Writes

#: The statuses the engine's reports give orders (the live ledger has more, from the exchange:
#: schema.ORDER_STATUSES); a live rejection reaches the engine as a report too.
ORDER_STATUSES = ("New", "Filled", "Cancelled", "Rejected")

Batch = list[tuple[BulkStatement, list[tuple]]]


class BackgroundWriter:
    """One thread writing batches in the order given; the first failure is re-raised to the
    caller (later batches are dropped, since they may depend on the failed one)."""

    def __init__(self, write: Callable[[Batch], None], max_queued: int = 4) -> None:
        self._write = write
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=max_queued)  # bounds memory
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        self._raise()
        self._queue.put(batch)

    def close(self) -> None:
        """Wait until everything submitted is written (or failed)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(batch)
                except BaseException as exc:  # handed to the caller by _raise
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


class StoreJournal:
    """Buffers a run's journal rows and writes them to the store on :meth:`flush`.

    Not thread-safe: one journal belongs to one engine loop. In the foreground, a flush that
    fails commits nothing and keeps its rows buffered, so a later flush can retry them.
    """

    def __init__(
        self,
        engine: Engine,
        writes: Writes,
        run_id: str,
        batch_rows: int = 20_000,
        background: bool = False,
        *,
        fence: Callable[[Connection], None] | None = None,
        retry: Callable[[Callable[[], None], str], None] | None = None,
    ):
        if batch_rows < 1:
            raise ValueError("batch_rows must be >= 1")
        self.run_id = run_id
        self.batch_rows = batch_rows
        self._engine = engine
        self._fence = fence
        self._retry = retry
        self._writer = BackgroundWriter(self._write) if background else None
        self._pending = 0
        self._bars: list[tuple] = []
        self._revised_bars: list[tuple] = []
        self._decisions: list[tuple] = []
        self._orders: list[tuple] = []
        self._fills: list[tuple] = []
        self._statuses: list[tuple] = []
        self._positions: list[tuple] = []
        self._equity: list[tuple] = []
        self._events: list[tuple] = []
        self._progress: list[tuple] = []  # at most one: the latest step
        self._buffered_orders: dict[str, int] = {}  # link id → index in _orders (unflushed)
        self._last_fill: tuple[int, str, str] | None = None  # (time, symbol, exec_id)
        # flush order: every insert before the status updates that may refer to it
        self._batches: tuple[tuple[BulkStatement, list[tuple]], ...] = (
            (writes.klines, self._bars),
            (writes.klines_revised, self._revised_bars),
            (writes.decisions, self._decisions),
            (writes.orders, self._orders),
            (writes.fills, self._fills),
            (writes.order_status, self._statuses),
            (writes.positions, self._positions),
            (writes.equity, self._equity),
            (writes.events, self._events),
            (writes.progress, self._progress),  # last: commits with the rows it vouches for
        )

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written."""
        return self._pending

    def record_bars(self, interval: str, panel: Panel) -> None:
        """Buffers the present bars, a slice of steps at a time, so that even a whole replayed
        history flushes in ``batch_rows`` pieces instead of materialising at once."""
        step = max(1, self.batch_rows // max(1, len(panel.symbols)))
        for lo in range(0, len(panel), step):
            rows = panel_rows(interval, panel.slice(lo, lo + step))
            self._bars.extend(rows)
            self._added(len(rows))

    def record_bar_revision(self, interval: str, panel: Panel) -> None:
        """Store the bars of ``panel`` *over* the stored ones: the venue corrected them."""
        rows = panel_rows(interval, panel)
        self._revised_bars.extend(rows)
        self._added(len(rows))

    def record_decision(self, decision: Decision) -> None:
        self._decisions.append(
            (
                self.run_id,
                int(decision.time),
                decision.strategy,
                decision.version,
                decision.model_version,
                dumps(decision.weights),
                dumps(decision.target),
                dumps(list(decision.stale)),
            )
        )
        self._added(1)

    def record_orders(self, orders: list[Order], status: str = "New") -> None:
        """``New`` stores the orders (unsigned ``qty`` plus ``side``); any other status is an
        update of orders stored before."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"order status must be one of {ORDER_STATUSES}, not {status!r}")
        run_id = self.run_id
        if status == "New":
            for o in orders:
                self._buffered_orders[o.link_id] = len(self._orders)
                # created and updated at the decision: a paper run's only clock is its bars'
                decided = int(o.decision_time)
                row = (run_id, o.link_id, o.symbol, o.side, abs(float(o.qty)), "Market",
                       decided, o.reason, "New", 0.0, None, int(o.attempt), decided,
                       decided)  # fmt: skip
                self._orders.append(row)
            self._added(len(orders))
        else:
            for o in orders:
                self._set_status(o.link_id, status)

    def record_fill(self, fill: Fill) -> None:
        """Stores the fill (unsigned ``qty`` plus ``side``); a trade also marks its order
        ``Filled``."""
        self._fills.append(
            (
                self.run_id,
                fill.exec_id,
                fill.link_id,
                fill.symbol,
                fill.side,
                abs(float(fill.qty)),
                float(fill.price),
                float(fill.fee),
                fill.exec_type,
                float(fill.cash_flow),
                float(fill.realized_pnl),
                int(fill.time),
            )
        )
        self._added(1)
        self._last_fill = (int(fill.time), fill.symbol, fill.exec_id)
        if fill.exec_type == "Trade" and fill.link_id is not None:
            # a paper order fills whole, in one fill
            self._set_status(
                fill.link_id, "Filled", abs(float(fill.qty)), float(fill.price), int(fill.time)
            )

    def _set_status(
        self,
        link_id: str,
        status: str,
        cum_exec_qty: float | None = None,
        avg_price: float | None = None,
        updated_at: int | None = None,
    ) -> None:
        """An order still in the buffer is simply written with its new status; one already
        written gets an UPDATE (usually an order's fill comes a bar after it, same flush).
        None leaves a value as it is (a replaced order's cancellation has no time here)."""
        index = self._buffered_orders.get(link_id)
        if index is not None:
            row = self._orders[index]
            cum, avg, updated = row[9], row[10], row[13]
            self._orders[index] = (
                *row[:8],
                status,
                cum if cum_exec_qty is None else cum_exec_qty,
                avg if avg_price is None else avg_price,
                *row[11:13],
                updated if updated_at is None else updated_at,
            )
        else:
            self._statuses.append(
                (status, cum_exec_qty, avg_price, updated_at, self.run_id, link_id)
            )
            self._added(1)

    def record_position(self, time: int, symbol: str, qty: float, avg_price: float) -> None:
        """The symbol's position at ``time``; recorded right after a fill of the same symbol
        and time, it is that fill's result and is keyed by its exec id."""
        time = int(time)
        last = self._last_fill
        exec_id = last[2] if last is not None and last[0] == time and last[1] == symbol else ""
        self._positions.append((self.run_id, time, symbol, float(qty), float(avg_price), exec_id))
        self._added(1)

    def record_equity(self, time: int, equity: float, cash: float, gross: float) -> None:
        self._equity.append((self.run_id, int(time), float(equity), float(cash), float(gross)))
        self._added(1)

    def record_event(self, event: RunEvent) -> None:
        self._events.append(
            (self.run_id, int(event.time), event.kind, event.key, dumps(event.detail))
        )
        self._added(1)

    def record_progress(self, time: int) -> None:
        """The close of the last processed step, written in the same transaction as the rows
        recorded before it: after a crash, ``runs.last_step`` names a step whose records are
        all committed and no step whose records are not."""
        self._progress[:] = [(int(time), self.run_id)]

    def flush(self) -> None:
        """Write every buffered row in one transaction (in the background: hand them over)."""
        if not self._pending and not self._progress:
            return
        batch = [(statement, list(rows)) for statement, rows in self._batches if rows]
        if self._writer is None:
            self._write(batch)
        else:
            self._writer.submit(batch)
        for _, rows in self._batches:
            rows.clear()
        self._buffered_orders.clear()
        self._pending = 0

    def close(self) -> None:
        """Flush, and wait until everything is written; re-raises a background failure."""
        self.flush()
        if self._writer is not None:
            self._writer.close()

    def _write(self, batch: Batch) -> None:
        """One transaction, opened by the fence (if any), retried while the database is
        locked elsewhere (if given a retry policy)."""

        def attempt() -> None:
            with self._engine.begin() as conn:
                if self._fence is not None:
                    self._fence(conn)
                for statement, rows in batch:
                    statement.execute(conn, rows)

        if self._retry is None:
            attempt()
        else:
            self._retry(attempt, "writing the run's journal")

    def _added(self, rows: int) -> None:
        self._pending += rows
        if self._pending >= self.batch_rows:
            self.flush()
