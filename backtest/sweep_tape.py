"""A journal that records the engine's calls, to be played into the store by someone else.

A sweep's workers have no database: each runs its backtest into a :class:`TapeJournal` and
hands the tape back. The driver plays it into the store's own journal, call for call in the
order the engine made them, so the stored run is written by exactly the code that writes a
plain backtest (the store journal keys a position by the fill recorded just before it, and
marks an order filled by its fill: the order of calls matters, not only their rows).
"""

from __future__ import annotations

from typing import Any

from bot.core.events import Decision, Fill, Order, Panel, RunEvent
from bot.core.journal import Journal

#: One recorded call: the journal method's name and its arguments.
Call = tuple[str, tuple[Any, ...]]


class TapeJournal:
    """Records every call but ``close`` (the player closes its own journal)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def record_bars(self, interval: str, panel: Panel) -> None:
        self.calls.append(("record_bars", (interval, panel)))

    def record_bar_revision(self, interval: str, panel: Panel) -> None:
        self.calls.append(("record_bar_revision", (interval, panel)))

    def record_decision(self, decision: Decision) -> None:
        self.calls.append(("record_decision", (decision,)))

    def record_orders(self, orders: list[Order], status: str = "New") -> None:
        self.calls.append(("record_orders", (list(orders), status)))

    def record_fill(self, fill: Fill) -> None:
        self.calls.append(("record_fill", (fill,)))

    def record_position(self, time: int, symbol: str, qty: float, avg_price: float) -> None:
        self.calls.append(("record_position", (time, symbol, qty, avg_price)))

    def record_equity(self, time: int, equity: float, cash: float, gross: float) -> None:
        self.calls.append(("record_equity", (time, equity, cash, gross)))

    def record_event(self, event: RunEvent) -> None:
        self.calls.append(("record_event", (event,)))

    def record_progress(self, time: int) -> None:
        self.calls.append(("record_progress", (time,)))

    def flush(self) -> None:
        self.calls.append(("flush", ()))

    def close(self) -> None:
        return None


def play(calls: list[Call], journal: Journal) -> None:
    """Make ``calls`` on ``journal`` in their order (the caller closes it)."""
    for name, args in calls:
        getattr(journal, name)(*args)
