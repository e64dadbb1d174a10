"""Cross-sectional momentum: hold the recent winners, optionally short the losers.

At each rebalance, rank symbols by their return over ``lookback`` bars and go long the ``top``
best (equal weights, ``gross`` in total); with ``long_short`` also short the ``top`` worst, half
the gross on each side. Symbols without a current bar or enough history are not ranked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.core.context import BatchContext
from strategies.api import VectorStrategy
from strategies.baselines.rebalance import check_period, rebalance_rows
from strategies.indicators import pct_change


class CrossSectionalMomentum(VectorStrategy):
    name = "momentum"
    version = "1"

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str = "1h",
        lookback: int = 168,
        top: int = 2,
        rebalance: str = "1d",
        long_short: bool = False,
        gross: float = 1.0,
    ) -> None:
        super().__init__(symbols, interval)
        if lookback < 1:
            raise ValueError("lookback must be >= 1")
        if not 1 <= top <= len(self.symbols):
            raise ValueError(f"top must be between 1 and {len(self.symbols)}")
        if long_short and 2 * top > len(self.symbols):
            raise ValueError("long_short needs at least 2 × top symbols")
        self.lookback = int(lookback) + 1
        self.period = int(lookback)
        self.top = int(top)
        self.rebalance = check_period(rebalance, self.interval)
        self.long_short = bool(long_short)
        self.gross = float(gross)

    def on_bars(self, ctx: BatchContext) -> np.ndarray:
        history = ctx.history(self.lookback)
        scores = pct_change(history.close, history.ends, self.period).T  # [rows, symbols]
        scores[ctx.stale] = np.nan
        decide = rebalance_rows(ctx, self.rebalance, self.interval)
        weights = np.full(scores.shape, np.nan)
        for i in np.flatnonzero(decide):
            weights[i] = self._rank(scores[i])
        return weights

    def _rank(self, score: np.ndarray) -> np.ndarray:
        weights = np.zeros(len(score))
        ranked = [s for s in np.argsort(-score, kind="stable") if np.isfinite(score[s])]
        if len(ranked) < self.top * (2 if self.long_short else 1):
            return weights  # not enough symbols to rank: stay flat
        side = self.gross / 2 if self.long_short else self.gross
        weights[ranked[: self.top]] = side / self.top
        if self.long_short:
            weights[ranked[-self.top :]] = -side / self.top
        return weights
