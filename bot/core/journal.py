"""Where the engine writes what happened. The SQL store implements this protocol; the core
never imports SQL. Calls are cheap appends: implementations batch and write on ``flush``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.core.events import Decision, Fill, Order, Panel, RunEvent


class Journal(Protocol):
    def record_bars(self, interval: str, panel: Panel) -> None: ...

    def record_bar_revision(self, interval: str, panel: Panel) -> None:
        """Bars that replace stored ones (the venue corrected them)."""
        ...

    def record_decision(self, decision: Decision) -> None: ...

    def record_orders(self, orders: list[Order], status: str = "New") -> None: ...

    def record_fill(self, fill: Fill) -> None: ...

    def record_position(self, time: int, symbol: str, qty: float, avg_price: float) -> None: ...

    def record_equity(self, time: int, equity: float, cash: float, gross: float) -> None: ...

    def record_event(self, event: RunEvent) -> None: ...

    def record_progress(self, time: int) -> None:
        """The close of the last step processed; stored with the same flush as its records,
        so a restart knows exactly which steps are already in the journal."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None:
        """Flush and wait until everything recorded is written."""
        ...


class NullJournal:
    """Keeps nothing (benchmarks of the bare engine, throwaway runs)."""

    def record_bars(self, interval: str, panel: Panel) -> None:
        return None

    def record_bar_revision(self, interval: str, panel: Panel) -> None:
        return None

    def record_decision(self, decision: Decision) -> None:
        return None

    def record_orders(self, orders: list[Order], status: str = "New") -> None:
        return None

    def record_fill(self, fill: Fill) -> None:
        return None

    def record_position(self, time: int, symbol: str, qty: float, avg_price: float) -> None:
        return None

    def record_equity(self, time: int, equity: float, cash: float, gross: float) -> None:
        return None

    def record_event(self, event: RunEvent) -> None:
        return None

    def record_progress(self, time: int) -> None:
        return None

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class MemoryJournal:
    """Keeps everything in lists: for tests and for reports of runs without a database."""

    bars: int = 0
    revised_bars: int = 0
    decisions: list[Decision] = field(default_factory=list)
    orders: list[tuple[Order, str]] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    positions: list[tuple[int, str, float, float]] = field(default_factory=list)
    equity: list[tuple[int, float, float, float]] = field(default_factory=list)
    events: list[RunEvent] = field(default_factory=list)
    progress: int | None = None

    def record_bars(self, interval: str, panel: Panel) -> None:
        self.bars += int(panel.present.sum())

    def record_bar_revision(self, interval: str, panel: Panel) -> None:
        self.revised_bars += int(panel.present.sum())

    def record_decision(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def record_orders(self, orders: list[Order], status: str = "New") -> None:
        self.orders.extend((o, status) for o in orders)

    def record_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def record_position(self, time: int, symbol: str, qty: float, avg_price: float) -> None:
        self.positions.append((time, symbol, qty, avg_price))

    def record_equity(self, time: int, equity: float, cash: float, gross: float) -> None:
        self.equity.append((time, equity, cash, gross))

    def record_event(self, event: RunEvent) -> None:
        self.events.append(event)

    def record_progress(self, time: int) -> None:
        self.progress = time

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
