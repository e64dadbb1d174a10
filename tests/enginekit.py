"""Building small engines for tests without config files."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.core.clock import SimulatedClock
from bot.core.engine import Engine, EngineSettings
from bot.core.events import Panel
from bot.core.execution import PaperExecutor
from bot.core.funding import FundingRates
from bot.core.instruments import InstrumentSpec
from bot.core.journal import MemoryJournal
from bot.core.portfolio import Portfolio
from bot.core.risk import RiskLimits, RiskManager
from bot.core.scheduler import ClockScheduler
from bot.feeds.replay import ReplayFeed


def make_engine(
    panel: Panel,
    strategies: Sequence,
    *,
    interval: str,
    block_rows: int = 8192,
    use_batch: bool = True,
    limits: RiskLimits | None = None,
    funding: FundingRates | None = None,
    fee: float = 0.00055,
    slippage: float = 0.0001,
    threshold: float = 0.0,
    cash: float = 100_000.0,
    qty_step: float = 0.001,
    scheduler: ClockScheduler | None = None,
) -> tuple[Engine, MemoryJournal]:
    symbols = panel.symbols
    specs = {s: InstrumentSpec(s, qty_step, qty_step, 5.0) for s in symbols}
    journal = MemoryJournal()
    engine = Engine(
        settings=EngineSettings(
            run_id="testrun0", interval=interval, rebalance_threshold=threshold,
            block_rows=block_rows, use_batch=use_batch,
        ),
        symbols=symbols,
        strategies=[(s, 1.0 / len(strategies)) for s in strategies],
        portfolio=Portfolio(symbols, specs, cash),
        executor=PaperExecutor(symbols, fee, slippage),
        risk=RiskManager(limits or RiskLimits(), cash),
        journal=journal,
        clock=SimulatedClock(),
        scheduler=scheduler,
        funding=funding,
    )  # fmt: skip
    return engine, journal


def replay(engine: Engine, panel: Panel, feed_rows: int | None = None) -> None:
    asyncio.run(engine.run(ReplayFeed(panel, feed_rows or engine.settings.block_rows)))


def fingerprint(engine: Engine, journal: MemoryJournal) -> tuple:
    """Everything a run produced, comparable with ``==``: two runs with equal fingerprints made
    the same decisions (and model versions), orders, fills, events and equity, bit for bit."""
    return (
        engine.equity_curve()[1].tobytes(),
        [(d.time, d.strategy, d.weights, d.target, d.model_version) for d in journal.decisions],
        [(o.link_id, o.qty, o.reason, status) for o, status in journal.orders],
        [(f.exec_id, f.qty, f.price) for f in journal.fills],
        [(e.time, e.kind, e.key, e.detail) for e in journal.events],
    )
