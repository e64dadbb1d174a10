"""One place that assembles an engine from its parts, for every mode.

A backtest, a paper daemon and a live daemon differ only in the feed, the clock and the
executor they plug into the same engine (see DESIGN.md). Each of them builds its strategies
and its executor and hands them here; the portfolio, risk limits, instruments and scheduled
jobs come from the settings the same way for all three, which is what makes a backtest of a
live run's bars comparable to the run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.config import Settings, StrategyConfig
from bot.core.clock import Clock
from bot.core.context import warm_rows
from bot.core.engine import Engine, EngineSettings
from bot.core.execution import Executor, PaperExecutor
from bot.core.funding import FundingRates
from bot.core.instruments import InstrumentSpec
from bot.core.journal import Journal
from bot.core.market_data import MarketData
from bot.core.portfolio import Portfolio
from bot.core.risk import RiskLimits, RiskManager
from bot.core.timeutil import interval_ms
from bot.jobs import install_default_jobs
from bot.venues.bybit.market_data import BybitMarketData
from strategies import registry
from strategies.api import Strategy


def make_strategies(settings: Settings) -> list[tuple[Strategy, float]]:
    """The configured strategies with their allocations (fails fast on a bad name or param)."""
    interval = settings.engine.interval
    return [
        (
            registry.create(
                spec.name, settings.strategy_symbols(spec), interval, with_costs(spec, settings)
            ),
            spec.allocation,
        )
        for spec in settings.strategies
    ]


def with_costs(spec: StrategyConfig, settings: Settings) -> dict[str, Any]:
    """The strategy's parameters, with the run's round trip (fee + slippage, bought and sold)
    for a strategy that decides with costs (``round_trip_bp``) and was not given one: its
    no-trade band and its training then price the trades the run will pay for."""
    params = dict(spec.params)
    try:
        accepted = registry.accepted_parameters(registry.resolve(spec.name))
    except registry.StrategyNotFoundError:
        return params  # create() names the problem
    if "round_trip_bp" in accepted and "round_trip_bp" not in params:
        costs = settings.portfolio
        params["round_trip_bp"] = 2 * (costs.fee_bp + costs.slippage_bp)
    return params


def warmup_span_ms(strategies: list[tuple[Strategy, float]], interval: str) -> int:
    """How much history before the first traded bar the strategies need to be warm."""
    base = interval_ms(interval)
    span = 0
    for strategy, _ in strategies:
        span = max(span, (warm_rows(strategy) - 1) * base)
        for name, bars in strategy.extra_intervals.items():
            span = max(span, int(bars) * interval_ms(name))
    return span


def paper_executor(settings: Settings) -> PaperExecutor:
    """Simulated fills at the next open with the configured fee and slippage (backtest and
    paper trading)."""
    return PaperExecutor(
        tuple(settings.engine.symbols),
        settings.portfolio.fee_bp / 1e4,
        settings.portfolio.slippage_bp / 1e4,
    )


def venue_market_data(settings: Settings, stop: asyncio.Event) -> MarketData:
    """The configured venue's market data (Bybit, or the local exchange with ``venue.target =
    "local"``); ``stop`` interrupts its waits. An async context: enter it before use."""
    rest_url, ws_url = settings.venue_urls()
    return BybitMarketData(settings.venue, rest_url, ws_url, stop=stop,
                           seed=settings.exchange.seed)  # fmt: skip


def build_engine(
    settings: Settings,
    run_id: str,
    journal: Journal,
    clock: Clock,
    strategies: list[tuple[Strategy, float]],
    executor: Executor,
    *,
    summary_level: int = logging.DEBUG,
    funding: FundingRates | None = None,
    record_bars: bool = False,
    flush_each_panel: bool = True,
) -> Engine:
    """The engine for ``settings`` around the given executor: portfolio, risk, scheduled jobs."""
    symbols = tuple(settings.engine.symbols)
    specs = {s: InstrumentSpec(s, **settings.instruments[s].model_dump()) for s in symbols}
    cash = settings.portfolio.initial_cash
    limits = settings.risk
    engine = Engine(
        settings=EngineSettings(
            run_id=run_id,
            interval=settings.engine.interval,
            rebalance_threshold=settings.portfolio.rebalance_threshold,
            block_rows=settings.engine.block_rows,
            record_bars=record_bars,
            flush_each_panel=flush_each_panel,
        ),
        symbols=symbols,
        strategies=strategies,
        portfolio=Portfolio(symbols, specs, cash),
        executor=executor,
        risk=RiskManager(
            RiskLimits(
                max_weight=limits.max_weight,
                max_gross=limits.max_gross,
                max_drawdown=limits.max_drawdown,
                allow_short=limits.allow_short,
            ),
            cash,
        ),
        journal=journal,
        clock=clock,
        funding=funding,
    )
    install_default_jobs(
        engine, settings.scheduler.equity_snapshot, settings.scheduler.daily_summary, summary_level
    )
    return engine
