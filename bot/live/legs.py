"""How one engine order becomes the exchange orders that carry it out (pure).

The engine asks for a signed quantity change per symbol. On an exchange that becomes:

* a **reduce-only** order for the part that closes the held position, so that a late fill or a
  position changed under us (liquidation, ADL, a manual trade) can never turn a close into a
  new position in the other direction;
* an ordinary order for the part that opens (or adds to) a position — after the close when the
  order flips the sign;
* each of those split into legs no larger than the venue's market-order maximum
  (``maxMktOrderQty``), rounded down to the quantity step.

Every leg gets its own deterministic ``orderLinkId`` from (run, decision, symbol, leg, attempt),
so a restart that plans the same order again finds the same ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.core.events import Order
from bot.core.ids import order_link_id
from bot.core.instruments import InstrumentSpec


@dataclass(frozen=True, slots=True)
class Leg:
    """One exchange order: ``qty`` signed (positive buys)."""

    link_id: str
    symbol: str
    qty: float
    reduce_only: bool
    leg: int
    order: Order  # the engine order it carries out (part of)

    @property
    def side(self) -> str:
        return "Buy" if self.qty > 0 else "Sell"


def _chunks(qty: float, spec: InstrumentSpec, max_qty: float) -> list[float]:
    """``qty`` (signed) in pieces of at most ``max_qty``, each a multiple of the step."""
    size = abs(spec.round_qty(qty))
    if size == 0:
        return []
    cap = abs(spec.round_qty(max_qty)) if math.isfinite(max_qty) else size
    if cap <= 0:
        raise ValueError(f"{spec.symbol}: market-order maximum {max_qty} is below one step")
    count = max(1, math.ceil(size / cap - 1e-9))
    pieces = [cap] * (count - 1)
    pieces.append(round(size - cap * (count - 1), spec.decimals))
    return [math.copysign(p, qty) for p in pieces if p > 0]


def plan_legs(
    order: Order, held: float, spec: InstrumentSpec, run_id: str, max_market_qty: float
) -> list[Leg]:
    """The legs that take the position from ``held`` by ``order.qty``."""
    qty = order.qty
    parts: list[tuple[float, bool]] = []
    if held != 0 and (held > 0) != (qty > 0):
        close = -held if abs(qty) >= abs(held) else qty
        parts.append((close, True))
        rest = round(qty - close, spec.decimals)
        if rest != 0:
            parts.append((rest, False))
    else:
        parts.append((qty, False))
    legs: list[Leg] = []
    for part, reduce_only in parts:
        for piece in _chunks(part, spec, max_market_qty):
            number = len(legs)
            link_id = order_link_id(run_id, order.decision_time, order.symbol, order.attempt,
                                    leg=number)  # fmt: skip
            legs.append(Leg(link_id, order.symbol, piece, reduce_only, number, order))
    return legs
