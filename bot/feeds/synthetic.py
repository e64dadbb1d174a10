"""Seeded synthetic bars: for unit tests, the benchmark and machines without the real data.

Prices follow correlated geometric random walks; each bar opens at the previous close (as a
continuous market does), so fill-at-next-open and fill-at-close conventions give the same price
and engines with either convention can be compared on it.
"""

from __future__ import annotations

import numpy as np

from bot.core.events import CLOSE, FIELDS, HIGH, LOW, OPEN, VOLUME, Panel
from bot.core.timeutil import interval_ms

DEFAULT_START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def synthetic_panel(
    symbols: tuple[str, ...],
    interval: str,
    bars: int,
    seed: int = 7,
    start_ms: int = DEFAULT_START_MS,
    volatility: float = 0.001,
    drift: float = 0.0,
    correlation: float = 0.5,
    start_price: float = 100.0,
) -> Panel:
    """``bars`` consecutive bars of each symbol, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    width = len(symbols)
    common = rng.standard_normal(bars)[:, None]
    own = rng.standard_normal((bars, width))
    shocks = np.sqrt(correlation) * common + np.sqrt(1.0 - correlation) * own
    log_returns = drift + volatility * shocks
    close = start_price * np.exp(np.cumsum(log_returns, axis=0))
    open_ = np.vstack([np.full((1, width), start_price), close[:-1]])
    wiggle = np.abs(rng.standard_normal((bars, width, 2))) * volatility * 0.5
    values = np.empty((bars, width, len(FIELDS)))
    values[:, :, OPEN] = open_
    values[:, :, CLOSE] = close
    values[:, :, HIGH] = np.maximum(open_, close) * (1.0 + wiggle[:, :, 0])
    values[:, :, LOW] = np.minimum(open_, close) * (1.0 - wiggle[:, :, 1])
    values[:, :, VOLUME] = rng.gamma(2.0, 500.0, (bars, width))
    step = interval_ms(interval)
    starts = start_ms - start_ms % step + step * np.arange(bars, dtype=np.int64)
    return Panel(symbols, step, starts, values, np.ones((bars, width), dtype=bool))
