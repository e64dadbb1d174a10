"""One process per run: the lease on SQLite and PostgreSQL, and the fence on every journal write."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from bot.core.events import RunEvent
from bot.store import Store
from bot.store.faults import LeaseHeldError, LeaseLostError
from bot.store.lease import Holder, new_owner

T = 1_700_000_000_000


def test_a_second_owner_is_refused_naming_the_holder(store: Store, run_id: str) -> None:
    first, second = new_owner(), new_owner()
    store.acquire_lease(run_id, first, ttl_s=30)
    store.acquire_lease(run_id, first, ttl_s=30)  # the holder may claim again
    with pytest.raises(LeaseHeldError) as refused:
        store.acquire_lease(run_id, second, ttl_s=30)
    text = str(refused.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in text
    assert "--force" in text and "\n" not in text
    holder = store.lease_holder(run_id)
    assert holder.owner == first and holder.expires - holder.now > 25_000


def test_a_lapsed_lease_is_free_to_take(store: Store, run_id: str) -> None:
    first, second = new_owner(), new_owner()
    store.acquire_lease(run_id, first, ttl_s=30)
    store.renew_lease(run_id, first, ttl_s=-1)  # as if its holder stopped renewing long ago
    store.acquire_lease(run_id, second, ttl_s=30)
    assert store.lease_holder(run_id).owner == second
    with pytest.raises(LeaseLostError, match="taken over"):
        store.renew_lease(run_id, first, ttl_s=30)


def test_force_takes_over_and_the_old_holder_cannot_write_a_row(store: Store, run_id: str):
    first, second = new_owner(), new_owner()
    store.acquire_lease(run_id, first, ttl_s=30)
    journal = store.journal(run_id, lease_owner=first, lease_ttl_s=30)
    journal.record_equity(T, 1.0, 1.0, 0.0)
    journal.flush()  # the holder writes
    store.acquire_lease(run_id, second, ttl_s=30, force=True)
    journal.record_equity(T + 1, 2.0, 2.0, 0.0)
    journal.record_event(RunEvent(T + 1, "daily_summary", {"equity": 2.0}))
    with pytest.raises(LeaseLostError):
        journal.flush()
    assert [row["time"] for row in store.equity(run_id)] == [T]  # nothing after the takeover
    assert store.events(run_id) == []


def test_release_frees_the_run(store: Store, run_id: str) -> None:
    first, second = new_owner(), new_owner()
    store.acquire_lease(run_id, first, ttl_s=30)
    store.release_lease(run_id, first)
    assert store.lease_holder(run_id) is None
    store.acquire_lease(run_id, second, ttl_s=30)


def test_a_crashed_holder_on_this_machine_is_known_dead_at_once(store: Store, run_id: str):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = f"{socket.gethostname()}:{int(gone.stdout)}:deadbeef"
    store.acquire_lease(run_id, dead, ttl_s=3600)  # it crashed holding a long lease
    store.acquire_lease(run_id, new_owner(), ttl_s=30)  # taken without waiting an hour


def test_holders_elsewhere_are_never_presumed_dead() -> None:
    remote = Holder("another-host:1:abcd", None, None, 0)
    assert not remote.is_dead_here()
    assert not Holder(f"{socket.gethostname()}:{os.getpid()}:x", None, None, 0).is_dead_here()


def test_events_are_kept_once(store: Store, run_id: str) -> None:
    journal = store.journal(run_id)
    summary = RunEvent(T, "daily_summary", {"equity": 1.0})
    journal.record_event(summary)
    journal.flush()
    journal.record_event(summary)  # a replayed step, or a second writer
    journal.record_event(RunEvent(T, "late_bar", {"symbol": "A"}, key="A:1"))
    journal.record_event(RunEvent(T, "late_bar", {"symbol": "B"}, key="B:1"))
    journal.flush()
    assert [(e["kind"], e["key"]) for e in store.events(run_id)] == [
        ("daily_summary", ""), ("late_bar", "A:1"), ("late_bar", "B:1")
    ]  # fmt: skip


def test_a_lease_needs_a_run(store: Store) -> None:
    with pytest.raises(LookupError):
        store.acquire_lease("no-such-run", new_owner(), ttl_s=30)
