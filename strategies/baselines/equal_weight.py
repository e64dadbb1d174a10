"""Equal weight: the same fraction of equity in every symbol that is trading, rebalanced
periodically (weekly by default, at Monday 00:00 UTC)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.core.context import BatchContext
from strategies.api import VectorStrategy
from strategies.baselines.rebalance import check_period, rebalance_rows


class EqualWeight(VectorStrategy):
    name = "equal_weight"
    version = "1"

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str = "1h",
        rebalance: str = "1w",
        gross: float = 1.0,
    ) -> None:
        super().__init__(symbols, interval)
        self.rebalance = check_period(rebalance, self.interval)
        if gross <= 0:
            raise ValueError("gross must be positive")
        self.gross = float(gross)

    def on_bars(self, ctx: BatchContext) -> np.ndarray:
        decide = rebalance_rows(ctx, self.rebalance, self.interval)
        trading = ~ctx.stale
        count = trading.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            weights = np.where(trading, self.gross / count, 0.0)
        weights[~decide | (count[:, 0] == 0)] = np.nan
        return weights
