"""The jobs every run schedules on the engine clock: equity snapshots and a daily summary.

They read the engine's state as of their fire time (see :mod:`bot.core.scheduler`), so a
replay records the same snapshots a live daemon would have recorded at those instants.
"""

from __future__ import annotations

import logging

from bot.core.engine import Engine
from bot.core.events import RunEvent
from bot.core.timeutil import DAY_MS, iso

log = logging.getLogger("bot.jobs")


def install_default_jobs(
    engine: Engine, equity_snapshot: str, daily_summary: str, summary_level: int = logging.INFO
) -> None:
    """Schedule the snapshot and summary jobs ('' disables one)."""
    if equity_snapshot:
        engine.scheduler.add_job("equity_snapshot", equity_snapshot, _snapshot(engine))
    if daily_summary:
        engine.scheduler.add_job("daily_summary", daily_summary, _summary(engine, summary_level))


def _snapshot(engine: Engine):
    def snapshot(fire_time: int) -> None:
        mark = engine.mark  # as of the last close at or before the fire time
        engine.journal.record_equity(fire_time, mark.equity, mark.cash, mark.gross)

    return snapshot


def _summary(engine: Engine, level: int):
    previous: dict[str, float] = {}

    def summary(fire_time: int) -> None:
        portfolio = engine.portfolio
        equity = portfolio.equity
        start_equity = previous.get("equity", portfolio.initial_cash)
        change = equity / start_equity - 1.0 if start_equity else 0.0
        positions = {portfolio.symbols[s]: float(portfolio.qty[s]) for s in portfolio.held}
        detail = {
            "equity": equity,
            "cash": portfolio.cash,
            "change": change,
            "drawdown": engine.risk.drawdown(equity),
            "positions": positions,
            "fills": engine.stats.fills,
            "halted": engine.risk.halted,
        }
        engine.journal.record_event(RunEvent(fire_time, "daily_summary", detail))
        whole_day = "time" in previous and fire_time - previous["time"] == DAY_MS
        log.log(
            level,
            "summary %s: equity %.2f (%+.2f%% over %s) drawdown %.2f%% positions %s",
            iso(fire_time),
            equity,
            100 * change,
            "the day" if whole_day else "the period",
            100 * engine.risk.drawdown(equity),
            positions or "flat",
        )
        previous.update(equity=equity, time=fire_time)

    return summary
