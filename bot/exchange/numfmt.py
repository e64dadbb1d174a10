"""Numbers the way Bybit writes them: decimal strings.

Bar values are sent so that ``float(text)`` gives back exactly the stored float — a client
comparing the live stream with a backtest over the same file must see identical numbers.
Invented numbers (book levels, intra-bar prices) live on a tick or quantity grid and are
formatted from integers, so the same level is always the same string (pybit finds book levels
to delete by string equality).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np


def fmt(x: float) -> str:
    """Shortest positional decimal that reads back as exactly ``x`` (``100.0`` → ``"100"``)."""
    return np.format_float_positional(float(x), trim="-")


def decimals(x: float) -> int:
    """Digits after the point in :func:`fmt` of ``x``."""
    text = fmt(x)
    return len(text) - text.index(".") - 1 if "." in text else 0


@dataclass(frozen=True, slots=True)
class Step:
    """A tick size or quantity step held exactly: ``units × 10**-places``."""

    units: int
    places: int

    @classmethod
    def of(cls, value: float) -> Step:
        if not value > 0:
            raise ValueError(f"a step must be positive, not {value!r}")
        exact = Decimal(fmt(value))
        places = max(0, -int(exact.as_tuple().exponent))
        return cls(int(exact.scaleb(places)), places)

    @property
    def value(self) -> float:
        return self.units / 10**self.places

    def format(self, count: int) -> str:
        """``count`` steps as a string with exactly :attr:`places` decimals (``"16493.50"``)."""
        q = count * self.units
        if self.places == 0:
            return str(q)
        sign, q = ("-", -q) if q < 0 else ("", q)
        scale = 10**self.places
        return f"{sign}{q // scale}.{q % scale:0{self.places}d}"

    def count(self, x: float) -> int:
        """The whole number of steps nearest to ``x``."""
        return round(x / self.value)

    def round(self, x: float) -> float:
        """``x`` moved to the nearest step (the float nearest that decimal)."""
        return float(self.format(self.count(x)))
