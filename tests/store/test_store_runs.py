"""Runs: created running, finished once, listed newest first, found by a unique id prefix."""

from __future__ import annotations

import pytest

from bot.core.events import RunEvent
from bot.store import Store

STARTED = 1_700_000_000_000


def create(store: Store, run_id: str, started_at: int = STARTED, **extra) -> None:
    store.create_run(
        run_id=run_id,
        kind=extra.pop("kind", "backtest"),
        strategy="equal_weight",
        symbols=("BTCUSDT", "ETHUSDT"),
        interval="1h",
        config=extra.pop("config", {}),
        code_version="abc123",
        started_at=started_at,
        **extra,
    )


def test_create_and_get(store: Store) -> None:
    config = {"risk": {"max_drawdown": 0.2, "shorts": False}, "symbols": ["BTCUSDT"], "n": None}
    create(store, "run-one", config=config, data_start=1, data_end=2)
    assert store.get_run("run-one") == {
        "id": "run-one",
        "kind": "backtest",
        "strategy": "equal_weight",
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "interval": "1h",
        "config": config,
        "code_version": "abc123",
        "started_at": STARTED,
        "finished_at": None,
        "status": "running",
        "halted_reason": None,
        "metrics": None,
        "data_start": 1,
        "data_end": 2,
        "last_step": None,
        "lease_owner": None,
        "lease_heartbeat": None,
        "lease_expires": None,
        "counts": {
            "decisions": 0,
            "orders": 0,
            "fills": 0,
            "positions": 0,
            "equity": 0,
            "events": 0,
        },
    }


def test_finish(store: Store) -> None:
    create(store, "run-one", kind="paper")
    metrics = {"sharpe": 1.25, "max_drawdown": -0.1}
    store.finish_run(
        "run-one", finished_at=STARTED + 5, status="halted", metrics=metrics, halted_reason="dd"
    )
    run = store.get_run("run-one")
    assert (run["status"], run["finished_at"], run["metrics"], run["halted_reason"]) == (
        "halted",
        STARTED + 5,
        metrics,
        "dd",
    )
    with pytest.raises(LookupError):
        store.finish_run("nope", finished_at=1, status="finished")
    with pytest.raises(ValueError, match="finishes as one of"):
        store.finish_run("run-one", finished_at=1, status="running")


def test_invalid_and_duplicate_runs_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="run kind"):
        create(store, "run-one", kind="live-ish")
    create(store, "run-one")
    with pytest.raises(ValueError, match="exists already"):
        create(store, "run-one")


def test_list_newest_first(store: Store) -> None:
    for k in range(5):
        create(store, f"run-{k}", started_at=STARTED + k)
    assert [r["id"] for r in store.list_runs()] == ["run-4", "run-3", "run-2", "run-1", "run-0"]
    assert [r["id"] for r in store.list_runs(limit=2)] == ["run-4", "run-3"]


def test_prefix_lookup(store: Store) -> None:
    create(store, "a1b2c3d4e5f60718")
    create(store, "a1b2ffff00001111")
    create(store, "a1b")
    assert store.get_run("a1b2c3")["id"] == "a1b2c3d4e5f60718"
    assert store.get_run("a1b")["id"] == "a1b"  # an exact id wins, however short
    assert store.get_run("a1") is None  # too short to be a prefix
    assert store.get_run("ffff") is None
    with pytest.raises(ValueError, match="ambiguous"):
        store.get_run("a1b2")


def test_prefix_is_not_a_pattern(store: Store) -> None:
    create(store, "run_1234")
    assert store.get_run("run%") is None
    assert store.get_run("run_")["id"] == "run_1234"
    assert store.get_run("ru_1") is None


def test_counts_follow_the_journal(store: Store) -> None:
    create(store, "run-one")
    journal = store.journal("run-one")
    for k in range(3):
        journal.record_equity(k, 1.0, 1.0, 0.0)
    journal.record_event(RunEvent(0, "note", {"text": "hello"}))
    journal.flush()
    counts = store.get_run("run-one")["counts"]
    assert (counts["equity"], counts["events"], counts["fills"]) == (3, 1, 0)
