"""Run progress for restarts, resumable paper runs, and stored funding rates."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from bot.core.events import RunEvent
from bot.store import Store
from bot.store.faults import StoreUnavailableError
from tests.store.test_store_runs import create

T = 1_700_000_000_000


def test_progress_is_committed_with_the_rows_recorded_before_it(store: Store) -> None:
    create(store, "run-p", kind="paper")
    journal = store.journal("run-p")
    journal.record_equity(T, 1.0, 1.0, 0.0)
    journal.record_progress(T + 1)
    assert store.get_run("run-p")["last_step"] is None  # nothing committed before flush
    journal.flush()
    assert store.get_run("run-p")["last_step"] == T + 1
    assert len(store.equity("run-p")) == 1
    journal.record_progress(T + 2)  # progress alone still flushes
    journal.flush()
    assert store.get_run("run-p")["last_step"] == T + 2


def test_a_failed_flush_commits_neither_rows_nor_progress(store: Store) -> None:
    create(store, "run-f", kind="paper")
    journal = store.journal("run-f")
    journal.record_event(RunEvent(T, "ok", {}))
    journal.record_progress(T)
    journal.flush()
    journal.record_equity(T + 1, 1.0, 1.0, 0.0)
    journal.record_progress(T + 1)
    with store.engine.begin() as conn:  # make the equity insert fail inside the flush
        conn.execute(sa.text("DROP TABLE equity"))
    with pytest.raises((sa.exc.DBAPIError, StoreUnavailableError)):  # per backend
        journal.flush()
    with store.engine.connect() as conn:
        last = conn.scalar(sa.text("SELECT last_step FROM runs WHERE id = 'run-f'"))
    assert last == T


def test_resumable_runs_and_status(store: Store) -> None:
    create(store, "old", kind="paper", started_at=T)
    create(store, "new", kind="paper", started_at=T + 10)
    create(store, "bt", kind="backtest", started_at=T + 20)
    store.finish_run("old", finished_at=T + 5, status="halted")
    store.set_run_status("new", "stopped")
    assert [r["id"] for r in store.resumable_runs("paper")] == ["new"]
    store.set_run_status("new", "running")
    assert store.get_run("new")["status"] == "running"
    with pytest.raises(ValueError, match="live run's status"):
        store.set_run_status("new", "finished")
    with pytest.raises(LookupError):
        store.set_run_status("nope", "running")


def test_funding_rates_upsert_idempotently_and_load_by_range(store: Store) -> None:
    hours8 = 8 * 3_600_000
    times = [T + k * hours8 for k in range(4)]
    assert store.upsert_funding("BTCUSDT", times, [0.0001, -0.0002, 0.0003, 0.0001]) == 4
    assert store.upsert_funding("BTCUSDT", times[2:], [9.0, 9.0]) == 0  # first value kept
    assert store.upsert_funding("ETHUSDT", times[:1], [0.0005]) == 1
    loaded = store.load_funding(["BTCUSDT", "ETHUSDT", "SOLUSDT"], start=times[1], end=times[3])
    assert set(loaded) == {"BTCUSDT"}
    np.testing.assert_array_equal(loaded["BTCUSDT"][0], times[1:3])
    np.testing.assert_array_equal(loaded["BTCUSDT"][1], [-0.0002, 0.0003])
