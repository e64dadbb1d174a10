"""Running the engine over history: load bars, assemble the engine, replay, measure.

The engine is the one :mod:`bot.assembly` builds for every mode; a backtest chooses a replay
of stored or file bars as its feed, a simulated clock and the paper executor (fills at the
next open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from backtest.metrics import Metrics, compute_metrics
from bot.assembly import build_engine, make_strategies, paper_executor, warmup_span_ms
from bot.config import Settings, redacted
from bot.core.clock import LiveClock, SimulatedClock
from bot.core.engine import RunStats
from bot.core.events import Panel
from bot.core.funding import FundingRates
from bot.core.ids import new_run_id
from bot.core.journal import Journal, NullJournal
from bot.feeds.loaders import DataError, align, check_bars, load_funding, load_panel
from bot.feeds.replay import ReplayFeed
from bot.feeds.synthetic import DEFAULT_START_MS, synthetic_panel
from bot.store import Store
from bot.version import code_version
from strategies.api import Strategy

log = logging.getLogger(__name__)


@dataclass
class BacktestResult:
    run_id: str
    settings: Settings
    metrics: Metrics
    times: np.ndarray  # close time of every bar
    equity: np.ndarray
    gross: np.ndarray
    stats: RunStats
    halted_reason: str | None

    def counts(self) -> dict[str, int]:
        return {
            "bars": self.stats.rows,
            "decisions": self.stats.decisions,
            "orders": self.stats.orders,
            "cancelled": self.stats.cancelled,
            "fills": self.stats.fills,
            "funding_events": self.stats.funding_events,
        }

    def to_dict(self, include_curve: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "strategies": [s.name for s in self.settings.strategies],
            "symbols": self.settings.engine.symbols,
            "interval": self.settings.engine.interval,
            "metrics": self.metrics.as_dict(),
            "counts": self.counts(),
            "halted_reason": self.halted_reason,
        }
        if include_curve:
            out["equity_curve"] = {"time": self.times.tolist(), "equity": self.equity.tolist()}
        return out


def load_history(
    settings: Settings, store: Store | None = None, warmup_ms: int = 0
) -> tuple[Panel, Panel, FundingRates]:
    """(warm-up bars, traded bars, funding rates) for a backtest of ``settings``.

    With ``engine.start`` set, up to ``warmup_ms`` of bars before it are loaded to warm the
    strategies up, so trading starts at the start date rather than a lookback later."""
    engine, data = settings.engine, settings.data
    symbols = tuple(engine.symbols)
    start = engine.start_ms
    load_from = None if start is None else start - warmup_ms
    if data.source == "synthetic":
        first = start if start is not None else DEFAULT_START_MS
        panel = synthetic_panel(
            symbols, engine.interval, data.synthetic_bars, seed=data.synthetic_seed, start_ms=first
        )
        return panel.slice(0, 0), panel, FundingRates({})
    if data.source == "store":
        if store is None:
            raise DataError("data.source = 'store' needs a store")
        frames = {
            s: store.load_klines(s, engine.interval, load_from, engine.end_ms) for s in symbols
        }
        empty = [s for s, f in frames.items() if f.empty]
        if empty:
            raise DataError(
                f"the store has no {engine.interval} bars for {', '.join(empty)} in the range; "
                "import some with `bot data import`"
            )
        for symbol, frame in frames.items():  # rows written before bars were checked on entry
            check_bars(frame, engine.interval, f"the store's {symbol} {engine.interval} bars")
        panel = align(frames, symbols, engine.interval)
        rates = store.load_funding(symbols) if data.funding else {}
    else:
        panel = load_panel(
            Path(data.path), symbols, engine.interval, load_from, engine.end_ms, data.source
        )
        rates = load_funding(Path(data.path), symbols) if data.funding else {}
    warmup, traded = panel.split(start) if start is not None else (panel.slice(0, 0), panel)
    if len(traded) == 0:
        raise DataError(f"no {engine.interval} bars from {engine.start} on")
    return warmup, traded, FundingRates(rates)


async def run_backtest_async(
    settings: Settings,
    *,
    store: Store | None = None,
    record: bool = True,
    panel: Panel | None = None,
    funding: FundingRates | None = None,
    progress: bool = False,
) -> BacktestResult:
    """Replay history through the engine. With a ``store``, bars may come from it
    (``data.source = "store"``) and, unless ``record`` is false, the run and its journal are
    written to it."""
    strategies = make_strategies(settings)
    warmup = None
    if panel is None:
        warmup, panel, loaded_funding = load_history(
            settings, store, warmup_span_ms(strategies, settings.engine.interval)
        )
        funding = loaded_funding if funding is None else funding
    if len(panel) == 0:
        raise DataError("no bars to replay")
    run_id = new_run_id()
    wall = LiveClock()
    recorder = store if record else None
    if recorder is not None:
        recorder.create_run(**run_row(settings, run_id, panel, started_at=wall.now()))
    journal: Journal = (
        recorder.journal(run_id, background=True) if recorder is not None else NullJournal()
    )
    try:
        result = await replay_async(
            settings, run_id, journal, strategies, panel,
            warmup=warmup, funding=funding, progress=progress,
        )  # fmt: skip
    except BaseException:
        if recorder is not None:
            with contextlib.suppress(Exception):
                journal.close()  # stop the writer; the run is failed either way
            recorder.finish_run(run_id, finished_at=wall.now(), status="failed")
        raise
    if recorder is not None:
        recorder.finish_run(run_id, finished_at=wall.now(), **finish_fields(result))
    return result


def run_row(settings: Settings, run_id: str, panel: Panel, *, started_at: int) -> dict[str, Any]:
    """The ``Store.create_run`` fields of a backtest of ``settings`` over ``panel``: built
    apart from the store so a sweep's worker, which has none, can hand them to its driver."""
    return {
        "run_id": run_id,
        "kind": "backtest",
        "strategy": ",".join(s.name for s in settings.strategies),
        "symbols": list(settings.engine.symbols),
        "interval": settings.engine.interval,
        "config": redacted(settings),
        "code_version": code_version(),
        "started_at": started_at,
        "data_start": int(panel.starts[0]),
        "data_end": int(panel.starts[-1]) + panel.interval_ms,
    }


def finish_fields(result: BacktestResult) -> dict[str, Any]:
    """The ``Store.finish_run`` fields (but the time) of a backtest that ran to its end."""
    halted = result.halted_reason
    return {
        "status": "halted" if halted else "finished",
        "metrics": result.metrics.as_dict(),
        "halted_reason": halted,
    }


async def replay_async(
    settings: Settings,
    run_id: str,
    journal: Journal,
    strategies: list[tuple[Strategy, float]],
    panel: Panel,
    *,
    warmup: Panel | None = None,
    funding: FundingRates | None = None,
    progress: bool = False,
    watch: Callable[[], None] | None = None,
) -> BacktestResult:
    """The engine over ``panel`` (primed with ``warmup``), writing into ``journal``, which it
    closes: the part of a backtest that needs no store, so a sweep's worker can run it into
    memory and leave the database to its driver. ``watch`` is called after every block of
    bars (a sweep's memory bound: it stops the replay by raising)."""
    engine = build_engine(
        settings, run_id, journal, SimulatedClock(), strategies, paper_executor(settings),
        funding=funding, flush_each_panel=False,  # a replay is rerun, not resumed: batch writes
    )  # fmt: skip
    log.info(
        "backtest %s: %s on %d bars of %s", run_id, ", ".join(s.name for s in settings.strategies),
        len(panel), ", ".join(settings.engine.symbols),
    )  # fmt: skip
    if warmup is not None and len(warmup):
        engine.prime(warmup)
    bar = tqdm(total=len(panel), unit="bar", unit_scale=True, disable=not progress,
               desc="backtest", leave=False)  # fmt: skip

    def advance(rows: int) -> None:
        bar.update(rows)
        if watch is not None:
            watch()

    try:
        await engine.run(ReplayFeed(panel, settings.engine.block_rows), progress=advance)
        journal.close()
    finally:
        bar.close()
    times, equity = engine.equity_curve()
    gross = engine.gross_exposure_curve()
    stats = engine.stats
    metrics = compute_metrics(
        times,
        equity,
        initial_equity=settings.portfolio.initial_cash,
        interval_ms=engine.interval_ms,
        gross=gross,
        traded_notional=stats.traded_notional,
        fees=stats.fees,
        funding=stats.funding,
        trade_count=stats.fills,
        realized=stats.realized,
    )
    halted = engine.risk.halt_reason
    return BacktestResult(run_id, settings, metrics, times, equity, gross, stats, halted)


def run_backtest(settings: Settings, **kwargs: Any) -> BacktestResult:
    """Synchronous :func:`run_backtest_async` (for the CLI and scripts)."""
    return asyncio.run(run_backtest_async(settings, **kwargs))
