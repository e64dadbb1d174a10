"""``bot paper``: the long-running paper-trading daemon.

Start-up and crash recovery are one path (as in NautilusTrader): find the run (or create
one), fetch over REST whatever bars and funding rates the store lacks, **replay the run's stored
steps through the engine** with the journal gated shut up to ``runs.last_step`` (the engine is
deterministic, so this rebuilds positions, cash, pending orders, risk state and strategy state
exactly), process the steps it missed while down with the journal open, and only then go live:
websocket klines → barrier → engine → paper executor → store. No decision is taken twice (the
journal's progress mark commits with the step's records) and none is skipped (every closed
bar is either stored and replayed, or fetched and processed).

SIGINT/SIGTERM finish the step in progress, flush, mark the run stopped and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backtest.runner import build_engine, make_strategies, warmup_span_ms
from bot.config import Settings, redacted
from bot.core.barrier import Barrier
from bot.core.clock import LiveClock, SimulatedClock
from bot.core.engine import Engine
from bot.core.events import Bar, Panel, RunEvent
from bot.core.funding import FundingRates
from bot.core.ids import new_run_id
from bot.core.instruments import InstrumentSpec
from bot.core.timeutil import interval_ms, iso, to_ms
from bot.feeds.loaders import align
from bot.paper.journals import EchoJournal, GatedJournal
from bot.store import Store
from bot.venues.bybit.fetch import fetch_funding_to_store, fetch_klines_to_store
from bot.venues.bybit.klines import Closed, Opened
from bot.venues.bybit.rest import BybitRest
from bot.venues.bybit.rest_protocol import BybitError, is_transient
from bot.venues.bybit.stream import Backoff, PublicStream
from bot.version import code_version

log = logging.getLogger("bot.paper")

STALE_EVENT = "stale_step"


class StartupError(RuntimeError):
    """The daemon cannot start as configured (bad symbol, no such run, ...)."""


def fingerprint(settings: Settings) -> str:
    """What must match for a daemon to resume a run: what it trades and how."""
    data = redacted(settings)
    keep = {k: data[k] for k in ("engine", "portfolio", "risk", "strategies", "scheduler")}
    keep["engine"] = {k: keep["engine"][k] for k in ("symbols", "interval")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class _Run:
    run_id: str
    data_start: int  # start of the first traded step
    last_step: int | None  # close of the last committed step


class PaperDaemon:
    def __init__(
        self,
        settings: Settings,
        *,
        new_run: bool = False,
        run_id: str | None = None,
        echo: Callable[[str], None] | None = None,
        catchup_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.symbols = tuple(settings.engine.symbols)
        self.interval = settings.engine.interval
        self.step = interval_ms(self.interval)
        self.new_run = new_run
        self.requested_run = run_id
        self.echo = echo
        self.catchup_s = catchup_s
        self.until = None if settings.paper.until is None else to_ms(settings.paper.until)
        self.stop = asyncio.Event()
        self.wall = LiveClock()
        self.engine: Engine | None = None
        self.stream: PublicStream | None = None
        self.barrier: Barrier | None = None
        self.latencies_ns: list[int] = []  # closing kline received → orders handed over
        self._gate: GatedJournal | None = None
        self._funding_intervals: dict[str, int] = {}
        self._funding_asked: set[tuple[str, int]] = set()  # looked up once, even if absent

    # -- entry point ---------------------------------------------------------------------------
    async def run(self) -> str:
        """Run until stopped (signal, ``paper.until``); returns the run id."""
        rest_url, ws_url = self.settings.venue_urls()
        venue = self.settings.venue
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        store = Store(self.settings.store.url)
        try:
            async with BybitRest.from_config(venue, rest_url) as rest:
                run = await self._start_when_reachable(store, rest)
                if run is None:
                    return ""  # stopped before the venue could be reached
                if not self.stop.is_set():
                    await self._live(store, rest, ws_url, run)
                self._shutdown(store, run)
                return run.run_id
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            store.close()

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        log.warning("%s received: finishing the current step and stopping", name)
        self.stop.set()

    # -- start-up: the same path for a new run and a restart ------------------------------------
    async def _start_when_reachable(self, store: Store, rest: BybitRest) -> _Run | None:
        """Start, retrying with backoff while the venue is unreachable (a daemon outlives
        network blips); a problem retrying cannot fix (a bad symbol) stops it at once."""
        backoff = Backoff(self.settings.venue.reconnect_initial_s,
                          self.settings.venue.reconnect_max_s, random.Random())  # fmt: skip
        while not self.stop.is_set():
            try:
                return await self._start(store, rest)
            except (BybitError, OSError) as exc:
                if isinstance(exc, BybitError) and not is_transient(exc):
                    raise StartupError(str(exc)) from None
                delay = backoff.next()
                log.error("venue unreachable at start-up (%s); retrying in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
        return None

    async def _start(self, store: Store, rest: BybitRest) -> _Run:
        specs = await self._instruments(rest)
        # the venue's trading rules replace the configured ones, in the engine and in the
        # settings snapshot stored with the run (which a backtest of the run reads)
        instruments = {
            s: self.settings.instruments[s].model_copy(update=_spec_fields(specs[s]))
            for s in self.symbols
        }
        self.settings = self.settings.model_copy(update={"instruments": instruments})
        strategies = make_strategies(self.settings)
        now = await rest.server_time()
        run = self._find_or_create_run(store, now)
        warmup = warmup_span_ms(strategies, self.interval)
        newest_closed_end = (now // self.step) * self.step
        history_from = run.data_start - warmup
        log.info("fetching bars %s → %s", iso(history_from), iso(newest_closed_end))
        await fetch_klines_to_store(
            rest, store, list(self.symbols), self.interval, history_from, newest_closed_end,
            progress=False,
        )  # fmt: skip
        if self.settings.data.funding and self.settings.venue.category == "linear":
            await fetch_funding_to_store(
                rest, store, list(self.symbols), run.data_start - self.step, now, progress=False
            )
        gate = GatedJournal(store.journal(run.run_id))
        self._gate = gate
        journal = EchoJournal(gate, self.echo) if self.echo else gate
        engine = build_engine(
            self.settings,
            run.run_id,
            journal,
            SimulatedClock(),
            strategies,
            summary_level=logging.INFO,
            funding=self._funding(store),
            record_bars=True,
            flush_each_panel=True,
        )  # fmt: skip
        self.engine = engine
        history = self._stored_history(store, run, history_from, newest_closed_end)
        primed, traded = history.split(run.data_start)
        engine.prime(primed)
        if len(traded):
            done = (
                0
                if run.last_step is None
                else int(np.searchsorted(traded.starts + self.step, run.last_step, side="right"))
            )
            gate.open = False  # these steps are in the journal already
            if done:
                engine.process(traded.slice(0, done))
                log.info("replayed %d stored steps up to %s", done, iso(run.last_step))
            gate.open = True
            if done < len(traded):
                log.info("processing %d steps missed while down", len(traded) - done)
                await self._process(traded.slice(done, len(traded)), store, rest)
        return run

    async def _instruments(self, rest: BybitRest) -> dict[str, InstrumentSpec]:
        """Trading rules from the venue; a symbol it does not list stops the daemon."""
        try:
            specs = await rest.instruments(list(self.symbols))
            linear = self.settings.venue.category == "linear"
            intervals = await rest.funding_intervals(list(self.symbols)) if linear else {}
        except LookupError as exc:
            venue = self.settings.venue_urls()[0]
            raise StartupError(f"{exc} at {venue}: check engine.symbols") from None
        self._funding_intervals = intervals
        for symbol in self.symbols:
            configured = self.settings.instruments[symbol]
            if configured.qty_step != specs[symbol].qty_step:
                log.info(
                    "%s: venue qty step %g replaces the configured %g",
                    symbol, specs[symbol].qty_step, configured.qty_step,
                )  # fmt: skip
        return specs

    def _find_or_create_run(self, store: Store, server_now: int) -> _Run:
        mark = fingerprint(self.settings)
        if self.requested_run is not None:
            run = store.get_run(self.requested_run)
            if run is None or run["kind"] != "paper":
                raise StartupError(f"no paper run {self.requested_run!r} in the store")
        elif not self.new_run:
            candidates = [
                r for r in store.resumable_runs("paper")
                if r["config"].get("fingerprint") == mark
            ]  # fmt: skip
            run = candidates[0] if candidates else None
        else:
            run = None
        if run is not None:
            store.set_run_status(run["id"], "running")
            log.info(
                "resuming paper run %s (trading since %s, last step %s)",
                run["id"], iso(run["data_start"]),
                iso(run["last_step"]) if run["last_step"] else "none",
            )  # fmt: skip
            return _Run(run["id"], run["data_start"], run["last_step"])
        run_id = new_run_id()
        data_start = (server_now // self.step) * self.step  # the candle forming now
        store.create_run(
            run_id=run_id,
            kind="paper",
            strategy=",".join(s.name for s in self.settings.strategies),
            symbols=list(self.symbols),
            interval=self.interval,
            config={**redacted(self.settings), "fingerprint": mark},
            code_version=code_version(),
            started_at=self.wall.now(),
            data_start=data_start,
        )
        log.info("new paper run %s: trading from %s", run_id, iso(data_start))
        self.new_run, self.requested_run = False, run_id  # a retried start resumes this run
        return _Run(run_id, data_start, None)

    def _funding(self, store: Store) -> FundingRates:
        series = store.load_funding(list(self.symbols)) if self.settings.data.funding else {}
        return FundingRates(series, self._funding_intervals)

    def _stored_history(self, store: Store, run: _Run, start: int, end: int) -> Panel:
        """The bars as the run saw them: from the store, with the symbols that were stale at a
        step (their bar came after the decision) masked out again."""
        frames = {s: store.load_klines(s, self.interval, start, end) for s in self.symbols}
        if all(f.empty for f in frames.values()):
            if end > start:
                log.warning("the venue has no %s bars from %s: warming up live", self.interval,
                            iso(start))  # fmt: skip
            return Panel(self.symbols, self.step, np.zeros(0, np.int64),
                         np.zeros((0, len(self.symbols), 5)),
                         np.zeros((0, len(self.symbols)), bool))  # fmt: skip
        panel = align(frames, self.symbols, self.interval)
        stale = [e for e in store.events(run.run_id) if e["kind"] == STALE_EVENT]
        if not stale:
            return panel
        present = panel.present.copy()
        values = panel.values.copy()
        for event in stale:
            row = int(np.searchsorted(panel.starts, event["detail"]["start"]))
            if row < len(panel) and panel.starts[row] == event["detail"]["start"]:
                for symbol in event["detail"]["symbols"]:
                    present[row, self.symbols.index(symbol)] = False
                    values[row, self.symbols.index(symbol)] = np.nan
        return Panel(self.symbols, panel.interval_ms, panel.starts, values, present)

    # -- live -----------------------------------------------------------------------------------
    async def _live(self, store: Store, rest: BybitRest, ws_url: str, run: _Run) -> None:
        """Stream → queue → one consumer. The stream only enqueues, so it keeps reading (and
        answering pings) while the consumer runs a step, or a model retrain, on a worker
        thread; the consumer handles events strictly in order, so steps never interleave."""
        engine = self.engine
        assert engine is not None
        # the last decided step: the last processed one, or the last warm-up bar of a new run
        last_start = (engine.clock.now() if engine.stats.rows else run.data_start) - self.step
        self.barrier = Barrier(
            self.symbols, self.step, self.settings.engine.grace_ms, resume_after=last_start
        )
        events: asyncio.Queue[tuple[Closed | Opened | None, int]] = asyncio.Queue()

        async def sink(event: Closed | Opened) -> None:
            events.put_nowait((event, self.stream.last_receipt_ns))

        self.stream = PublicStream(
            ws_url=ws_url,
            rest=rest,
            symbols=self.symbols,
            interval=self.interval,
            last_closed=dict.fromkeys(self.symbols, last_start),
            sink=sink,
            venue=self.settings.venue,
            catchup_s=self.catchup_s,
            seed=self.settings.exchange.seed,
        )
        tasks = [
            asyncio.create_task(self.stream.run(self.stop), name="stream"),
            asyncio.create_task(self._consume(events, store, rest), name="engine"),
            asyncio.create_task(self._grace_timer(events), name="barrier"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            self.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self, events: asyncio.Queue, store: Store, rest: BybitRest) -> None:
        """Apply stream events to the barrier and the engine, one at a time, in order."""
        engine = self.engine
        while not self.stop.is_set():
            event, received_ns = await events.get()
            if isinstance(event, Opened):
                engine.on_open(event.symbol, event.start, event.open)
                continue
            if event is None:  # the grace timer's nudge
                out = self.barrier.poll(self.wall.now())
            else:
                out = self.barrier.add(event.bar, self.wall.now())
                for bar in out.late:
                    self._late(bar, engine)
            if out.rows is not None:
                await self._process(out.rows, store, rest, received_ns if event else 0)

    def _late(self, bar: Bar, engine: Engine) -> None:
        """A bar that missed its decision: keep it (store and buffer) for what comes next."""
        values = np.array([bar.open, bar.high, bar.low, bar.close, bar.volume])
        engine.buffer.patch(bar.start, bar.symbol, values)
        row = Panel((bar.symbol,), self.step, np.array([bar.start]), values[None, None, :],
                    np.ones((1, 1), dtype=bool))  # fmt: skip
        engine.journal.record_bars(self.interval, row)
        log.warning("%s bar %s arrived after its step was decided", bar.symbol, iso(bar.start))

    async def _grace_timer(self, events: asyncio.Queue) -> None:
        """Nudge the consumer when the barrier's grace period for a late symbol runs out."""
        while not self.stop.is_set():
            deadline = self.barrier.deadline()
            wait = 0.2 if deadline is None else max(0.0, (deadline - self.wall.now()) / 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), min(wait, 0.2) or 0.001)
            deadline = self.barrier.deadline()
            if deadline is not None and self.wall.now() >= deadline:
                events.put_nowait((None, 0))

    async def _heartbeat(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.stop.wait(), self.settings.paper.heartbeat_s)
                return  # stopping: the shutdown logs the final status
            except TimeoutError:
                self.log_status()

    def log_status(self) -> None:
        engine, stream = self.engine, self.stream
        if engine is None:
            return
        portfolio = engine.portfolio
        positions = {portfolio.symbols[s]: float(portfolio.qty[s]) for s in portfolio.held}
        counters = dict(stream.tracker.counters) if stream else {}
        stats = dict(stream.stats) if stream else {}
        rest = stream.rest.stats if stream else {}
        log.info(
            "status: step %s | equity %.2f drawdown %.2f%% | positions %s | %s | ws %s msgs %d "
            "malformed %d reconnects %d gaps %d duplicates %d out-of-order %d backfilled %d | "
            "rest %d retries %d",
            iso(engine.clock.now()), portfolio.equity, 100 * engine.risk.drawdown(portfolio.equity),
            positions or "flat", "HALTED" if engine.risk.halted else "trading",
            "up" if stream and stream.connected else "down", stats.get("messages", 0),
            stats.get("malformed", 0), stats.get("reconnects", 0), counters.get("gaps", 0),
            counters.get("duplicate", 0), counters.get("out_of_order", 0),
            counters.get("backfilled", 0), rest.get("requests", 0), rest.get("retries", 0),
        )  # fmt: skip

    # -- one batch of released steps ------------------------------------------------------------
    async def _process(
        self, rows: Panel, store: Store, rest: BybitRest, received_ns: int = 0
    ) -> None:
        """Run released steps through the engine (up to ``paper.until``)."""
        engine = self.engine
        if self.until is not None:
            rows = rows.split(self.until)[0]  # steps that close by `until`
            if not len(rows):
                self.stop.set()
                return
        await self._ensure_funding(rows, store, rest)
        for i in np.flatnonzero(~rows.present.all(axis=1)).tolist():
            stale = [s for s, p in zip(self.symbols, rows.present[i], strict=True) if not p]
            detail = {"start": int(rows.starts[i]), "symbols": stale}
            close = int(rows.starts[i]) + self.step
            engine.journal.record_event(RunEvent(close, STALE_EVENT, detail))
        submitted = engine.executor.submitted
        await asyncio.to_thread(engine.process, rows)
        if received_ns and engine.executor.submitted != submitted:
            self.latencies_ns.append(engine.executor.submitted_ns - received_ns)
        if self.until is not None and engine.clock.now() >= self.until:
            log.info("reached %s: stopping", iso(self.until))
            self.stop.set()

    async def _ensure_funding(self, rows: Panel, store: Store, rest: BybitRest) -> None:
        """Before steps in which funding may settle, fetch the rates the engine lacks, so that
        funding is applied live exactly as a replay of the stored rates will apply it."""
        if not self.settings.data.funding or self.settings.venue.category != "linear":
            return
        funding = self.engine.funding
        first, end = int(rows.starts[0]), int(rows.starts[-1]) + self.step
        wanted = {
            (s, t) for s in self.symbols for t in funding.settlements(s, first, end)
            if not funding.has(s, t) and (s, t) not in self._funding_asked
        }  # fmt: skip
        if not wanted:
            return
        missing = sorted({s for s, _ in wanted})
        await fetch_funding_to_store(rest, store, missing, first, end, progress=False)
        self._funding_asked |= wanted
        self.engine.funding = self._funding(store)
        for symbol, t in sorted(wanted):
            if not self.engine.funding.has(symbol, t):
                log.info("%s: the venue has no funding settlement at %s", symbol, iso(t))

    def _shutdown(self, store: Store, run: _Run) -> None:
        if self._gate is not None:
            self._gate.flush()
        store.set_run_status(run.run_id, "stopped")
        self.log_status()
        log.info("paper run %s stopped cleanly", run.run_id)


def _spec_fields(spec: InstrumentSpec) -> dict:
    return {
        "qty_step": spec.qty_step,
        "min_order_qty": spec.min_order_qty,
        "min_notional": spec.min_notional,
        "tick_size": spec.tick_size,
    }
