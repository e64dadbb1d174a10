"""Instrument trading rules: quantity step, minimum quantity and minimum notional.

Quantities are rounded *toward zero* to a whole number of ``qty_step``s (an order never exceeds
what the weights asked for) and then to the step's decimals, so ``0.1 + 0.2`` style float dust
never reaches an exchange or the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal


def step_decimals(step: float) -> int:
    """Decimal places of a step such as 0.001 (→ 3) or 1 (→ 0)."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    symbol: str
    qty_step: float
    min_order_qty: float
    min_notional: float = 0.0
    tick_size: float = 0.0
    max_order_qty: float = math.inf
    max_market_qty: float = math.inf  # larger market orders go out in legs (live trading)
    decimals: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.qty_step <= 0:
            raise ValueError(f"{self.symbol}: qty_step must be positive")
        if self.min_order_qty < 0 or self.min_notional < 0:
            raise ValueError(f"{self.symbol}: minimums cannot be negative")
        object.__setattr__(self, "decimals", step_decimals(self.qty_step))

    def round_qty(self, qty: float) -> float:
        """Round a signed quantity toward zero to a multiple of ``qty_step``."""
        steps = math.floor(abs(qty) / self.qty_step + 1e-9)
        return math.copysign(round(steps * self.qty_step, self.decimals), qty) if steps else 0.0

    def tradable(self, qty: float, price: float) -> bool:
        """Whether an order of ``qty`` at ``price`` meets the minimum quantity and notional."""
        size = abs(qty)
        return size > 0 and size >= self.min_order_qty and size * price >= self.min_notional
