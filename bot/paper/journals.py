"""Journal wrappers the daemon stacks on the store's journal.

* :class:`GatedJournal` drops everything while closed: a restart replays the run's stored steps
  through the engine to rebuild its exact state, and those steps are in the store already.
  It does check one thing on the way: every decision the replay makes must equal the one the
  run journaled for that step. A difference means the rebuilt state is not the run's (bars
  changed under it without a record); it is counted and logged, never silently traded on.
* :class:`EchoJournal` also prints decisions, fills and equity as they happen (``bot demo``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

from bot.core.events import Decision, Fill, Order, Panel, RunEvent
from bot.core.journal import Journal
from bot.core.timeutil import DAY_MS, iso

log = logging.getLogger("bot.paper")


class GatedJournal:
    def __init__(self, inner: Journal, journaled: Iterable[dict] = ()) -> None:
        """``journaled``: the run's stored decisions (store rows), to check replays against."""
        self.inner = inner
        self.open = True
        self._journaled = {(d["time"], d["strategy"]): d["target"] for d in journaled}
        self.replayed = 0  # decisions checked while closed
        self.diverged = 0  # ... that differed from the journal

    def _check(self, decision: Decision) -> None:
        expected = self._journaled.get((decision.time, decision.strategy))
        if expected is None:
            return  # journaled before this check existed, or its flush never committed
        self.replayed += 1
        # as stored: JSON has no NaN (it is written as null)
        target = {s: (None if math.isnan(w) else w) for s, w in decision.target.items()}
        if target != expected:
            self.diverged += 1
            log.error(
                "replay diverged at %s (%s): the journal has %s, the replay decided %s",
                iso(decision.time), decision.strategy, expected, target,
            )  # fmt: skip

    def record_bars(self, interval: str, panel: Panel) -> None:
        if self.open:
            self.inner.record_bars(interval, panel)

    def record_bar_revision(self, interval: str, panel: Panel) -> None:
        if self.open:
            self.inner.record_bar_revision(interval, panel)

    def record_decision(self, decision: Decision) -> None:
        if self.open:
            self.inner.record_decision(decision)
        else:
            self._check(decision)

    def record_orders(self, orders: list[Order], status: str = "New") -> None:
        if self.open:
            self.inner.record_orders(orders, status)

    def record_fill(self, fill: Fill) -> None:
        if self.open:
            self.inner.record_fill(fill)

    def record_position(self, time: int, symbol: str, qty: float, avg_price: float) -> None:
        if self.open:
            self.inner.record_position(time, symbol, qty, avg_price)

    def record_equity(self, time: int, equity: float, cash: float, gross: float) -> None:
        if self.open:
            self.inner.record_equity(time, equity, cash, gross)

    def record_event(self, event: RunEvent) -> None:
        if self.open:
            self.inner.record_event(event)

    def record_progress(self, time: int) -> None:
        if self.open:
            self.inner.record_progress(time)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


class EchoJournal:
    """Forwards everything and prints what a person watching a demo wants to see.

    A decision line names the model version that made it, when a model did; ``explain`` may
    add a note to it (``bot demo``: what the model attended to). It is called as the engine
    records the decision, so it sees the engine as the decision left it."""

    def __init__(
        self,
        inner: Journal,
        echo: Callable[[str], None],
        explain: Callable[[Decision], str | None] | None = None,
    ) -> None:
        self.inner = inner
        self.echo = echo
        self.explain = explain
        self._funding: dict[int, list[str]] = {}  # settlement time → "SYMBOL ±amount"
        self._equity_day: int | None = None  # the market day of the last equity line

    def record_bars(self, interval: str, panel: Panel) -> None:
        self.inner.record_bars(interval, panel)

    def record_bar_revision(self, interval: str, panel: Panel) -> None:
        self.inner.record_bar_revision(interval, panel)

    def record_decision(self, decision: Decision) -> None:
        self.inner.record_decision(decision)
        held = {s: w for s, w in decision.target.items() if abs(w) > 1e-12}
        weights = ", ".join(f"{s} {w:+.1%}" for s, w in held.items()) or "flat"
        stale = f"  (stale: {', '.join(decision.stale)})" if decision.stale else ""
        model = f" [{decision.model_version}]" if decision.model_version else ""
        note = self.explain(decision) if self.explain is not None else None
        about = f"  | {note}" if note else ""
        self.echo(f"{iso(decision.time)}  decide  {decision.strategy}{model}: {weights}{stale}"
                  f"{about}")  # fmt: skip

    def record_orders(self, orders: list[Order], status: str = "New") -> None:
        self.inner.record_orders(orders, status)

    def record_fill(self, fill: Fill) -> None:
        self.inner.record_fill(fill)
        if fill.exec_type == "Trade":
            self.echo(f"{iso(fill.time)}  fill    {fill.side} {abs(fill.qty):g} {fill.symbol} "
                      f"@ {fill.price:,.6g}  fee {fill.fee:.2f}")  # fmt: skip
        else:  # one line per settlement, printed when the step is flushed
            self._funding.setdefault(fill.time, []).append(f"{fill.symbol} {fill.cash_flow:+.2f}")

    def record_position(self, time: int, symbol: str, qty: float, avg_price: float) -> None:
        self.inner.record_position(time, symbol, qty, avg_price)

    def record_equity(self, time: int, equity: float, cash: float, gross: float) -> None:
        self.inner.record_equity(time, equity, cash, gross)
        if time // DAY_MS != self._equity_day:  # the journal keeps every snapshot; a person
            self._equity_day = time // DAY_MS  # watching wants one line a day
            self.echo(f"{iso(time)}  equity  {equity:,.2f} USDT (gross exposure {gross:,.0f})")

    def record_event(self, event: RunEvent) -> None:
        self.inner.record_event(event)
        if event.kind == "kill_switch":
            self.echo(f"{iso(event.time)}  KILL SWITCH  {event.detail.get('reason')}")
        elif event.kind == "model_health":
            self.echo(
                f"{iso(event.time)}  MODEL HALTED  {event.detail.get('strategy')}: "
                f"{event.detail.get('reason')}"
            )

    def record_progress(self, time: int) -> None:
        self.inner.record_progress(time)

    def flush(self) -> None:
        self.inner.flush()
        for time, parts in sorted(self._funding.items()):
            self.echo(f"{iso(time)}  funding {', '.join(parts)}")
        self._funding.clear()

    def close(self) -> None:
        self.inner.close()
