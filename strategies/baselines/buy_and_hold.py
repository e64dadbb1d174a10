"""Buy and hold: invest once at the first decision, never trade again.

Symbols without a bar at that moment (not listed yet, data gap) get nothing: start the run
when all of them trade, or pass explicit ``weights``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bot.core.context import BatchContext
from strategies.api import VectorStrategy


class BuyAndHold(VectorStrategy):
    name = "buy_and_hold"
    version = "1"

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str = "1h",
        weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(symbols, interval)
        if weights is None:
            self.target = np.full(len(self.symbols), 1.0 / len(self.symbols))
        else:
            unknown = set(weights) - set(self.symbols)
            if unknown:
                raise ValueError(f"weights for symbols not traded: {sorted(unknown)}")
            self.target = np.array([float(weights.get(s, 0.0)) for s in self.symbols])

    def on_bars(self, ctx: BatchContext) -> np.ndarray:
        weights = np.full((len(ctx), len(self.symbols)), np.nan)
        rows = ctx.first_row + np.arange(len(ctx))
        first = rows == ctx.start_row
        weights[first] = np.where(ctx.stale[first], 0.0, self.target)
        return weights
