"""The engine: feed → buffer → barrier → strategies → risk → portfolio → executor → journal.

Bars arrive as :class:`~bot.core.events.Panel` blocks of aligned steps (the barrier, or the
replay loader, already decided which symbols are present at each step). For every step the
engine, in this order: settles funding due at the bar's start, fills pending orders at the
bar's open, settles funding inside the bar, marks the portfolio to the close, checks the kill
switch, and — if not halted and warmed up — asks the strategies for target weights, clips them
and turns them into orders that fill at the next bar's open.

Most steps of a replay are *quiet*: nothing to fill, no decision, no funding, no job due, no
stale symbol. Their only effect is the mark to market, which for a whole run of quiet steps is
one vectorised expression with the very arithmetic of a single step. Every other step goes
through :meth:`Engine._process_row`. A live feed hands the engine one-row blocks and so takes
exactly the same path; tests hold the equity curve bit-identical across block sizes and between
a strategy's vectorised and per-bar forms.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bot.core.bar_rules import bar_differences
from bot.core.buffer import FeatureBuffer
from bot.core.clock import Clock
from bot.core.context import (
    BatchContext,
    JobContext,
    StepContext,
    StrategyError,
    StrategyHalt,
    StrategyJob,
    StrategyLike,
    halt_at,
    warm_rows,
    weights_vector,
)
from bot.core.events import (
    ACCEPTED,
    CANCELLED,
    CLOSE,
    FUNDING,
    OPEN,
    REJECTED,
    Bar,
    Decision,
    ExecutionReport,
    Fill,
    Panel,
    RunEvent,
)
from bot.core.execution import Executor
from bot.core.funding import FundingEvent, FundingRates
from bot.core.journal import Journal
from bot.core.portfolio import Portfolio, plan_rebalance
from bot.core.risk import RiskManager
from bot.core.scheduler import ClockScheduler
from bot.core.timeutil import interval_ms, iso, normalize_interval

log = logging.getLogger(__name__)

STALE_EVENT = "stale_step"  # symbols without a bar when their step was decided
LATE_EVENT = "late_bar"  # ... whose bar came afterwards and was patched in
CORRECTED_EVENT = "bar_corrected"  # a stored bar the venue's REST record contradicted


def bar_values(bar: Bar) -> list[float | None]:
    """A bar's numbers as an event stores them (restarts rebuild the bar from them)."""
    return [bar.open, bar.high, bar.low, bar.close, bar.volume, bar.turnover]


@dataclass(frozen=True, slots=True)
class EngineSettings:
    run_id: str
    interval: str
    rebalance_threshold: float = 0.0
    block_rows: int = 8192
    use_batch: bool = True  # let strategies with ``on_bars`` decide a block at a time
    record_bars: bool = False  # journal every bar (paper trading); replays read them from disk
    # Flush the journal after every panel: what a live run needs so that a crash loses at most
    # the step in progress. A replay flushes when the journal's batch fills and at the end.
    flush_each_panel: bool = True


@dataclass(frozen=True, slots=True)
class Mark:
    """The account as marked at a close. Scheduled jobs read this rather than the live
    portfolio: a live run may already have booked the next bar's fills (at its open) when a job
    due at this close runs, and the job must record what a replay records."""

    time: int
    equity: float
    cash: float
    gross: float
    qty: np.ndarray

    def positions(self, symbols: Sequence[str]) -> dict[str, float]:
        return {s: float(q) for s, q in zip(symbols, self.qty.tolist(), strict=True) if q}


@dataclass
class RunStats:
    """Running totals the metrics need beyond the equity curve."""

    rows: int = 0
    decisions: int = 0
    orders: int = 0
    cancelled: int = 0
    rejected: int = 0
    fills: int = 0
    funding_events: int = 0
    traded_notional: float = 0.0
    fees: float = 0.0
    funding: float = 0.0  # net funding received (negative: paid)
    realized: list[float] = field(default_factory=list)  # one per fill that closed quantity


@dataclass
class _Slot:
    strategy: StrategyLike
    allocation: float
    columns: np.ndarray  # universe index of each of the strategy's symbols
    column_list: list[int]  # the same, as a list for the per-decision path
    batch: bool
    warmup: int
    last: list[float]  # last weights over the universe (zero until it first decides)
    start_row: int = 0  # first row it decides at: warmed up, and not a primed row
    halted: bool = False  # it asked to halt (StrategyHalt): flat, and asked nothing more

    @property
    def selector(self) -> np.ndarray | None:
        """Column selector for contexts, or None when the strategy trades the whole universe
        in universe order (then its windows are zero-copy views)."""
        if np.array_equal(self.columns, np.arange(len(self.last))):
            return None
        return self.columns


class _Curve:
    """A growing column of numbers: amortised O(1) appends of one row (live) or a block
    (replay), without the per-object overhead of keeping every block as its own array."""

    def __init__(self, dtype: type) -> None:
        self._data = np.empty(1024, dtype=dtype)
        self._size = 0

    def extend(self, values: np.ndarray) -> None:
        end = self._size + len(values)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = values
        self._size = end

    def values(self) -> np.ndarray:
        return self._data[: self._size].copy()


class _Block:
    """Per-block working state: the rows, their derived arrays, and what fills in."""

    __slots__ = ("all_present", "batch", "chunk", "close_list", "close_times", "closes", "curve",
                 "first_row", "funding", "gross")  # fmt: skip

    def __init__(self, chunk: Panel, first_row: int, interval_ms: int) -> None:
        self.chunk = chunk
        self.first_row = first_row  # global index of the block's first row
        self.closes = chunk.values[:, :, CLOSE]
        self.close_times = chunk.starts + interval_ms
        self.close_list: list[int] = self.close_times.tolist()
        self.all_present: list[bool] = chunk.present.all(axis=1).tolist()
        self.batch: dict[int, tuple[np.ndarray, list[bool]]] = {}  # slot → (weights, decided)
        self.funding: dict[int, list[FundingEvent]] = {}
        self.curve = np.empty(len(chunk))
        self.gross = np.empty(len(chunk))


class Engine:
    def __init__(
        self,
        *,
        settings: EngineSettings,
        symbols: Sequence[str],
        strategies: Sequence[tuple[StrategyLike, float]],
        portfolio: Portfolio,
        executor: Executor,
        risk: RiskManager,
        journal: Journal,
        clock: Clock,
        scheduler: ClockScheduler | None = None,
        funding: FundingRates | None = None,
    ) -> None:
        self.settings = settings
        self.symbols = tuple(symbols)
        self.interval = normalize_interval(settings.interval)
        self.interval_ms = interval_ms(self.interval)
        if portfolio.symbols != self.symbols:
            raise ValueError("portfolio symbols must be the engine's symbols, in order")
        self.portfolio = portfolio
        self.executor = executor
        self.risk = risk
        self.journal = journal
        self.clock = clock
        self.scheduler = scheduler or ClockScheduler()
        self.funding = funding or FundingRates({})
        self.stats = RunStats()
        # the last mark, kept as plain numbers; positions are copied only when they changed
        self._mark = (0, portfolio.equity, portfolio.cash, 0.0)
        self._mark_qty = portfolio.qty.copy()
        self._mark_version = portfolio.version
        self._slots = [self._slot(s, a) for s, a in strategies]
        if not self._slots:
            raise ValueError("the engine needs at least one strategy")
        lookbacks: dict[str, int] = {self.interval: 1}
        for slot in self._slots:
            for name, bars in {self.interval: slot.strategy.lookback,
                               **dict(slot.strategy.extra_intervals)}.items():  # fmt: skip
                key = normalize_interval(name)
                lookbacks[key] = max(lookbacks.get(key, 1), int(bars))
        self.buffer = FeatureBuffer(self.symbols, self.interval, lookbacks, settings.block_rows)
        for slot in self._slots:
            for job in getattr(slot.strategy, "jobs", list)():
                self.scheduler.add_job(
                    f"{slot.strategy.name}.{job.name}",
                    job.trigger,
                    self._job_runner(slot, job),
                    affects_decisions=job.affects_decisions,
                )
        self._curve_times = _Curve(np.int64)
        self._curve_equity = _Curve(np.float64)
        self._curve_gross = _Curve(np.float64)
        self._started = False
        self._last_row = -1  # global index of the last processed (or primed) row

    @property
    def strategies(self) -> tuple[StrategyLike, ...]:
        """The strategies it runs, in order: for code that narrates their decisions as they
        are recorded (``bot demo``), never to change them."""
        return tuple(slot.strategy for slot in self._slots)

    def _slot(self, strategy: StrategyLike, allocation: float) -> _Slot:
        if normalize_interval(strategy.interval) != normalize_interval(self.settings.interval):
            raise ValueError(
                f"strategy {strategy.name} trades {strategy.interval} bars but the engine runs "
                f"{self.settings.interval}; run strategies of one base interval together"
            )
        unknown = [s for s in strategy.symbols if s not in self.symbols]
        if unknown:
            raise ValueError(f"strategy {strategy.name} wants symbols not subscribed: {unknown}")
        columns = np.array([self.symbols.index(s) for s in strategy.symbols], dtype=np.int64)
        batch = self.settings.use_batch and callable(getattr(strategy, "on_bars", None))
        return _Slot(
            strategy=strategy,
            allocation=float(allocation),
            columns=columns,
            column_list=columns.tolist(),
            batch=batch,
            warmup=warm_rows(strategy),
            last=[0.0] * len(self.symbols),
        )

    # -- driving -----------------------------------------------------------------------------
    async def run(
        self, feed: AsyncIterable[Panel], progress: Callable[[int], None] | None = None
    ) -> None:
        """Consume a feed to its end, then run the jobs due at the last close and flush."""
        async for panel in feed:
            self.process(panel)
            if progress is not None:
                progress(len(panel))
            await asyncio.sleep(0)  # let signal handlers, heartbeats and I/O run between blocks
        self.finish()

    def prime(self, panel: Panel) -> None:
        """Warm the buffer up with history that is not traded (bars before the run starts).

        Strategies see these bars in their windows; their first decision comes at the first
        processed row (or later, if the primed history is shorter than their warm-up)."""
        if self._started:
            raise RuntimeError("prime() must come before the first processed bar")
        self._check_symbols(panel)
        step = self.settings.block_rows
        for lo in range(0, len(panel), step):
            self.buffer.append(panel.slice(lo, lo + step))

    def _job_runner(self, slot: _Slot, job: StrategyJob) -> Callable[[int], None]:
        """A strategy job runs with the closed bars up to its fire time (the last processed
        row): the same bars in a replay as live."""

        def run(fire_time: int) -> None:
            row = self._last_row  # -1 before any bar: empty windows

            def window(length: int, interval: str | None = None):
                window = self.buffer.window(length, interval, row)
                selector = slot.selector
                if selector is None:
                    return window
                return type(window)(window.values[selector], window.present[selector],
                                    window.starts)  # fmt: skip

            job.run(JobContext(fire_time, slot.strategy.symbols, window))

        return run

    def _check_symbols(self, panel: Panel) -> None:
        if panel.symbols != self.symbols:
            raise ValueError(f"panel symbols {panel.symbols} != engine symbols {self.symbols}")

    def _start(self, first_start: int) -> None:
        """The first processed row: fix each strategy's first decision row, start the jobs."""
        primed = self.buffer.rows
        self._last_row = primed - 1
        for slot in self._slots:
            slot.start_row = max(slot.warmup - 1, primed)
        self.scheduler.start(first_start)
        self._started = True

    def process(self, panel: Panel) -> None:
        """Process a panel of any length (split into blocks the buffer can hold)."""
        self._check_symbols(panel)
        if not self._started and len(panel):
            self._start(int(panel.starts[0]))
        step = self.settings.block_rows
        for lo in range(0, len(panel), step):
            self._process_block(panel.slice(lo, lo + step))
        if self.settings.flush_each_panel:
            self.journal.flush()

    def on_open(self, symbol: str, start: int, open_price: float) -> None:
        """A live feed saw the first message of ``symbol``'s candle starting at ``start``:
        book the fill of its pending orders at that open now rather than at the bar's close.

        It is the very fill the row would book later (same price, fee and time, and cash is
        exact whatever the order of symbols), so paper trading and its replay agree. When a
        funding settlement may fall on this instant the fill waits for the row, which settles
        funding on the position held before the fill, as a replay does."""
        if not self._started or self.funding.settles_at(symbol, start):
            return
        reports = self.executor.on_symbol_open(symbol, start, open_price)
        self._apply_reports(reports)
        if reports and self.settings.flush_each_panel:
            self.journal.flush()

    def on_execution(self, report: ExecutionReport) -> None:
        """An executor's report that arrived on its own (a live exchange's acknowledgement,
        rejection, fill, cancellation or funding settlement): book it now."""
        self._apply_reports([report])
        if self.settings.flush_each_panel:
            self.journal.flush()

    def record_stale(self, rows: Panel) -> None:
        """Before live steps are processed: record which symbols had no bar at each (the
        barrier's grace ran out), so a restart masks them out again and its replay decides
        exactly as the run did."""
        for i in np.flatnonzero(~rows.present.all(axis=1)).tolist():
            stale = [s for s, here in zip(self.symbols, rows.present[i], strict=True) if not here]
            start = int(rows.starts[i])
            detail = {"start": start, "symbols": stale}
            self.journal.record_event(RunEvent(start + self.interval_ms, STALE_EVENT, detail))

    def late_bar(self, bar: Bar) -> None:
        """A bar that missed its step's decision: keep it (journal and buffer) for the
        decisions that come next, and record when it came, for a restart's replay."""
        self._patch_bar(bar)
        detail = {"symbol": bar.symbol, "start": bar.start, "bar": bar_values(bar)}
        self.journal.record_event(RunEvent(self.clock.now(), LATE_EVENT, detail,
                                           key=f"{bar.symbol}:{bar.start}"))  # fmt: skip
        log.warning("%s bar %s arrived after its step was decided", bar.symbol, iso(bar.start))

    def correct_bar(self, venue: Bar, seen: Bar) -> None:
        """The venue's record of a bar differs from the one taken (``seen``): store the
        venue's and let later decisions see it; earlier decisions stand, they are history."""
        self._patch_bar(venue, revised=True)
        detail = {"symbol": venue.symbol, "start": venue.start, "seen": bar_values(seen),
                  "bar": bar_values(venue)}  # fmt: skip
        self.journal.record_event(RunEvent(self.clock.now(), CORRECTED_EVENT, detail,
                                           key=f"{venue.symbol}:{venue.start}"))  # fmt: skip
        log.warning(
            "%s bar %s: the venue's record differs from the bar taken (%s); corrected",
            venue.symbol, iso(venue.start), bar_differences(seen, venue),
        )  # fmt: skip

    def replay_patch(self, bar: Bar) -> None:
        """A restart re-applies a late or corrected bar after the step it followed."""
        self._patch_bar(bar)

    def update_funding(self, funding: FundingRates) -> None:
        """Funding rates fetched since the engine was built (before the steps that need them)."""
        self.funding = funding

    def record_event(self, event: RunEvent) -> None:
        """An event from outside the steps (a daemon's halt), journaled and flushed."""
        self.journal.record_event(event)
        if self.settings.flush_each_panel:
            self.journal.flush()

    def use_executor(self, executor: Executor) -> None:
        """Hand orders to another executor from now on: a live daemon replays and catches up
        with one that sends nothing, then trades through the exchange's."""
        if self.executor.pending:
            raise RuntimeError("the current executor still holds orders")
        self.executor = executor

    @property
    def last_submission_ns(self) -> int:
        """perf_counter_ns when the executor last took orders (decision latency metrics)."""
        return self.executor.submitted_ns

    def _patch_bar(self, bar: Bar, *, revised: bool = False) -> bool:
        """Take in a bar after its step was decided: one that arrived late (its symbol was
        stale at the step), or one the venue corrected (``revised``). Later decisions see it
        in their windows; the journal stores it (over the stored bar when revised). Returns
        False when its row has left the buffer (then only the journal keeps it).

        A replay reproduces a live run only if it patches the same bars after the same steps:
        the daemon records when it did (an event) and its restart replays it."""
        values = np.array([bar.open, bar.high, bar.low, bar.close, bar.volume])
        kept = self.buffer.patch(bar.start, bar.symbol, values)
        turnover = np.array([[np.nan if bar.turnover is None else bar.turnover]])
        row = Panel((bar.symbol,), self.interval_ms, np.array([bar.start]),
                    values[None, None, :], np.ones((1, 1), dtype=bool), turnover)  # fmt: skip
        if revised:
            self.journal.record_bar_revision(self.interval, row)
        else:
            self.journal.record_bars(self.interval, row)
        return kept

    def finish(self) -> None:
        self.scheduler.fire_due(self.clock.now(), inclusive=True)
        self.journal.flush()

    # -- results -----------------------------------------------------------------------------
    def equity_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(close times, equity) of every processed step."""
        return self._curve_times.values(), self._curve_equity.values()

    def gross_exposure_curve(self) -> np.ndarray:
        return self._curve_gross.values()

    # -- one block ---------------------------------------------------------------------------
    def _process_block(self, chunk: Panel) -> None:
        n = len(chunk)
        if n == 0:
            return
        block = _Block(chunk, self.buffer.rows, self.interval_ms)
        self.buffer.append(chunk)
        if self.settings.record_bars:
            self.journal.record_bars(self.interval, chunk)
        for fe in self.funding.events(self.symbols, chunk.starts, self.interval_ms):
            block.funding.setdefault(fe.row, []).append(fe)
        event_rows, is_event = self._plan(block, 0)
        closes, close_list = block.closes, block.close_list

        i = 0
        while i < n:
            due = self.scheduler.next_fire_time()
            if due is not None and due < block.close_list[i]:
                epoch = self.scheduler.decision_epoch
                self.scheduler.fire_due(block.close_list[i])
                if self.scheduler.decision_epoch != epoch:  # e.g. a model was retrained
                    event_rows, is_event = self._plan(block, i)
                continue
            if is_event[i] or self.executor.pending:
                self._process_row(block, i)
                i += 1
                continue
            k = bisect.bisect_left(event_rows, i)
            end = event_rows[k] if k < len(event_rows) else n
            if due is not None:
                end = min(end, bisect.bisect_right(close_list, due))
            equity = self.portfolio.mark(closes[i:end])
            breach = self.risk.first_breach(equity)
            quiet_end = end if breach is None else i + breach
            if quiet_end > i:
                block.curve[i:quiet_end] = equity[: quiet_end - i]
                block.gross[i:quiet_end] = self.portfolio.gross(closes[i:quiet_end])
                self.portfolio.equity = float(block.curve[quiet_end - 1])
                self.portfolio.last_price = closes[quiet_end - 1].copy()
                self.clock.advance(block.close_list[quiet_end - 1])
                self._remember_mark(block, quiet_end - 1)
                self._last_row = block.first_row + quiet_end - 1
            i = quiet_end
            if breach is not None:  # the breaching close gets the full per-row treatment
                self._process_row(block, i)
                i += 1

        self.journal.record_progress(block.close_list[-1])
        self._curve_times.extend(block.close_times)
        self._curve_equity.extend(block.curve)
        self._curve_gross.extend(block.gross)
        self.stats.rows += n

    def _plan(self, block: _Block, lo: int) -> tuple[list[int], list[bool]]:
        """Prepare rows ``lo..`` of the block: batch strategies' decisions for them, and which
        rows need the per-row path (stale symbols, decisions, funding, per-bar strategies).
        Called again from the row a decision-affecting job (a retrain) fired at; decisions are
        batched only up to that job's fire time, since the job changes the ones after it."""
        chunk = block.chunk
        event = ~chunk.present.all(axis=1)  # stale rows need the per-row rules
        change = self.scheduler.next_decision_change()
        hi = len(chunk) if change is None else bisect.bisect_right(block.close_list, change)
        if not self.risk.halted:
            for k, slot in enumerate(self._slots):
                if slot.halted:
                    block.batch.pop(k, None)
                elif slot.batch:
                    # hi <= lo: a change is due before row lo; the replan after it decides
                    weights = self._batch_decisions(slot, block, lo, hi) if hi > lo else None
                    if weights is None:
                        block.batch.pop(k, None)
                        continue
                    decided = ~np.isnan(weights).all(axis=1)
                    block.batch[k] = (weights, decided.tolist())
                    event |= decided
                else:
                    event[max(0, slot.start_row - block.first_row) :] = True
        event[list(block.funding)] = True
        event[:lo] = False  # rows already processed
        return np.flatnonzero(event).tolist(), event.tolist()

    def _batch_decisions(self, slot: _Slot, block: _Block, lo: int, hi: int) -> np.ndarray | None:
        """The strategy's weights for rows ``lo..hi`` of the block (NaN rows: no decision;
        rows outside are left NaN)."""
        strategy, chunk = slot.strategy, block.chunk
        part = chunk.slice(lo, hi)
        ctx = BatchContext(
            self.buffer,
            strategy.symbols,
            slot.selector,
            block.first_row + lo,
            part.starts,
            block.close_times[lo:hi],
            ~part.present[:, slot.columns],
            slot.start_row,
        )
        raw = strategy.on_bars(ctx)  # type: ignore[attr-defined]
        if raw is None:
            return None
        computed = np.array(raw, dtype=float)
        if computed.shape != (len(part), len(strategy.symbols)):
            raise StrategyError(
                f"{strategy.name}.on_bars returned shape {computed.shape}, expected "
                f"{(len(part), len(strategy.symbols))}"
            )
        halt = getattr(strategy, "halt", None)
        if halt is not None:  # flat at the halt's row, and nothing after it (as a live run)
            at = np.flatnonzero(block.close_times[lo:hi] == halt.time)
            if len(at):
                computed[at[0]] = 0.0
                computed[at[0] + 1 :] = np.nan
        if np.isinf(computed).any():
            raise StrategyError(f"{strategy.name}.on_bars returned infinite weights")
        weights = np.full((len(chunk), len(strategy.symbols)), np.nan)
        weights[lo:hi] = computed
        weights[: max(0, min(len(chunk), slot.start_row - block.first_row))] = np.nan
        return weights

    # -- one step ----------------------------------------------------------------------------
    def _process_row(self, block: _Block, i: int) -> None:
        chunk = block.chunk
        start = int(chunk.starts[i])
        close_time = block.close_list[i]
        present = chunk.present[i]
        values = chunk.values[i]
        portfolio = self.portfolio
        funding = block.funding.get(i, ())

        for fe in funding:
            if fe.time == start:
                self._settle_funding(fe, values[:, OPEN])
        if self.executor.pending:
            self._apply_reports(self.executor.on_open(start, values[:, OPEN], present))
        for fe in funding:
            if fe.time != start:
                self._settle_funding(fe, values[:, OPEN])

        all_present = block.all_present[i]
        prices = (
            values[:, CLOSE].copy()
            if all_present
            else np.where(present, values[:, CLOSE], portfolio.last_price)
        )
        portfolio.last_price = prices
        price_list = prices.tolist()
        equity = portfolio.mark_row(price_list)
        block.curve[i] = equity
        block.gross[i] = portfolio.gross_row(price_list)
        portfolio.equity = equity
        self.clock.advance(close_time)
        self._remember_mark(block, i)
        self._last_row = block.first_row + i

        if self.risk.breached(equity):
            self._kill_switch(close_time, prices, ~present)
        elif not self.risk.halted:
            self._decide(block, i, prices, present, all_present)

    def _remember_mark(self, block: _Block, i: int) -> None:
        portfolio = self.portfolio
        self._mark = (block.close_list[i], block.curve[i], portfolio.cash, block.gross[i])
        if portfolio.version != self._mark_version:
            self._mark_qty = portfolio.qty.copy()
            self._mark_version = portfolio.version

    @property
    def mark(self) -> Mark:
        """The account as marked at the last processed close (what scheduled jobs record)."""
        time, equity, cash, gross = self._mark
        return Mark(time, float(equity), cash, float(gross), self._mark_qty.copy())

    def _settle_funding(self, fe: FundingEvent, opens: np.ndarray) -> None:
        price = opens[fe.symbol_index]
        if not np.isfinite(price):
            price = self.portfolio.last_price[fe.symbol_index]
        fill = self.portfolio.apply_funding(
            fe.symbol_index, fe.time, fe.rate, float(price), self.settings.run_id
        )
        if fill is not None:
            self.stats.funding_events += 1
            self.stats.funding += fill.cash_flow
            self.journal.record_fill(fill)

    def _apply_reports(self, reports: list[ExecutionReport]) -> None:
        """Book executor reports, in order: the one path from an executor to the books."""
        for report in reports:
            kind = report.kind
            if kind == ACCEPTED:
                self.journal.record_orders([report.order])
            elif kind == CANCELLED:
                self.stats.cancelled += 1
                self.journal.record_orders([report.order], status="Cancelled")
            elif kind == REJECTED:
                self.stats.rejected += 1
                self.journal.record_orders([report.order], status="Rejected")
                log.warning("%s: order %s rejected (%s)", report.symbol,
                            report.order.link_id, report.reason)  # fmt: skip
            elif kind == FUNDING:
                fill = report.fill
                self.portfolio.book_cash(fill.cash_flow)
                self.stats.funding_events += 1
                self.stats.funding += fill.cash_flow
                self.journal.record_fill(fill)
            else:  # filled or partially filled: a trade
                self._book(self.portfolio.apply_fill(report.fill))

    def _book(self, fill: Fill) -> None:
        s = self.portfolio.index[fill.symbol]
        self.stats.fills += 1
        self.stats.traded_notional += abs(fill.qty) * fill.price
        self.stats.fees += fill.fee
        if fill.realized_pnl != 0.0:
            self.stats.realized.append(fill.realized_pnl)
        self.journal.record_fill(fill)
        self.journal.record_position(
            fill.time, fill.symbol, float(self.portfolio.qty[s]), float(self.portfolio.avg_price[s])
        )

    def _decide(
        self, block: _Block, i: int, prices: np.ndarray, present: np.ndarray, all_present: bool
    ) -> None:
        # Small vectors (one weight per symbol) in plain floats: the same IEEE operations as
        # numpy's, without its per-call overhead on this once-per-decision path.
        row = block.first_row + i
        close_time = block.close_list[i]
        stale = ~present
        decided: list[_Slot] = []
        halts: list[tuple[_Slot, StrategyHalt]] = []
        for k, slot in enumerate(self._slots):
            if row < slot.start_row or slot.halted:
                continue
            strategy = slot.strategy
            if slot.batch:
                entry = block.batch.get(k)
                if entry is None or not entry[1][i]:
                    continue
                own = entry[0][i].tolist()
            else:
                ctx = StepContext(
                    self.buffer,
                    strategy.symbols,
                    slot.selector,
                    row,
                    int(block.chunk.starts[i]),
                    close_time,
                    stale[slot.columns],
                    self.portfolio.view,
                    self.clock,
                    slot.start_row,
                )
                raw = strategy.on_bar(ctx)
                if halt_at(strategy, close_time) is not None:
                    raw = [0.0] * len(strategy.symbols)  # flat, whatever it answered
                if raw is None:
                    continue
                own = weights_vector(raw, strategy.symbols, strategy.name).tolist()
            halt = halt_at(strategy, close_time)
            if halt is not None:
                slot.halted = True
                halts.append((slot, halt))
            weights = list(slot.last)
            for c, w in zip(slot.column_list, own, strict=True):
                if not math.isnan(w):  # NaN: keep the strategy's previous target for the symbol
                    weights[c] = w
            slot.last = weights
            decided.append(slot)
        if not decided:
            return
        first = self._slots[0]
        combined = [first.allocation * w for w in first.last]
        for slot in self._slots[1:]:
            combined = [c + slot.allocation * w for c, w in zip(combined, slot.last, strict=True)]
        target = self.risk.clip(combined)
        symbols = self.symbols
        stale_names = (
            ()
            if all_present
            else tuple(s for s, here in zip(symbols, present.tolist(), strict=True) if not here)
        )
        target_map = dict(zip(symbols, target, strict=True))
        for slot in decided:
            strategy = slot.strategy
            self.stats.decisions += 1
            self.journal.record_decision(
                Decision(
                    time=close_time,
                    strategy=strategy.name,
                    version=strategy.version,
                    weights={symbols[c]: slot.last[c] for c in slot.column_list},
                    target=target_map,
                    stale=stale_names,
                    model_version=getattr(strategy, "model_version", None),
                )
            )
        orders = plan_rebalance(
            self.portfolio,
            target,
            prices,
            stale,
            0.0 if halts else self.settings.rebalance_threshold,  # a halt flattens in full
            self.settings.run_id,
            close_time,
            reason=halts[0][1].kind if halts else "rebalance",
        )
        self._submit(orders)
        for slot, halt in halts:
            self._strategy_halted(slot, halt, orders)

    def _submit(self, orders: list) -> None:
        if not orders:
            return
        self.stats.orders += len(orders)
        self._apply_reports(self.executor.submit(orders))

    def _strategy_halted(self, slot: _Slot, halt: StrategyHalt, orders: list) -> None:
        """A strategy halted itself (its decision at ``halt.time`` was flat): log and record
        why; once every strategy has, the run is halted as the kill switch halts it."""
        name = slot.strategy.name
        log.warning("%s halted at %s: %s; flattening it", name, iso(halt.time), halt.reason)
        detail = {
            "strategy": name,
            "reason": halt.reason,
            **halt.detail,
            "flatten_orders": [o.link_id for o in orders],
        }
        self.journal.record_event(RunEvent(halt.time, halt.kind, detail, key=name))
        if all(s.halted for s in self._slots):
            self.risk.halt(f"{name}: {halt.reason}")

    def _kill_switch(self, close_time: int, prices: np.ndarray, stale: np.ndarray) -> None:
        limit = self.risk.limits.max_drawdown
        drawdown = self.risk.drawdown(self.portfolio.equity)
        reason = (
            f"max drawdown breached: {drawdown:.2%} from peak {self.risk.peak:,.2f} "
            f"(limit {limit:.2%}) at {iso(close_time)}"
        )
        self.risk.halt(reason)
        log.warning("kill switch: %s; flattening and halting", reason)
        orders = plan_rebalance(
            self.portfolio,
            np.zeros(len(self.symbols)),
            prices,
            stale,
            0.0,
            self.settings.run_id,
            close_time,
            reason="kill_switch",
        )
        self._submit(orders)
        self.journal.record_event(
            RunEvent(
                close_time,
                "kill_switch",
                {
                    "reason": reason,
                    "equity": self.portfolio.equity,
                    "peak": self.risk.peak,
                    "drawdown": drawdown,
                    "flatten_orders": [o.link_id for o in orders],
                },
            )
        )
