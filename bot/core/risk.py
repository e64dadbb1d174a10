"""Risk: what a strategy may ask for, and when the account stops trading.

Weights are clipped per symbol and scaled down to the gross-leverage cap; shorts are removed
unless allowed. The kill switch watches drawdown from the equity peak at every close: once
breached, the engine flattens everything at the next open, halts decisions and records why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_weight: float = 1.0
    max_gross: float = 1.0
    max_drawdown: float | None = None
    allow_short: bool = False

    def __post_init__(self) -> None:
        if self.max_weight <= 0 or self.max_gross <= 0:
            raise ValueError("max_weight and max_gross must be positive")
        if self.max_drawdown is not None and not 0 < self.max_drawdown <= 1:
            raise ValueError("max_drawdown must be in (0, 1]")


class RiskManager:
    def __init__(self, limits: RiskLimits, initial_equity: float) -> None:
        self.limits = limits
        self.peak = float(initial_equity)
        self.halted = False
        self.halt_reason: str | None = None

    def clip(self, weights: Sequence[float]) -> list[float]:
        """Apply the short rule, the per-symbol cap and the gross cap to a weight vector."""
        cap = self.limits.max_weight
        low = -cap if self.limits.allow_short else 0.0
        clipped = [0.0 if math.isnan(w) else min(max(w, low), cap) for w in weights]
        gross = sum(abs(w) for w in clipped)
        if gross > self.limits.max_gross:
            scale = self.limits.max_gross / gross
            clipped = [w * scale for w in clipped]
        return clipped

    def first_breach(self, equity: np.ndarray) -> int | None:
        """Index of the first close whose drawdown breaches the limit; updates the peak up to
        (not including) it, or over all rows when there is none."""
        if len(equity) == 0:
            return None
        if self.limits.max_drawdown is None or self.halted:  # only the peak to keep up
            self.peak = max(self.peak, float(equity.max()))
            return None
        peaks = np.maximum.accumulate(np.maximum(equity, self.peak))
        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = 1.0 - equity / peaks
        hits = np.flatnonzero(~(drawdown < self.limits.max_drawdown))
        if len(hits):
            first = int(hits[0])
            self.peak = float(peaks[first])
            return first
        self.peak = float(peaks[-1])
        return None

    def breached(self, equity: float) -> bool:
        """:meth:`first_breach` for a single close."""
        self.peak = max(self.peak, equity)
        limit = self.limits.max_drawdown
        if limit is None or self.halted:
            return False
        return not (1.0 - equity / self.peak < limit)

    def halt(self, reason: str) -> None:
        self.halted = True
        self.halt_reason = reason

    def drawdown(self, equity: float) -> float:
        return 1.0 - equity / self.peak if self.peak > 0 else 0.0
