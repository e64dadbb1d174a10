"""The rolling feature buffer: recent bars of every symbol, per interval, as numpy views.

The base interval is what the feed delivers; higher intervals (5m, 15m, 1h, 1d, ...) are
aggregated from it as their bars complete (see :mod:`bot.core.aggregate`). Memory is fixed by
the capacities chosen at start-up: the longest lookback any strategy declared plus one replay
block, so a strategy can be asked for its window as of any row of the block being processed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.core.aggregate import Aggregator
from bot.core.events import CLOSE, FIELDS, Panel
from bot.core.ring import RingPanel
from bot.core.timeutil import interval_ms, normalize_interval


@dataclass(frozen=True, slots=True)
class Window:
    """Bars of all symbols over consecutive steps: ``values[S, L, F]`` (read-only views).

    ``ends`` is only set on batch histories: ``ends[i]`` is the index along ``L`` of the last
    bar visible at decision row ``i`` of the block (``-1`` when none is visible yet).
    """

    values: np.ndarray
    present: np.ndarray
    starts: np.ndarray
    ends: np.ndarray | None = None

    @property
    def close(self) -> np.ndarray:
        """``[S, L]`` closes (NaN where a symbol had no bar)."""
        return self.values[:, :, CLOSE]

    def __len__(self) -> int:
        return len(self.starts)


class FeatureBuffer:
    """Fixed-capacity ring buffers for the base interval and every higher one requested."""

    def __init__(
        self,
        symbols: tuple[str, ...],
        base_interval: str,
        lookbacks: dict[str, int],
        block_rows: int,
    ) -> None:
        self.symbols = symbols
        self.base_interval = normalize_interval(base_interval)
        self.base_ms = interval_ms(self.base_interval)
        width, fields = len(symbols), len(FIELDS)
        wanted = {normalize_interval(k): max(1, v) for k, v in lookbacks.items()}
        base_lookback = wanted.pop(self.base_interval, 1)
        self._rings = {self.base_interval: RingPanel(width, base_lookback + block_rows, fields)}
        self._aggregators: dict[str, Aggregator] = {}
        for name, lookback in sorted(wanted.items(), key=lambda kv: interval_ms(kv[0])):
            ratio = interval_ms(name) // self.base_ms
            self._aggregators[name] = Aggregator(self.base_ms, interval_ms(name))
            self._rings[name] = RingPanel(width, lookback + block_rows // ratio + 2, fields)

    @property
    def intervals(self) -> tuple[str, ...]:
        return tuple(self._rings)

    @property
    def rows(self) -> int:
        """Base rows appended so far; the newest is row ``rows - 1``."""
        return self._rings[self.base_interval].count

    def append(self, panel: Panel) -> None:
        """Append a block of base rows and publish every higher-interval bar they complete."""
        first_row = self.rows
        base = self._rings[self.base_interval]
        base.append(panel.starts, panel.values, panel.present)
        for name, aggregator in self._aggregators.items():
            done = aggregator.push(panel.starts, panel.values, panel.present, first_row)
            self._rings[name].append(done.starts, done.values, done.present, done.visible_at)

    def patch(self, start: int, symbol: str, values: np.ndarray) -> bool:
        """Insert a late (backfilled) base bar; True if its row was still in the buffer."""
        base = self._rings[self.base_interval]
        row = base.find_row(start)
        return row is not None and base.patch(row, self.symbols.index(symbol), values)

    def _ring(self, interval: str | None) -> tuple[str, RingPanel]:
        name = self.base_interval if interval is None else normalize_interval(interval)
        if name not in self._rings:
            raise KeyError(
                f"interval {name} is not buffered; declare it in the strategy's `intervals`"
            )
        return name, self._rings[name]

    def _visible_counts(self, name: str, ring: RingPanel, rows: np.ndarray) -> np.ndarray:
        """How many bars of ``name`` are visible at each base row (global counts)."""
        if name == self.base_interval:
            return rows + 1
        held = min(ring.count, ring.capacity)
        if held == 0:
            return np.zeros(len(rows), dtype=np.int64)
        tags = ring.tags(held)
        return ring.count - held + np.searchsorted(tags, rows, side="right")

    def window(self, length: int, interval: str | None = None, row: int | None = None) -> Window:
        """The last ``length`` bars of ``interval`` visible at base ``row`` (default: newest)."""
        name, ring = self._ring(interval)
        row = self.rows - 1 if row is None else row
        visible = int(self._visible_counts(name, ring, np.array([row]))[0])
        if visible == 0:
            return self._empty()
        end = visible - 1
        return Window(ring.values(length, end), ring.present(length, end), ring.times(length, end))

    def history(self, length: int, first_row: int, last_row: int, interval: str | None = None):
        """Bars covering decision rows ``first_row..last_row``, each seeing ``length`` bars.

        Returns a :class:`Window` whose ``ends[i]`` marks the last bar visible at row
        ``first_row + i``; a batch strategy computes its decision for that row from bars
        ``ends[i] - length + 1 .. ends[i]`` only, which is what makes it causal.
        """
        name, ring = self._ring(interval)
        rows = np.arange(first_row, last_row + 1)
        visible = self._visible_counts(name, ring, rows)
        last_visible = int(visible[-1])
        if last_visible == 0:
            empty = self._empty()
            return Window(empty.values, empty.present, empty.starts, np.full(len(rows), -1))
        first_needed = max(0, int(visible[0]) - length)
        span = last_visible - first_needed
        end = last_visible - 1
        ends = visible - 1 - first_needed
        return Window(ring.values(span, end), ring.present(span, end), ring.times(span, end), ends)

    def _empty(self) -> Window:
        width = len(self.symbols)
        return Window(
            np.zeros((width, 0, len(FIELDS))), np.zeros((width, 0), bool), np.zeros(0, np.int64)
        )
