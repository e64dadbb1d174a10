"""What a strategy sees when it decides, and the shape the engine expects a strategy to have.

``StepContext`` is handed to ``on_bar`` at the close of each bar: windows of closed bars only,
the stale mask, a read-only portfolio view and the clock. ``BatchContext`` is handed to the
optional ``on_bars`` with a whole replay block at once; its histories carry, for every decision
row, the index of the last bar visible at that row, so a vectorised strategy can be exactly as
causal as the per-bar one (tests hold the two equal for every shipped strategy).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bot.core.buffer import FeatureBuffer, Window
from bot.core.clock import Clock
from bot.core.portfolio import PortfolioView

WeightsLike = Mapping[str, float] | Sequence[float] | np.ndarray


@runtime_checkable
class StrategyLike(Protocol):
    """The engine's view of a strategy (see ``strategies.api.Strategy`` for the real base)."""

    name: str
    version: str
    symbols: tuple[str, ...]
    interval: str
    lookback: int
    warmup: int
    extra_intervals: Mapping[str, int]

    def on_bar(self, ctx: StepContext) -> WeightsLike | None: ...


class StrategyError(RuntimeError):
    """A strategy returned something the engine cannot use."""


def _select(window: Window, columns: np.ndarray | None) -> Window:
    if columns is None:
        return window
    return Window(window.values[columns], window.present[columns], window.starts, window.ends)


class StepContext:
    """Everything a strategy may look at when deciding at the close of one bar."""

    __slots__ = ("_buffer", "_columns", "_portfolio", "bar_start", "clock", "row", "stale",
                 "start_row", "symbols", "time")  # fmt: skip

    def __init__(
        self,
        buffer: FeatureBuffer,
        symbols: tuple[str, ...],
        columns: np.ndarray | None,
        row: int,
        bar_start: int,
        time: int,
        stale: np.ndarray,
        portfolio: Callable[[], PortfolioView],
        clock: Clock,
        start_row: int,
    ) -> None:
        self._buffer = buffer
        self._columns = columns
        self._portfolio = portfolio
        self.symbols = symbols
        self.row = row
        self.start_row = start_row  # the first row this run asks the strategy about
        self.bar_start = bar_start
        self.time = time  # the decision time: close of the bar that starts at bar_start
        self.stale = stale
        self.clock = clock

    def window(self, length: int, interval: str | None = None) -> Window:
        """The last ``length`` closed bars of ``interval`` (default: the base interval);
        fewer at the very start of the data."""
        return _select(self._buffer.window(length, interval, self.row), self._columns)

    @property
    def portfolio(self) -> PortfolioView:
        return self._portfolio()

    def as_batch(self) -> BatchContext:
        """This step as a one-row block, so a vectorised strategy decides live with the very
        code it runs in a replay."""
        return BatchContext(
            self._buffer,
            self.symbols,
            self._columns,
            self.row,
            np.array([self.bar_start], dtype=np.int64),
            np.array([self.time], dtype=np.int64),
            self.stale[None, :],
            self.start_row,
        )


class BatchContext:
    """A block of consecutive decision rows for a vectorised strategy (``on_bars``)."""

    __slots__ = ("_buffer", "_columns", "first_row", "last_row", "stale", "start_row", "starts",
                 "symbols", "times")  # fmt: skip

    def __init__(
        self,
        buffer: FeatureBuffer,
        symbols: tuple[str, ...],
        columns: np.ndarray | None,
        first_row: int,
        starts: np.ndarray,
        times: np.ndarray,
        stale: np.ndarray,
        start_row: int,
    ) -> None:
        self._buffer = buffer
        self._columns = columns
        self.symbols = symbols
        self.start_row = start_row  # first row of the run at which the strategy decides
        self.first_row = first_row
        self.last_row = first_row + len(starts) - 1
        self.starts = starts
        self.times = times  # decision times (bar closes), one per row
        self.stale = stale  # [rows, symbols]

    def __len__(self) -> int:
        return len(self.starts)

    def history(self, length: int, interval: str | None = None) -> Window:
        """Bars such that row ``i`` may use ``values[:, ends[i]-length+1 : ends[i]+1]``."""
        window = self._buffer.history(length, self.first_row, self.last_row, interval)
        return _select(window, self._columns)


@dataclass(frozen=True)
class JobContext:
    """What a strategy's scheduled job sees: its fire time and the closed bars up to it."""

    time: int
    symbols: tuple[str, ...]
    _window: Callable[[int, str | None], Window]

    def window(self, length: int, interval: str | None = None) -> Window:
        """The last ``length`` closed bars of ``interval`` as of the fire time."""
        return self._window(length, interval)


@dataclass(frozen=True)
class StrategyJob:
    """A job a strategy asks the engine to schedule on its clock (e.g. retraining a model).
    ``trigger`` is a schedule (``"every 720h"``, ``"cron 0 0 * * 1"``); ``affects_decisions``
    tells the engine that decisions after the job may differ from those prepared before it."""

    name: str
    trigger: str
    run: Callable[[JobContext], None]
    affects_decisions: bool = True


@dataclass(frozen=True)
class StrategyHalt:
    """A strategy's request to stop for good at its decision of ``time`` (a bar close): the
    engine replaces that decision with zero weights, trades them at once, asks the strategy
    nothing more, logs ``reason`` and records an event of ``kind`` (with ``detail``).

    A strategy sets it as its ``halt`` attribute no later than when it returns that decision,
    from state its decisions rebuild (a replay of the run halts it at the same bar again). A
    vectorised strategy may set it for a row in the middle of a block: rows after it are
    ignored, exactly as a live run never asks for them."""

    time: int
    kind: str
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def halt_at(strategy: StrategyLike, time: int) -> StrategyHalt | None:
    """The strategy's halt if it falls on the decision at ``time``."""
    halt = getattr(strategy, "halt", None)
    return halt if halt is not None and halt.time == time else None


def weights_vector(raw: Any, symbols: tuple[str, ...], strategy: str) -> np.ndarray:
    """Turn what ``on_bar`` returned (mapping or sequence) into a float vector over ``symbols``."""
    if isinstance(raw, Mapping):
        unknown = set(raw) - set(symbols)
        if unknown:
            raise StrategyError(f"{strategy} returned weights for undeclared {sorted(unknown)}")
        vector = np.array([float(raw.get(s, 0.0)) for s in symbols])
    else:
        vector = np.asarray(raw, dtype=float).reshape(-1)
        if vector.shape != (len(symbols),):
            raise StrategyError(
                f"{strategy} returned {vector.shape[0]} weights for {len(symbols)} symbols"
            )
    if np.isinf(vector).any():
        raise StrategyError(f"{strategy} returned infinite weights {vector.tolist()}")
    return vector  # NaN entries mean "keep my previous target for this symbol"


def warm_rows(strategy: StrategyLike) -> int:
    """Rows a strategy must have seen before it first decides."""
    return max(1, int(strategy.warmup), int(strategy.lookback))
