"""Trend filter: hold, in equal shares, the symbols trading above their moving average.

This is the smallest complete strategy; replace the logic with yours. It only uses the public
API in ``strategies.api``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.api import StepContext, Strategy


class AboveAverage(Strategy):
    name = "my_trend"  # shown in reports and stored with every decision
    version = "1"  # bump when you change the logic

    def __init__(self, symbols: Sequence[str], interval: str = "1h", length: int = 24) -> None:
        super().__init__(symbols, interval)
        if length < 2:
            raise ValueError("length must be >= 2")
        self.length = length
        self.lookback = length  # bars of history each decision reads
        self.warmup = length  # bars to see before the first decision

    def on_bar(self, ctx: StepContext) -> dict[str, float] | None:
        """Called at the close of every bar; return target weights or None to do nothing."""
        close = ctx.window(self.length).close  # [symbols, bars] of closed bars only
        average = np.nanmean(close, axis=1)
        above = (close[:, -1] > average) & ~ctx.stale  # ignore symbols without a fresh bar
        chosen = [s for s, keep in zip(self.symbols, above, strict=True) if keep]
        current = ctx.portfolio.weights  # what we hold now, as fractions of equity
        target = {s: (1.0 / len(chosen) if s in chosen else 0.0) for s in self.symbols}
        if np.allclose([target[s] for s in self.symbols], current, atol=0.02):
            return None  # close enough: do not churn fees
        return target
