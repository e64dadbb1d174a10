"""Exact decimal money for the private side: what the wallet books is what the messages say.

A client that adds up every ``execPnl − execFee`` and funding fee it received must land on
the wallet balance to the last digit, so money is :class:`~decimal.Decimal`, never float:
fees, realised PnL and funding are rounded to 8 decimals once, when they are booked, and the
very same numbers are written into the messages. Quantities and prices keep the places of
their step and tick (``"0.010"``, ``"16493.50"``) as Bybit writes them.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

ZERO = Decimal(0)
#: Money is booked to 8 decimals (Bybit's USDT precision in fees and PnL).
CENT = Decimal("1e-8")


def parse(text: object) -> Decimal | None:
    """A finite decimal from a JSON string (Bybit sends numbers as strings), else None."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def book(value: Decimal) -> Decimal:
    """``value`` rounded (half up) to the 8 decimals money is booked in."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def truncate(value: Decimal, step: Decimal) -> Decimal:
    """``value`` cut down to a whole number of ``step`` (Bybit truncates quantities), written
    with the places of ``step`` (``1`` with step ``0.001`` → ``1.000``)."""
    return ((value / step).to_integral_value(rounding=ROUND_DOWN) * step).quantize(step)


def on_grid(value: Decimal, step: Decimal) -> bool:
    return (value / step) == (value / step).to_integral_value()


def text(value: Decimal) -> str:
    """Shortest positional form: ``Decimal("26.37252750")`` → ``"26.3725275"``, zero → ``"0"``."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def fixed(value: Decimal, step: Decimal) -> str:
    """``value`` with exactly the places of ``step`` (``0.1`` with step ``0.01`` → ``"0.10"``)."""
    return format(value.quantize(step.normalize() if step >= 1 else step), "f")
