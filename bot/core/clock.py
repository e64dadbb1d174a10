"""What "now" is. Only :class:`LiveClock` reads the wall clock; everything else asks a clock.

In a replay the :class:`SimulatedClock` is driven by the data: the engine moves it to the close
of each bar it processes, so the scheduler and strategies see the same instants they would see
live, however fast the replay runs.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int:
        """Current time in epoch milliseconds (UTC)."""
        ...

    def advance(self, time_ms: int) -> None:
        """Tell the clock the engine has processed everything up to ``time_ms``."""
        ...


class LiveClock:
    """The wall clock. ``advance`` is a no-op: real time moves on its own."""

    def now(self) -> int:
        return time.time_ns() // 1_000_000

    def advance(self, time_ms: int) -> None:
        return None


class SimulatedClock:
    """A clock that only moves when the engine moves it, and never backwards."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now(self) -> int:
        return self._now

    def advance(self, time_ms: int) -> None:
        if time_ms < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {time_ms}")
        self._now = time_ms
