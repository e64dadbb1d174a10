"""``bot paper``: the long-running paper-trading daemon.

Start-up and crash recovery are one path (as in NautilusTrader): find the run (or create
one), fetch over REST whatever bars and funding rates the store lacks, **replay the run's stored
steps through the engine** with the journal gated shut up to ``runs.last_step`` (the engine is
deterministic, so this rebuilds positions, cash, pending orders, risk state and strategy state
exactly), process the steps it missed while down with the journal open, and only then go live:
websocket klines → barrier → engine → paper executor → store. No decision is taken twice (the
journal's progress mark commits with the step's records) and none is skipped (every closed
bar is either stored and replayed, or fetched and processed).

SIGINT/SIGTERM finish the step in progress, flush, mark the run stopped and exit; a wait on an
unreachable venue is given up at once.

What keeps the store true:

* **One daemon per run.** The run is leased to this process (:mod:`bot.store.lease`) before
  anything else; a second daemon is refused naming the holder (``--force`` takes over), and a
  daemon that lost its lease writes nothing more and stops.
* **No database call on the event loop**: every store call runs on a worker thread, so a
  database locked by another process never stops the stream's pings; locked writes are retried
  for ``store.lock_timeout_s`` with a log line each, then the daemon stops (exit status 3), as
  it does when its database file is deleted or replaced under it.
* **Bars changed after their step are replayed as they happened.** A bar that arrives late, or
  that the venue's REST record contradicts, is patched into the engine after the step it came
  after and recorded as an event; a restart restores what each step saw and re-applies the
  patches at the same points, so its replay rebuilds exactly the state the live run had.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import random
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bot.assembly import (
    build_engine,
    make_strategies,
    paper_executor,
    venue_market_data,
    warmup_span_ms,
)
from bot.config import Settings, redacted
from bot.core.backoff import Backoff
from bot.core.barrier import Barrier
from bot.core.clock import LiveClock, SimulatedClock
from bot.core.engine import CORRECTED_EVENT, LATE_EVENT, STALE_EVENT, Engine
from bot.core.events import Bar, Decision, ExecutionReport, Panel, RunEvent
from bot.core.execution import LATENCY_SAMPLES, Executor
from bot.core.funding import FundingRates
from bot.core.ids import new_run_id
from bot.core.instruments import InstrumentSpec
from bot.core.market_data import (
    BarStream,
    Closed,
    Corrected,
    MarketData,
    MarketDataError,
    MarketDataStopped,
    Opened,
)
from bot.core.timeutil import interval_ms, iso, to_ms
from bot.feeds.loaders import align
from bot.logs import USER_EVENT
from bot.monitoring.metrics import Reader
from bot.monitoring.server import MonitoringError, MonitoringServer, serve_daemon
from bot.monitoring.steps import StepMeter
from bot.paper.journals import EchoJournal, GatedJournal
from bot.store import Store
from bot.store.faults import LeaseLostError, StoreGoneError, StoreUnavailableError
from bot.store.lease import new_owner
from bot.version import code_version

log = logging.getLogger("bot.paper")

#: How many recent steps' bars are compared with the venue's record at start and at the end.
AUDIT_STEPS = 1000
#: Faults that stop the daemon with exit status 3 (it cannot go on writing its run).
STORE_FAULTS = (StoreUnavailableError, StoreGoneError, LeaseLostError)


class StartupError(RuntimeError):
    """The daemon cannot start as configured (bad symbol, no such run, ...)."""


class DaemonStoppedError(RuntimeError):
    """The daemon stopped because its store failed (locked, vanished, lease lost)."""


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


def _bar_from(symbol: str, interval: str, start: int, values: list) -> Bar:
    o, h, lo, c, v, t = values
    return Bar(symbol, interval, start, o, h, lo, c, v, t)


class PaperDaemon:
    """Paper trading on live market data; the live daemon is the same daemon with the live
    executor plugged in (:class:`bot.live.daemon.LiveDaemon` overrides the hooks below)."""

    kind = "paper"

    def __init__(
        self,
        settings: Settings,
        *,
        new_run: bool = False,
        run_id: str | None = None,
        echo: Callable[[str], None] | None = None,
        explain: Callable[[Engine, Decision], str | None] | None = None,
        force: bool = False,
        market_data: Callable[[Settings, asyncio.Event], MarketData] = venue_market_data,
    ) -> None:
        self.settings = settings
        self.symbols = tuple(settings.engine.symbols)
        self.interval = settings.engine.interval
        self.step = interval_ms(self.interval)
        self.new_run = new_run
        self.requested_run = run_id
        self.echo = echo
        self.explain = explain  # a note on each echoed decision, from the engine that made it
        self.force = force
        self.market_data = market_data  # makes the venue's market data (an async context)
        self.market: MarketData | None = None
        self.until = None if settings.paper.until is None else to_ms(settings.paper.until)
        self.stop = asyncio.Event()  # finish the step in progress, then stop (until, signals)
        # ... and give up any wait on the venue at once (signals): a normal end at paper.until
        # still compares its last bars with the venue's record before it stops
        self.interrupted = asyncio.Event()
        self.wall = LiveClock()
        self.owner = new_owner()  # this process, as the holder of its run's lease
        self.engine: Engine | None = None
        self.stream: BarStream | None = None
        self.barrier: Barrier | None = None
        # closing kline received → orders handed over, for the latency benchmark: the most
        # recent ones only, a daemon runs for months (/metrics keeps the whole histogram)
        self.latencies_ns: deque[int] = deque(maxlen=LATENCY_SAMPLES)
        self.steps = StepMeter(self.symbols, self.wall.now)  # what monitoring reads of steps
        self.monitor: MonitoringServer | None = None
        self._gate: GatedJournal | None = None
        self._run: _Run | None = None
        self._lease_keeper: asyncio.Task | None = None
        self._fault: BaseException | None = None  # a store fault found off the main path
        self._reached_until = False
        self._funding_intervals: dict[str, int] = {}
        self._funding_asked: set[tuple[str, int]] = set()  # looked up once, even if absent

    # -- entry point ---------------------------------------------------------------------------
    async def run(self) -> str:
        """Run until stopped (signal, ``paper.until``); returns the run id.

        Raises :class:`DaemonStoppedError` when the store fails under it (after stopping without
        writing anything more), and the store's ``LeaseHeldError`` when another daemon drives
        the run."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        store: Store | None = None
        try:
            await self._serve_monitoring()
            store = await asyncio.to_thread(
                Store, self.settings.store.url, lock_timeout_s=self.settings.store.lock_timeout_s
            )
            async with self.market_data(self.settings, self.interrupted) as market:
                self.market = market
                with contextlib.suppress(MarketDataStopped):  # stopped waiting on the venue
                    run = await self._start_when_reachable(store, market)
                    if run is not None and not self.stop.is_set():
                        await self._live(store, market, run)
                    if self._reached_until:
                        await self._audit_recent(store, market)
                self._raise_fault()
                if self._run is None:
                    return ""  # stopped before the run could start
                await self._shutdown(store, self._run)
                return self._run.run_id
        except STORE_FAULTS as exc:
            log.error("%s", exc)
            raise DaemonStoppedError(str(exc)) from None
        except Exception:  # a start-up error or a bug: hand the run back on the way out
            if store is not None and self._run is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(store.release_lease, self._run.run_id, self.owner)
            raise
        finally:
            if self._lease_keeper is not None:
                self._lease_keeper.cancel()
                await asyncio.gather(self._lease_keeper, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            if store is not None:
                await asyncio.to_thread(store.close)
            if self.monitor is not None:
                await self.monitor.stop()

    async def _serve_monitoring(self) -> None:
        """Serve ``/metrics`` and ``/healthz`` ([monitoring]) while the daemon runs; a port
        it cannot listen on stops it before it starts, like a bad setting."""
        try:
            self.monitor = await serve_daemon(self, self.settings.monitoring,
                                              self._metric_readers())  # fmt: skip
        except MonitoringError as exc:
            raise StartupError(str(exc)) from None

    @property
    def run_id(self) -> str | None:
        """The run this daemon drives, once found or created."""
        return None if self._run is None else self._run.run_id

    @property
    def fault(self) -> BaseException | None:
        """A store fault found off the main path, which stops the daemon."""
        return self._fault

    def _raise_fault(self) -> None:
        if self._fault is not None:
            raise self._fault

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        log.warning("%s received: finishing the current step and stopping", name)
        self.interrupted.set()
        self.stop.set()

    # -- start-up: the same path for a new run and a restart ------------------------------------
    async def _start_when_reachable(self, store: Store, market: MarketData) -> _Run | None:
        """Start, retrying with backoff while the venue is unreachable (a daemon outlives
        network blips); a problem retrying cannot fix (a bad symbol) stops it at once."""
        backoff = Backoff(self.settings.venue.reconnect_initial_s,
                          self.settings.venue.reconnect_max_s, random.Random())  # fmt: skip
        while not self.stop.is_set():
            try:
                return await self._start(store, market)
            except (MarketDataError, OSError) as exc:
                if isinstance(exc, MarketDataError) and not exc.transient:
                    raise StartupError(str(exc)) from None
                delay = backoff.next()
                log.error("venue unreachable at start-up (%s); retrying in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
        return None

    async def _start(self, store: Store, market: MarketData) -> _Run:
        # a run another daemon drives is refused before anything else, the venue included
        run = await asyncio.to_thread(self._find_run, store)
        if run is not None:
            await self._claim(store, run, resumed=True)
        specs = await self._instruments(market)
        # the venue's trading rules replace the configured ones, in the engine and in the
        # settings snapshot stored with the run (which a backtest of the run reads)
        instruments = {
            s: self.settings.instruments[s].model_copy(update=_spec_fields(specs[s]))
            for s in self.symbols
        }
        self.settings = self.settings.model_copy(update={"instruments": instruments})
        strategies = self.steps.timed(make_strategies(self.settings))
        now = await market.server_time()
        if run is None:
            run = await asyncio.to_thread(self._create_run, store, now)
            await self._claim(store, run, resumed=False)
        warmup = warmup_span_ms(strategies, self.interval)
        newest_closed_end = (now // self.step) * self.step
        history_from = run.data_start - warmup
        log.info("fetching bars %s → %s", iso(history_from), iso(newest_closed_end))
        await market.backfill_bars(store, self.symbols, self.interval, history_from,
                                   newest_closed_end)  # fmt: skip
        if self.settings.data.funding:
            await market.backfill_funding(store, self.symbols, run.data_start - self.step, now)
        ttl = self.settings.paper.lease_ttl_s
        inner = await asyncio.to_thread(
            store.journal, run.run_id, lease_owner=self.owner, lease_ttl_s=ttl
        )
        journaled = await asyncio.to_thread(store.decisions, run.run_id)
        gate = GatedJournal(inner, journaled)
        self._gate = gate
        journal = EchoJournal(gate, self.echo, self._explain) if self.echo else gate
        engine = build_engine(
            self.settings,
            run.run_id,
            journal,
            SimulatedClock(),
            strategies,
            await self._replay_executor(store, run),
            summary_level=logging.INFO,
            funding=await asyncio.to_thread(self._funding, store),
            record_bars=True,
            flush_each_panel=True,
        )  # fmt: skip
        self.engine = engine
        history, patches = await asyncio.to_thread(
            self._stored_history, store, run, history_from, newest_closed_end
        )
        primed, traded = history.split(run.data_start)
        engine.prime(primed)
        done = 0
        if len(traded) and run.last_step is not None:
            closes = traded.starts + self.step
            done = int(np.searchsorted(closes, run.last_step, side="right"))
        gate.open = False  # these steps are in the journal already
        await asyncio.to_thread(self._replay, engine, traded.slice(0, done), patches)
        if done:
            log.info(
                "replayed %d stored steps up to %s: %d decisions as journaled, %d diverged",
                done, iso(run.last_step), gate.replayed - gate.diverged, gate.diverged,
                extra=USER_EVENT,
            )  # fmt: skip
        gate.open = True
        if done < len(traded):
            log.info("processing %d steps missed while down", len(traded) - done,
                     extra=USER_EVENT)  # fmt: skip
            await self._process(traded.slice(done, len(traded)), store, market)
        await self._audit_recent(store, market)
        await self._go_live(store, run)
        return run

    def _explain(self, decision: Decision) -> str | None:
        """The echo's note on ``decision`` (none without ``explain``); the engine is built
        before its first decision, so it is there whenever one is recorded."""
        if self.explain is None or self.engine is None:
            return None
        return self.explain(self.engine, decision)

    # -- what a live daemon does differently (hooks) --------------------------------------------
    async def _replay_executor(self, store: Store, run: _Run) -> Executor:
        """The executor that replays stored steps and processes steps missed while down:
        the paper executor, which also trades from then on."""
        return paper_executor(self.settings)

    async def _go_live(self, store: Store, run: _Run) -> None:
        """After the stored and missed steps are processed, before the stream: nothing for
        paper trading."""

    def _step_received(self, received_ns: int) -> None:
        """The message that released the step arrived at ``received_ns`` (latency metrics of
        a live executor, which sends after the step); 0 when no message did."""

    def _side_tasks(self, store: Store, events: asyncio.Queue) -> list[asyncio.Task]:
        """Tasks that run beside the stream (a live executor's worker, its private stream)."""
        return []

    def _metric_readers(self) -> list[Reader]:
        """What ``/metrics`` shows beyond every daemon's counters: nothing for paper trading."""
        return []

    async def _claim(self, store: Store, run: _Run, *, resumed: bool) -> None:
        """Take the run's lease (refused while another live daemon holds it), and keep it
        from now on: a heartbeat renews it every third of its lifetime."""
        ttl = self.settings.paper.lease_ttl_s
        await asyncio.to_thread(store.acquire_lease, run.run_id, self.owner, ttl, force=self.force)
        await asyncio.to_thread(store.set_run_status, run.run_id, "running")
        if resumed and self._run is None:  # (not again when a failed start is retried)
            log.info(
                "resuming %s run %s (trading since %s, last step %s)",
                self.kind, run.run_id, iso(run.data_start),
                iso(run.last_step) if run.last_step else "none", extra=USER_EVENT,
            )  # fmt: skip
        self._run = run
        if self._lease_keeper is None:
            self._lease_keeper = asyncio.create_task(self._keep_lease(store, run.run_id))

    async def _keep_lease(self, store: Store, run_id: str) -> None:
        """Renew the lease and check the database is still the one opened, until cancelled;
        a fault stops the daemon (recorded for :meth:`run` to raise)."""
        ttl = self.settings.paper.lease_ttl_s
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await asyncio.to_thread(store.renew_lease, run_id, self.owner, ttl)
                await asyncio.to_thread(store.check_alive)
            except STORE_FAULTS as exc:
                self._fault = exc
                self.stop.set()
                return

    def _replay(self, engine: Engine, traded: Panel, patches: list[tuple[int, Bar]]) -> None:
        """Process stored steps again, applying what happened between them after the same
        steps as live: late and corrected bars, and (live) the exchange's executions."""
        closes = traded.starts + self.step
        between = [(time, functools.partial(engine.replay_patch, bar)) for time, bar in patches]
        between += self._replayed_executions(engine)
        between.sort(key=lambda item: item[0])  # stable: same-time items keep their order
        done = 0
        for time, apply in between:
            cut = int(np.searchsorted(closes, time, side="right"))
            if cut > done:
                engine.process(traded.slice(done, cut))
                done = cut
            apply()
        if done < len(traded):
            engine.process(traded.slice(done, len(traded)))

    def _replayed_executions(self, engine: Engine) -> list[tuple[int, Callable[[], None]]]:
        """(time, booking) of executions a replay books between steps: none for paper
        trading, whose executor fills again exactly as it did."""
        return []

    async def _instruments(self, market: MarketData) -> dict[str, InstrumentSpec]:
        """Trading rules from the venue; a symbol it does not list stops the daemon."""
        try:
            specs = await market.instruments(self.symbols)
            intervals = await market.funding_intervals(self.symbols)
        except LookupError as exc:
            raise StartupError(f"{exc} at {market.shown_url}: check engine.symbols") from None
        self._funding_intervals = intervals
        for symbol in self.symbols:
            configured = self.settings.instruments[symbol]
            if configured.qty_step != specs[symbol].qty_step:
                log.info(
                    "%s: venue qty step %g replaces the configured %g",
                    symbol, specs[symbol].qty_step, configured.qty_step, extra=USER_EVENT,
                )  # fmt: skip
        return specs

    def _find_run(self, store: Store) -> _Run | None:
        """The run to resume (``--run``, or the newest resumable one with these settings);
        None when a new one is due."""
        mark = fingerprint(self.settings)
        if self.requested_run is not None:
            run = store.get_run(self.requested_run)
            if run is None or run["kind"] != self.kind:
                raise StartupError(f"no {self.kind} run {self.requested_run!r} in the store")
        elif not self.new_run:
            candidates = [
                r for r in store.resumable_runs(self.kind)
                if r["config"].get("fingerprint") == mark
            ]  # fmt: skip
            run = candidates[0] if candidates else None
            if run is None:
                why = "it is a new, empty database" if store.created else "none has these settings"
                log.warning("no %s run to resume in store %s (%s): starting a new run",
                            self.kind, store.shown_url, why)  # fmt: skip
        else:
            run = None
        return None if run is None else _Run(run["id"], run["data_start"], run["last_step"])

    def _create_run(self, store: Store, server_now: int) -> _Run:
        run_id = new_run_id()
        # The first traded candle: the one forming now, unless the previous one closed so
        # recently that REST does not list it yet (CLOSE_MARGIN_MS); that one is traded then,
        # delivered by the stream, rather than left out of the warm-up history (which a
        # restart's replay would then see, deciding differently than the run did).
        margin = self.market.close_margin_ms
        data_start = ((server_now - margin) // self.step) * self.step
        store.create_run(
            run_id=run_id,
            kind=self.kind,
            strategy=",".join(s.name for s in self.settings.strategies),
            symbols=list(self.symbols),
            interval=self.interval,
            config={**redacted(self.settings), "fingerprint": fingerprint(self.settings)},
            code_version=code_version(),
            started_at=self.wall.now(),
            data_start=data_start,
        )
        log.info("new %s run %s: trading from %s", self.kind, run_id, iso(data_start),
                 extra=USER_EVENT)  # fmt: skip
        self.new_run, self.requested_run = False, run_id  # a retried start resumes this run
        return _Run(run_id, data_start, None)

    def _funding(self, store: Store) -> FundingRates:
        series = store.load_funding(list(self.symbols)) if self.settings.data.funding else {}
        return FundingRates(series, self._funding_intervals)

    def _stored_history(
        self, store: Store, run: _Run, start: int, end: int
    ) -> tuple[Panel, list[tuple[int, Bar]]]:
        """The bars as the run saw them, and the patches it applied after its steps.

        From the store, with the symbols that were stale at a step (their bar came after the
        decision) masked out again and the bars the venue corrected set back to what the step
        saw; the patches (late and corrected bars, in the order they were applied, each with
        the close of the step it followed) are for :meth:`_replay`."""
        frames = {s: store.load_klines(s, self.interval, start, end) for s in self.symbols}
        if all(f.empty for f in frames.values()):
            if end > start:
                log.warning("the venue has no %s bars from %s: warming up live", self.interval,
                            iso(start))  # fmt: skip
            empty = Panel(self.symbols, self.step, np.zeros(0, np.int64),
                          np.zeros((0, len(self.symbols), 5)),
                          np.zeros((0, len(self.symbols)), bool))  # fmt: skip
            return empty, []
        panel = align(frames, self.symbols, self.interval)
        events = store.events(run.run_id)
        present = panel.present.copy()
        values = panel.values.copy()

        def cell(start: int, symbol: str) -> tuple[int, int] | None:
            row = int(np.searchsorted(panel.starts, start))
            if row < len(panel) and panel.starts[row] == start:
                return row, self.symbols.index(symbol)
            return None

        restored: set[tuple[str, int]] = set()
        for event in events:  # in the order recorded: the first correction saw the step's bar
            detail = event["detail"]
            if event["kind"] == CORRECTED_EVENT and (detail["symbol"], detail["start"]) not in (
                restored
            ):
                restored.add((detail["symbol"], detail["start"]))
                where = cell(detail["start"], detail["symbol"])
                if where is not None:
                    values[where] = detail["seen"][:5]
        for event in events:
            if event["kind"] == STALE_EVENT:
                for symbol in event["detail"]["symbols"]:
                    where = cell(event["detail"]["start"], symbol)
                    if where is not None:
                        present[where] = False
                        values[where] = np.nan
        patches = [
            (event["time"], _bar_from(event["detail"]["symbol"], self.interval,
                                      event["detail"]["start"], event["detail"]["bar"]))
            for event in events if event["kind"] in (LATE_EVENT, CORRECTED_EVENT)
        ]  # fmt: skip
        patches.sort(key=lambda p: p[0])  # stable: same-time patches keep their order
        return Panel(self.symbols, panel.interval_ms, panel.starts, values, present), patches

    # -- live -----------------------------------------------------------------------------------
    async def _live(self, store: Store, market: MarketData, run: _Run) -> None:
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
        events: asyncio.Queue[tuple[Closed | Opened | Corrected | None, int]] = asyncio.Queue()

        async def sink(event: Closed | Opened | Corrected) -> None:
            events.put_nowait((event, self.stream.last_receipt_ns))

        self.stream = market.stream(
            self.symbols, self.interval, dict.fromkeys(self.symbols, last_start), sink
        )
        self.steps.going_live()
        tasks = [
            asyncio.create_task(self.stream.run(self.stop), name="stream"),
            asyncio.create_task(self._consume(events, store, market), name="engine"),
            asyncio.create_task(self._grace_timer(events), name="barrier"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
            *self._side_tasks(store, events),
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

    async def _consume(self, events: asyncio.Queue, store: Store, market: MarketData) -> None:
        """Apply stream events to the barrier and the engine, one at a time, in order."""
        engine = self.engine
        while not self.stop.is_set():
            event, received_ns = await events.get()
            if isinstance(event, ExecutionReport):  # a live executor's news
                await asyncio.to_thread(engine.on_execution, event)
                continue
            if isinstance(event, RunEvent):  # a live daemon's own (a halt)
                await asyncio.to_thread(engine.record_event, event)
                continue
            if isinstance(event, Opened):
                # may book fills and flush them: a database call, so off the event loop
                await asyncio.to_thread(engine.on_open, event.symbol, event.start, event.open)
                continue
            if isinstance(event, Corrected):
                engine.correct_bar(event.bar, event.seen)
                continue
            if event is None:  # the grace timer's nudge
                out = self.barrier.poll(self.wall.now())
            else:
                out = self.barrier.add(event.bar, self.wall.now())
                for bar in out.late:
                    engine.late_bar(bar)
            if out.rows is not None:
                await self._process(out.rows, store, market, received_ns if event else 0)

    async def _audit_recent(self, store: Store, market: MarketData) -> None:
        """Compare the last :data:`AUDIT_STEPS` steps' stored bars with the venue's record and
        correct what differs (a close taken from the websocket before a crash or a stop that
        the stream had no time to check)."""
        engine, run = self.engine, self._run
        if engine is None or run is None or not engine.stats.rows:
            return
        end = engine.clock.now()
        start = max(run.data_start, end - AUDIT_STEPS * self.step)
        compared = corrected = 0
        for symbol in self.symbols:
            stored = await asyncio.to_thread(store.load_klines, symbol, self.interval, start, end)
            try:
                recheck = await market.recheck(symbol, self.interval, stored, start, end)
            except MarketDataError as exc:  # the next start compares them again
                log.warning("%s: could not compare recent bars with the venue: %s", symbol, exc)
                continue
            for correction in recheck.corrections:
                engine.correct_bar(correction.bar, correction.seen)
            compared += recheck.compared
            corrected += len(recheck.corrections)
        log.info("compared %d recent bars with the venue's record: %d corrected",
                 compared, corrected, extra=USER_EVENT if corrected else None)  # fmt: skip
        if corrected:
            await asyncio.to_thread(self._gate.flush)

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
        seen = self.market.counters() if self.market is not None else {}

        def part(prefix: str) -> dict[str, int]:
            return {k[len(prefix) :]: v for k, v in seen.items() if k.startswith(prefix)}

        stats, rest, counters = part("ws."), part("rest."), part("bars.")
        log.info(
            "status: step %s | equity %.2f drawdown %.2f%% | positions %s | %s | ws %s msgs %d "
            "malformed %d foreign %d future %d reconnects %d gaps %d duplicates %d "
            "out-of-order %d backfilled %d corrected %d | rest %d retries %d refused bars %d",
            iso(engine.clock.now()), portfolio.equity, 100 * engine.risk.drawdown(portfolio.equity),
            positions or "flat", "HALTED" if engine.risk.halted else "trading",
            "up" if stream and stream.connected else "down", stats.get("messages", 0),
            stats.get("malformed", 0),
            counters.get("wrong_interval", 0) + counters.get("unknown_symbol", 0),
            stats.get("future_updates", 0), stats.get("reconnects", 0), counters.get("gaps", 0),
            counters.get("duplicate", 0), counters.get("out_of_order", 0),
            counters.get("backfilled", 0), stats.get("corrected", 0), rest.get("requests", 0),
            rest.get("retries", 0), rest.get("refused_bars", 0), extra=USER_EVENT,
        )  # fmt: skip

    # -- one batch of released steps ------------------------------------------------------------
    async def _process(
        self, rows: Panel, store: Store, market: MarketData, received_ns: int = 0
    ) -> None:
        """Run released steps through the engine (up to ``paper.until``)."""
        engine = self.engine
        if self.until is not None:
            rows = rows.split(self.until)[0]  # steps that close by `until`
            if not len(rows):
                self._reached_until = True
                self.stop.set()
                return
        await self._ensure_funding(rows, store, market)
        engine.record_stale(rows)
        orders = engine.stats.orders
        self._step_received(received_ns)
        await asyncio.to_thread(engine.process, rows)
        self.steps.stepped(rows, received_ns)
        if received_ns and engine.stats.orders != orders:
            self.latencies_ns.append(engine.last_submission_ns - received_ns)
        if self.until is not None and engine.clock.now() >= self.until:
            log.info("reached %s: stopping", iso(self.until), extra=USER_EVENT)
            self._reached_until = True
            self.stop.set()

    async def _ensure_funding(self, rows: Panel, store: Store, market: MarketData) -> None:
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
        await market.backfill_funding(store, missing, first, end)
        self._funding_asked |= wanted
        self.engine.update_funding(await asyncio.to_thread(self._funding, store))
        for symbol, t in sorted(wanted):
            if not self.engine.funding.has(symbol, t):
                log.info("%s: the venue has no funding settlement at %s", symbol, iso(t))

    async def _shutdown(self, store: Store, run: _Run) -> None:
        """Flush, mark the run stopped and hand the lease back (each off the event loop)."""
        if self._gate is not None:
            await asyncio.to_thread(self._gate.flush)
        await asyncio.to_thread(store.set_run_status, run.run_id, "stopped")
        await asyncio.to_thread(store.release_lease, run.run_id, self.owner)
        self.log_status()
        log.info("%s run %s stopped cleanly", self.kind, run.run_id, extra=USER_EVENT)


def _spec_fields(spec: InstrumentSpec) -> dict:
    return {
        "qty_step": spec.qty_step,
        "min_order_qty": spec.min_order_qty,
        "min_notional": spec.min_notional,
        "tick_size": spec.tick_size,
    }
