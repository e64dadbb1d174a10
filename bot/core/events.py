"""The values that flow through the engine.

Bars travel as :class:`Panel` blocks: consecutive steps of aligned bars for every symbol, with a
mask of which symbols actually had a bar at each step. A live feed hands the engine one-row
panels; a replay hands it thousands of rows at once. The engine has one code path for both, so
a backtest exercises exactly the logic that paper trading runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed kline of one symbol; ``start`` is its open time (epoch ms, UTC)."""

    symbol: str
    interval: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float | None = None


@dataclass(frozen=True, slots=True)
class Panel:
    """Aligned bars of several symbols over consecutive decision steps.

    ``values[i, s]`` holds (open, high, low, close, volume) of ``symbols[s]`` for the bar that
    starts at ``starts[i]``; where ``present[i, s]`` is false the symbol had no bar (NaN values)
    and the step is *stale* for it. Steps where no symbol has a bar are not rows at all.
    """

    symbols: tuple[str, ...]
    interval_ms: int
    starts: np.ndarray
    values: np.ndarray
    present: np.ndarray
    turnover: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, width = len(self.starts), len(self.symbols)
        if self.values.shape != (n, width, len(FIELDS)):
            raise ValueError(f"values shape {self.values.shape} != {(n, width, len(FIELDS))}")
        if self.present.shape != (n, width):
            raise ValueError(f"present shape {self.present.shape} != {(n, width)}")
        if n > 1 and not np.all(np.diff(self.starts) > 0):
            raise ValueError("panel rows must be strictly increasing in time")

    def __len__(self) -> int:
        return len(self.starts)

    def slice(self, lo: int, hi: int) -> Panel:
        """Rows ``lo:hi`` as a panel sharing this one's memory."""
        turnover = None if self.turnover is None else self.turnover[lo:hi]
        return Panel(
            self.symbols,
            self.interval_ms,
            self.starts[lo:hi],
            self.values[lo:hi],
            self.present[lo:hi],
            turnover,
        )

    def split(self, time: int) -> tuple[Panel, Panel]:
        """(rows starting before ``time``, rows from ``time`` on)."""
        cut = int(np.searchsorted(self.starts, time))
        return self.slice(0, cut), self.slice(cut, len(self))

    def bars(self, interval: str) -> list[Bar]:
        """The present bars as :class:`Bar` objects (for storage and messages, not hot paths)."""
        out: list[Bar] = []
        rows, cols = np.nonzero(self.present)
        for i, s in zip(rows.tolist(), cols.tolist(), strict=True):
            o, h, low, c, v = self.values[i, s].tolist()
            turnover = None if self.turnover is None else float(self.turnover[i, s])
            start = int(self.starts[i])
            out.append(Bar(self.symbols[s], interval, start, o, h, low, c, v, turnover))
        return out


@dataclass(frozen=True, slots=True)
class Order:
    """A market order the portfolio wants filled at the next bar's open.

    ``qty`` is signed (positive buys). ``link_id`` is the deterministic ``orderLinkId`` derived
    from (run, decision time, symbol, attempt), so retries and restarts cannot duplicate it.
    """

    link_id: str
    symbol: str
    qty: float
    decision_time: int
    reason: str = "rebalance"
    attempt: int = 0

    @property
    def side(self) -> str:
        return "Buy" if self.qty > 0 else "Sell"


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution: a trade at a price, or a funding payment (``exec_type="Funding"``).

    ``cash_flow`` is what it did to cash (fees and funding included); ``realized_pnl`` follows
    Bybit's closed-PnL convention (price PnL of the closed quantity minus its share of the
    opening fee and the closing fee), and is zero for fills that only open or add.
    """

    exec_id: str
    link_id: str | None
    symbol: str
    time: int
    qty: float
    price: float
    fee: float
    exec_type: str
    cash_flow: float
    realized_pnl: float = 0.0

    @property
    def side(self) -> str:
        return "Buy" if self.qty > 0 else "Sell"


#: What can become of an order, as an executor reports it; ``FUNDING`` carries a settlement.
ACCEPTED, REJECTED, PARTIALLY_FILLED, FILLED, CANCELLED, FUNDING = (
    "accepted", "rejected", "partially_filled", "filled", "cancelled", "funding",
)  # fmt: skip
REPORT_KINDS = (ACCEPTED, REJECTED, PARTIALLY_FILLED, FILLED, CANCELLED, FUNDING)


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """What became of an order (or a funding settlement), as the executor learnt it.

    Orders go out through :meth:`Executor.submit`; their outcomes come back as reports, the one
    path by which the engine books anything. The paper executor produces them on the spot (at
    submission and at the next open); a live executor when the exchange says so, through the
    same queue as bars. ``fill`` is set for (partial) fills and funding; ``reason`` names a
    rejection's code or a cancellation's cause."""

    kind: str
    symbol: str
    time: int
    order: Order | None = None
    fill: Fill | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in REPORT_KINDS:
            raise ValueError(f"report kind must be one of {REPORT_KINDS}, not {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """What one strategy decided at the close of a bar, and what risk turned it into."""

    time: int
    strategy: str
    version: str
    weights: dict[str, float]
    target: dict[str, float]
    stale: tuple[str, ...] = ()
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something worth keeping about a run: a kill switch, a daily summary, a warning."""

    time: int
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)
    #: Tells apart events of one kind at one time (a symbol, say); an event is kept once.
    key: str = ""
