"""When a periodic strategy rebalances: at its first decision and at each period start."""

from __future__ import annotations

import numpy as np

from bot.core.context import BatchContext
from bot.core.timeutil import interval_ms, normalize_interval
from strategies.indicators import period_starts

EVERY_BAR = "bar"


def check_period(period: str, interval: str) -> str:
    """Validate a rebalance period (``"bar"`` or a whole number of bars such as ``"1w"``)."""
    if period == EVERY_BAR:
        return period
    name = normalize_interval(period)
    if interval_ms(name) % interval_ms(interval):
        raise ValueError(f"rebalance period {period} is not a multiple of the bar {interval}")
    return name


def rebalance_rows(ctx: BatchContext, period: str, interval: str) -> np.ndarray:
    """Rows of the block at which to rebalance: the run's first decision, then each period."""
    rows = ctx.first_row + np.arange(len(ctx))
    start = ctx.start_row
    if period == EVERY_BAR:
        return rows >= start
    return (rows == start) | (period_starts(ctx.times, interval, period) & (rows > start))
