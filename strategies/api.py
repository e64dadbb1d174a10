"""The strategy API: everything a strategy author needs, and nothing else.

A strategy declares what it trades and how much history it needs, and at the close of each bar
returns **target weights**: signed fractions of equity per symbol (negative = short, if the
run allows shorts), or ``None`` to leave the portfolio as it is. A NaN weight for one symbol
keeps the strategy's previous target for it (use it when the strategy has no opinion yet). The
engine clips the weights (risk), turns them into orders (portfolio) and fills those at the next
bar's open.

Two ways to write one:

* :class:`Strategy` — implement ``on_bar(ctx)``. Simple, sees the portfolio, runs once per bar.
* :class:`VectorStrategy` — implement ``on_bars(ctx)`` returning a ``[rows, symbols]`` array of
  weights for a whole block of bars (NaN rows = no decision). The engine uses it to replay years
  in seconds, and calls the *same* function with a one-row block live, so backtest and paper
  trading cannot disagree. Its decisions must not depend on the portfolio.

``ctx.window(n)`` / ``ctx.history(n)`` give ``[symbols, bars, fields]`` views of closed bars
only; the forming bar is never visible. ``ctx.start_row`` is the first row at which the run
asks the strategy to decide (after its warm-up, and after history the run was primed with): a
strategy that invests "at the start" does so there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from bot.core.buffer import Window
from bot.core.context import BatchContext, StepContext, StrategyHalt, WeightsLike
from bot.core.portfolio import PortfolioView
from bot.core.timeutil import normalize_interval

__all__ = [
    "BatchContext",
    "PortfolioView",
    "StepContext",
    "Strategy",
    "StrategyHalt",
    "VectorStrategy",
    "WeightsLike",
    "Window",
]


class Strategy(ABC):
    """Base class of every strategy. Subclasses set ``name`` and implement :meth:`on_bar`."""

    #: Name used in config, on the command line and in the store.
    name: ClassVar[str] = "strategy"
    #: Bump when the decision logic changes; recorded with every decision.
    version: ClassVar[str] = "1"
    #: Set by model-backed strategies to the checkpoint they decide with.
    model_version: str | None = None
    #: Set to stop for good at one decision (flat there, asked nothing after): see StrategyHalt.
    halt: StrategyHalt | None = None

    def __init__(self, symbols: Sequence[str], interval: str = "1h") -> None:
        if not symbols:
            raise ValueError(f"{self.name}: at least one symbol is required")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"{self.name}: duplicate symbols in {list(symbols)}")
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.interval: str = normalize_interval(interval)
        #: Bars of the base interval each decision looks at.
        self.lookback: int = 1
        #: Bars to see before the first decision (at least ``lookback``).
        self.warmup: int = 0
        #: Higher intervals the strategy reads, with the bars of each it needs.
        self.extra_intervals: Mapping[str, int] = {}

    @abstractmethod
    def on_bar(self, ctx: StepContext) -> WeightsLike | None:
        """Target weights at the close of the bar ``ctx.bar_start`` (or None: no change)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.symbols)} @ {self.interval})"


class VectorStrategy(Strategy):
    """A strategy defined once over blocks of rows; ``on_bar`` is that with one row."""

    @abstractmethod
    def on_bars(self, ctx: BatchContext) -> np.ndarray | None:
        """``[len(ctx), len(symbols)]`` weights; a NaN row means no decision at that row.

        Row ``i`` may only use bars up to ``ctx.history(n).ends[i]`` (inclusive).
        """

    def on_bar(self, ctx: StepContext) -> WeightsLike | None:
        weights = self.on_bars(ctx.as_batch())
        if weights is None:
            return None
        row = np.asarray(weights, dtype=float)[0]
        return None if np.isnan(row).all() else row
