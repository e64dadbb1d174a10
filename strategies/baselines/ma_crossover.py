"""Moving-average crossover: long while the fast SMA is above the slow one.

Trades only when the fast average crosses the slow one (so it enters at the first cross after
warm-up, like the classic backtrader and NautilusTrader examples); each symbol gets ``1/N`` of
``gross``, flat (or short with ``allow_short``) below.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.core.context import BatchContext
from strategies.api import VectorStrategy
from strategies.indicators import sma


class MovingAverageCrossover(VectorStrategy):
    name = "ma_crossover"
    version = "1"

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str = "1h",
        fast: int = 10,
        slow: int = 30,
        allow_short: bool = False,
        gross: float = 1.0,
    ) -> None:
        super().__init__(symbols, interval)
        if not 1 <= fast < slow:
            raise ValueError("need 1 <= fast < slow")
        self.fast, self.slow = int(fast), int(slow)
        self.allow_short = bool(allow_short)
        self.gross = float(gross)
        self.lookback = self.slow + 1  # the previous bar's averages tell whether we crossed

    def on_bars(self, ctx: BatchContext) -> np.ndarray:
        history = ctx.history(self.lookback)
        close, ends = history.close, history.ends
        now = sma(close, ends, self.fast) - sma(close, ends, self.slow)
        before = sma(close, ends - 1, self.fast) - sma(close, ends - 1, self.slow)
        known = np.isfinite(now) & np.isfinite(before)
        above = now > 0
        crossed = known & (above != (before > 0))
        share = self.gross / len(self.symbols)
        low = -share if self.allow_short else 0.0
        weights = np.where(known, np.where(above, share, low), np.nan).T
        weights[~crossed.any(axis=0)] = np.nan
        return weights
