"""A fixed-capacity ring of aligned rows whose windows are zero-copy views.

Each row is written twice, at ``i % capacity`` and ``i % capacity + capacity``. Any run of up
to ``capacity`` consecutive rows is then one contiguous slice of the backing array, so a
``[symbols, lookback, fields]`` window is a view, never a copy, and appending is O(fields) per
symbol no matter how long the engine runs.
"""

from __future__ import annotations

import numpy as np


class RingPanel:
    """Rows of ``[symbols, fields]`` values with timestamps and a presence mask."""

    def __init__(self, n_symbols: int, capacity: int, n_fields: int) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be positive")
        self.capacity = capacity
        self._values = np.full((n_symbols, 2 * capacity, n_fields), np.nan)
        self._present = np.zeros((n_symbols, 2 * capacity), dtype=bool)
        self._times = np.zeros(2 * capacity, dtype=np.int64)
        self._tags = np.zeros(2 * capacity, dtype=np.int64)
        self.count = 0  # rows ever appended; row g lives at g % capacity (and + capacity)

    def append(
        self,
        times: np.ndarray,
        values: np.ndarray,
        present: np.ndarray,
        tags: np.ndarray | None = None,
    ) -> None:
        """Append ``n`` rows: ``values`` is ``[n, symbols, fields]``, ``present`` ``[n, symbols]``.

        ``tags`` is an optional int per row kept beside it (the aggregated rings store the base
        row at which each higher-interval bar became visible).
        """
        n = len(times)
        if n == 0:
            return
        keep = min(n, self.capacity)  # older rows would be overwritten anyway
        first = self.count + n - keep
        pos = np.arange(first, first + keep) % self.capacity
        both = np.concatenate([pos, pos + self.capacity])
        rows = values[n - keep :].transpose(1, 0, 2)
        self._values[:, both, :] = np.concatenate([rows, rows], axis=1)
        mask = present[n - keep :].T
        self._present[:, both] = np.concatenate([mask, mask], axis=1)
        stamps = times[n - keep :]
        self._times[both] = np.concatenate([stamps, stamps])
        if tags is not None:
            tag = tags[n - keep :]
            self._tags[both] = np.concatenate([tag, tag])
        self.count += n

    def _span(self, length: int, end: int | None) -> tuple[int, int]:
        last = self.count - 1 if end is None else end
        if last >= self.count:
            raise IndexError(f"row {last} has not been appended yet (count {self.count})")
        length = min(length, last + 1)
        if length > self.capacity or last - length + 1 < self.count - self.capacity:
            raise IndexError(
                f"window of {length} rows ending at row {last} is no longer in a ring of "
                f"capacity {self.capacity}; raise the buffer capacity"
            )
        hi = last % self.capacity + self.capacity + 1
        return hi - length, hi

    def values(self, length: int, end: int | None = None) -> np.ndarray:
        """``[symbols, length, fields]`` view of the ``length`` rows ending at row ``end``."""
        lo, hi = self._span(length, end)
        view = self._values[:, lo:hi, :]
        view.flags.writeable = False
        return view

    def present(self, length: int, end: int | None = None) -> np.ndarray:
        lo, hi = self._span(length, end)
        view = self._present[:, lo:hi]
        view.flags.writeable = False
        return view

    def times(self, length: int, end: int | None = None) -> np.ndarray:
        lo, hi = self._span(length, end)
        view = self._times[lo:hi]
        view.flags.writeable = False
        return view

    def tags(self, length: int, end: int | None = None) -> np.ndarray:
        lo, hi = self._span(length, end)
        view = self._tags[lo:hi]
        view.flags.writeable = False
        return view

    def patch(self, row: int, symbol_index: int, values: np.ndarray) -> bool:
        """Fill in a late bar for one symbol at global ``row``; False if it left the ring."""
        if not self.count - self.capacity <= row < self.count:
            return False
        pos = row % self.capacity
        for p in (pos, pos + self.capacity):
            self._values[symbol_index, p, :] = values
            self._present[symbol_index, p] = True
        return True

    def find_row(self, time: int) -> int | None:
        """Global index of the row stamped ``time`` if it is still in the ring."""
        length = min(self.count, self.capacity)
        if length == 0:
            return None
        stamps = self.times(length)
        k = int(np.searchsorted(stamps, time))
        if k < length and stamps[k] == time:
            return self.count - length + k
        return None
