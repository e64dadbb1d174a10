"""Halting a live run by hand (``bot live halt``), so that it stays halted.

The request is an event in the run's journal: the daemon driving the run sees it within a
reconciliation interval, a daemon starting the run sees it before trading; either cancels
nothing (the bot only sends market orders), closes every position of the run's symbols with
reduce-only market orders sized from the exchange's positions, and decides no more. The event
stays, so every later start halts again.
"""

from __future__ import annotations

from bot.core.events import RunEvent
from bot.store import Store

HALT_EVENT = "halt_requested"


def request_halt(store: Store, run_id: str, now: int) -> str:
    """Record the request; returns what the user should read."""
    run = store.get_run(run_id)
    if run is None or run["kind"] != "live":
        raise LookupError(f"no live run {run_id!r} in the store")
    journal = store.journal(run["id"])  # unfenced: the request comes from outside the daemon
    journal.record_event(RunEvent(now, HALT_EVENT, {"by": "bot live halt"}))
    journal.close()
    holder = store.lease_holder(run["id"])
    where = (f"its daemon ({holder.owner}) flattens and halts within a reconciliation interval"
             if holder else "it flattens and halts when its daemon next starts")  # fmt: skip
    return f"halt requested for live run {run['id']}: {where}"


def halt_requested(store: Store, run_id: str) -> bool:
    return any(e["kind"] == HALT_EVENT for e in store.events(run_id))
