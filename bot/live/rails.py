"""Safety rails checked before any order request leaves the bot (pure).

A strategy bug, a corrupted price or a runaway loop must not become a large order on a real
account. Every leg is checked against hard limits from the config before it is sent: the
notional of one order, the notional of the position it would leave, and how many orders went
out in the last minute. A refused leg is recorded as a rejection with the rail's reason and
never reaches the exchange. Reduce-only legs are exempt from the size limits (they can only
shrink exposure, and the kill switch must be able to flatten) but count towards the rate.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from bot.live.legs import Leg

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class RailLimits:
    max_order_notional: float = math.inf  # USDT per order
    max_position_notional: float = math.inf  # USDT per symbol, after the order
    max_orders_per_minute: int = 60

    def __post_init__(self) -> None:
        if not (self.max_order_notional > 0 and self.max_position_notional > 0):
            raise ValueError("notional limits must be positive")
        if self.max_orders_per_minute < 1:
            raise ValueError("max_orders_per_minute must be at least 1")


class Rails:
    """The limits, and the recent sends the rate limit counts."""

    def __init__(self, limits: RailLimits) -> None:
        self.limits = limits
        self._sent: deque[int] = deque()

    def check(self, leg: Leg, price: float, held: float, now_ms: int) -> str | None:
        """Why ``leg`` must not be sent (None: it may), given the symbol's last price and the
        position held; a leg that may go is counted towards the rate."""
        limits = self.limits
        while self._sent and self._sent[0] <= now_ms - MINUTE_MS:
            self._sent.popleft()
        if not leg.reduce_only:
            if not (math.isfinite(price) and price > 0):
                return f"no usable price for {leg.symbol} ({price})"
            notional = abs(leg.qty) * price
            if notional > limits.max_order_notional:
                return (f"order notional {notional:,.2f} USDT above max_order_notional "
                        f"{limits.max_order_notional:,.2f}")  # fmt: skip
            after = abs(held + leg.qty) * price
            if after > limits.max_position_notional:
                return (f"position notional {after:,.2f} USDT after the order above "
                        f"max_position_notional {limits.max_position_notional:,.2f}")  # fmt: skip
        if len(self._sent) >= limits.max_orders_per_minute and not leg.reduce_only:
            return f"{len(self._sent)} orders in the last minute: max_orders_per_minute reached"
        self._sent.append(now_ms)
        return None
