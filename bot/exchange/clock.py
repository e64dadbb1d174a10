"""Two clocks, kept apart: the market's (historical, fast) and the wall's (now, real).

``market_now = start + (wall_now − wall_at_start) × speed``, in epoch ms, with ``speed`` market
seconds per wall second. Everything a Bybit message calls a time (``ts``, ``time``,
``/v5/market/time``, kline ``timestamp``) is market time; what a client waits for on its own
clock (``X-Bapi-Limit-Reset-Timestamp``) is wall time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

WallClock = Callable[[], float]  # seconds since the epoch, like time.time


class MarketClock:
    """Market time driven by an injectable wall clock (tests pass a fake one)."""

    def __init__(self, start_ms: int, speed: float, wall_clock: WallClock = time.time) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, not {speed!r}")
        self.start_ms = start_ms
        self.speed = speed
        self.wall_clock = wall_clock
        self.wall_at_start = wall_clock()

    def anchor(self) -> None:
        """Make market time ``start_ms`` now (called when the server starts serving)."""
        self.wall_at_start = self.wall_clock()

    def now(self) -> int:
        """Market time, epoch ms."""
        elapsed = self.wall_clock() - self.wall_at_start
        return self.start_ms + math.floor(elapsed * 1000.0 * self.speed)

    def wall_ms(self) -> int:
        """Wall time, epoch ms."""
        return math.floor(self.wall_clock() * 1000.0)

    def wall_seconds_until(self, market_ms: int) -> float:
        """Wall seconds until the market reaches ``market_ms`` (<= 0: reached)."""
        due = self.wall_at_start + (market_ms - self.start_ms) / (1000.0 * self.speed)
        return due - self.wall_clock()
