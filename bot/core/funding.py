"""Funding rates of perpetuals, applied to the positions held at each funding time.

Bybit settles funding every 8 hours (00:00, 08:00, 16:00 UTC). A funding at time ``f`` is paid
on the position held at ``f``: a fill at the open of a bar starting exactly at ``f`` comes after
the settlement. The position is valued at the open of the bar containing ``f`` — exact when
``f`` is a bar start (any interval up to 8h) and the last price known at ``f`` otherwise.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class FundingEvent(NamedTuple):
    row: int  # row of the block whose bar contains the funding time
    symbol_index: int
    time: int
    rate: float


DEFAULT_FUNDING_INTERVAL_MS = 8 * 3_600_000


class FundingRates:
    """Funding rate history per symbol: ``{symbol: (times_ms, rates)}``.

    ``intervals`` gives each symbol's settlement period (Bybit's ``fundingInterval``; 8 h unless
    said otherwise); it tells a live run when a rate may still be on its way.
    """

    def __init__(
        self,
        series: dict[str, tuple[np.ndarray, np.ndarray]],
        intervals: dict[str, int] | None = None,
    ) -> None:
        self._series = {
            symbol: (np.asarray(t, dtype=np.int64), np.asarray(r, dtype=float))
            for symbol, (t, r) in series.items()
        }
        self._intervals = dict(intervals or {})

    def has(self, symbol: str, time: int) -> bool:
        """Whether the rate settled at ``time`` is known."""
        series = self._series.get(symbol)
        if series is None:
            return False
        k = int(np.searchsorted(series[0], time))
        return k < len(series[0]) and int(series[0][k]) == time

    def settlements(self, symbol: str, start: int, end: int) -> list[int]:
        """Grid instants in ``[start, end)`` at which the symbol's funding may settle."""
        period = self._intervals.get(symbol, DEFAULT_FUNDING_INTERVAL_MS)
        first = -(-start // period) * period
        return list(range(first, end, period))

    def settles_at(self, symbol: str, time: int) -> bool:
        """Whether ``time`` is on the symbol's funding grid (a settlement may happen then)."""
        return time % self._intervals.get(symbol, DEFAULT_FUNDING_INTERVAL_MS) == 0

    def __bool__(self) -> bool:
        return bool(self._series)

    def events(
        self, symbols: tuple[str, ...], starts: np.ndarray, interval_ms: int
    ) -> list[FundingEvent]:
        """Every funding time that falls inside one of the bars starting at ``starts``."""
        if not len(starts):
            return []
        lo, hi = int(starts[0]), int(starts[-1]) + interval_ms
        found: list[FundingEvent] = []
        for s, symbol in enumerate(symbols):
            if symbol not in self._series:
                continue
            times, rates = self._series[symbol]
            a, b = np.searchsorted(times, [lo, hi], side="left")
            for k in range(a, b):
                f = int(times[k])
                row = int(np.searchsorted(starts, f, side="right")) - 1
                if row >= 0 and f < int(starts[row]) + interval_ms:
                    found.append(FundingEvent(row, s, f, float(rates[k])))
        found.sort()
        return found
