"""Executors: where orders go, and how their outcomes come back.

Orders go out through :meth:`Executor.submit`; what becomes of them comes back as
:class:`~bot.core.events.ExecutionReport` events (accepted, rejected, partially filled, filled,
cancelled, funding), which the engine books through one path. The paper executor produces them
synchronously: an order is accepted when submitted and fills at the **open of the next bar** of
its symbol, moved against the trader by the slippage, with the taker fee on the traded notional
— the same rule in backtests and in paper trading. A live executor sends orders to the exchange
and reports what the exchange says when it says it, through the daemon's event queue.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from bot.core.events import ACCEPTED, CANCELLED, FILLED, ExecutionReport, Fill, Order

#: How many of the most recent latency samples a daemon and an executor keep (for the latency
#: benchmark): bounded, because a daemon runs for months.
LATENCY_SAMPLES = 100_000


class Executor(Protocol):
    submitted: int  # orders accepted so far
    submitted_ns: int  # perf_counter_ns of the last submission (latency metrics)

    @property
    def pending(self) -> list[Order]:
        """Orders waiting for a bar's open to fill (the engine offers it each open); a live
        executor's orders fill on the exchange, so it has none."""
        ...

    def submit(self, orders: list[Order]) -> list[ExecutionReport]:
        """Send new orders; returns the reports known at once (a paper executor's cancellations
        of the orders they replace, then their acceptance; a live executor's none)."""
        ...

    def on_open(self, start: int, opens: np.ndarray, present: np.ndarray) -> list[ExecutionReport]:
        """A new bar opened at ``start``: reports of what filled at ``opens[S]``."""
        ...

    def on_symbol_open(self, symbol: str, start: int, open_price: float) -> list[ExecutionReport]:
        """One symbol's next candle opened (live feed): its orders decided at ``start``."""
        ...


class PaperExecutor:
    """Simulated market orders: next open ± slippage, taker fee on notional."""

    def __init__(self, symbols: tuple[str, ...], fee_rate: float, slippage_rate: float) -> None:
        if fee_rate < 0 or slippage_rate < 0:
            raise ValueError("fee and slippage must be >= 0")
        self._index = {s: i for i, s in enumerate(symbols)}
        self.fee_rate = fee_rate
        self.slippage_rate = slippage_rate
        self._pending: list[Order] = []
        self.submitted = 0  # orders accepted so far
        self.submitted_ns = 0  # perf_counter_ns of the last submission (latency metrics)

    @property
    def pending(self) -> list[Order]:
        return self._pending

    def submit(self, orders: list[Order]) -> list[ExecutionReport]:
        """Queue orders; an older pending order for the same symbol is cancelled (replaced)."""
        self.submitted += len(orders)
        self.submitted_ns = time.perf_counter_ns()
        replacing = {o.symbol for o in orders}
        cancelled = [o for o in self._pending if o.symbol in replacing]
        self._pending = [o for o in self._pending if o.symbol not in replacing] + list(orders)
        return [
            *(ExecutionReport(CANCELLED, o.symbol, o.decision_time, o, reason="replaced")
              for o in cancelled),
            *(ExecutionReport(ACCEPTED, o.symbol, o.decision_time, o) for o in orders),
        ]  # fmt: skip

    def fill_price(self, open_price: float, qty: float) -> float:
        return (
            open_price * (1.0 + self.slippage_rate)
            if qty > 0
            else open_price * (1.0 - self.slippage_rate)
        )

    def on_open(self, start: int, opens: np.ndarray, present: np.ndarray) -> list[ExecutionReport]:
        fills: list[ExecutionReport] = []
        waiting: list[Order] = []
        for order in self._pending:
            s = self._index[order.symbol]
            if present[s]:
                fills.append(self._fill(order, start, float(opens[s])))
            else:
                waiting.append(order)  # no bar for this symbol yet: fill at its next open
        self._pending = waiting
        return fills

    def on_symbol_open(self, symbol: str, start: int, open_price: float) -> list[ExecutionReport]:
        # Only the open of the bar right after the decision: an order whose bar opened before
        # it was decided (the barrier was waiting for another symbol) fills when that bar's
        # row is processed, at that bar's open, exactly as in a replay.
        due = [o for o in self._pending if o.symbol == symbol and o.decision_time == start]
        if not due:
            return []
        self._pending = [o for o in self._pending if o not in due]
        return [self._fill(order, start, open_price) for order in due]

    def _fill(self, order: Order, start: int, open_price: float) -> ExecutionReport:
        price = self.fill_price(open_price, order.qty)
        fee = abs(order.qty) * price * self.fee_rate
        fill = Fill(
            exec_id=f"{order.link_id}-x",
            link_id=order.link_id,
            symbol=order.symbol,
            time=start,
            qty=order.qty,
            price=price,
            fee=fee,
            exec_type="Trade",
            cash_flow=-order.qty * price - fee,
        )
        return ExecutionReport(FILLED, order.symbol, start, order, fill)
