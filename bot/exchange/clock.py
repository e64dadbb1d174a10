"""Two clocks, kept apart: the market's (historical, fast) and the wall's (now, real).

While it runs, market time moves at ``speed`` market seconds per wall second, in epoch ms.
Everything a Bybit message calls a time (``ts``, ``time``, ``/v5/market/time``, kline
``timestamp``) is market time; what a client waits for on its own clock
(``X-Bapi-Limit-Reset-Timestamp``) is wall time.

Market time stands still while the clock is *held* (not started yet: it waits for its first
subscriber, so a client that takes long to start misses nothing, however busy the machine) or
*paused* (by an operator or a test). Both are independent: starting a paused clock leaves it
paused, and it runs once neither holds it, from the market time where it stood.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

WallClock = Callable[[], float]  # seconds since the epoch, like time.time


class MarketClock:
    """Market time driven by an injectable wall clock (tests pass a fake one); starts held."""

    def __init__(self, start_ms: int, speed: float, wall_clock: WallClock = time.time) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, not {speed!r}")
        self.start_ms = start_ms
        self.speed = speed
        self.wall_clock = wall_clock
        self.held = True
        self.paused = False
        self._stood_at = start_ms  # market time when the clock last stopped (or never ran)
        self._wall_since = wall_clock()  # wall seconds when it last began running

    @property
    def running(self) -> bool:
        return not (self.held or self.paused)

    def start(self) -> None:
        """Release the hold (no-op when already started)."""
        self._set(held=False, paused=self.paused)

    def pause(self) -> None:
        """Freeze market time where it is now."""
        self._set(held=self.held, paused=True)

    def resume(self) -> None:
        """Undo :meth:`pause`: market time continues from where it stood."""
        self._set(held=self.held, paused=False)

    def _set(self, held: bool, paused: bool) -> None:
        """Re-base market time only when the clock stops or begins running."""
        now, was_running = self.now(), self.running
        self.held, self.paused = held, paused
        if self.running != was_running:
            self._stood_at, self._wall_since = now, self.wall_clock()

    def now(self) -> int:
        """Market time, epoch ms."""
        if not self.running:
            return self._stood_at
        elapsed = self.wall_clock() - self._wall_since
        return self._stood_at + math.floor(elapsed * 1000.0 * self.speed)

    def wall_ms(self) -> int:
        """Wall time, epoch ms."""
        return math.floor(self.wall_clock() * 1000.0)

    def wall_seconds_until(self, market_ms: int) -> float:
        """Wall seconds until the market reaches ``market_ms`` (<= 0: reached; infinite while
        market time stands still short of it)."""
        if not self.running:
            return 0.0 if market_ms <= self._stood_at else math.inf
        due = self._wall_since + (market_ms - self._stood_at) / (1000.0 * self.speed)
        return due - self.wall_clock()
