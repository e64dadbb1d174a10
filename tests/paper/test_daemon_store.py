"""The daemon and its store: one daemon per run, no database call on the event loop, and a
locked, deleted or replaced database stops it cleanly instead of freezing or crashing it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.exchange.server import ExchangeServer
from bot.paper.daemon import DaemonStoppedError, PaperDaemon
from bot.store import Store
from bot.store.faults import LeaseHeldError
from tests.paper.test_daemon import last_step, live, settings, wait_steps
from tests.store.test_store_faults import hold_write_lock


async def until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Wait (generously: a busy machine is slow) until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


async def test_a_second_daemon_on_the_same_run_is_refused_and_force_takes_over(tmp_path):
    config = settings(tmp_path)
    async with ExchangeServer(config) as server:
        first = PaperDaemon(live(config, server.port), new_run=True)
        first_task = asyncio.create_task(first.run())
        await wait_steps(config.store.url)
        run_id = first._run.run_id

        second = PaperDaemon(live(config, server.port))  # would resume the same run
        with pytest.raises(LeaseHeldError, match=r"driven by another daemon \(pid \d+ on host"):
            await second.run()
        assert not first_task.done()  # the holder trades on

        third = PaperDaemon(live(config, server.port), run_id=run_id, force=True)
        third_task = asyncio.create_task(third.run())
        with pytest.raises(DaemonStoppedError, match="lease was taken over"):
            await asyncio.wait_for(first_task, 120)
        taken_at = await asyncio.to_thread(last_step, config.store.url)
        await wait_steps(config.store.url, taken_at, "the new holder trades")
        third.stop.set()
        assert await asyncio.wait_for(third_task, 60) == run_id

    with Store(config.store.url) as store:
        assert [r["id"] for r in store.list_runs()] == [run_id]  # nobody opened another run
        assert store.lease_holder(run_id) is None  # handed back at the clean stop
        summaries = [e["time"] for e in store.events(run_id) if e["kind"] == "daily_summary"]
        assert len(summaries) == len(set(summaries))


class LoopWatch:
    """Records every SQL statement executed on a thread that is running an event loop."""

    def __init__(self) -> None:
        self.on_loop: list[str] = []

    def __call__(self, conn, cursor, statement, *args) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread: fine
        self.on_loop.append(statement)


async def test_no_database_call_runs_on_the_event_loop(tmp_path):
    config = settings(tmp_path)
    watch = LoopWatch()
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", watch)
    try:
        async with ExchangeServer(config) as server:
            daemon = PaperDaemon(live(config, server.port), new_run=True)
            task = asyncio.create_task(daemon.run())
            first = await wait_steps(config.store.url)
            await wait_steps(config.store.url, first + 24 * 3_600_000, "a day of steps")
            daemon.stop.set()
            await asyncio.wait_for(task, 60)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", watch)
    assert watch.on_loop == []


async def test_a_briefly_locked_database_is_waited_out_with_a_log_line(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    config = settings(tmp_path)
    path = Path(config.store.url.removeprefix("sqlite:///"))
    async with ExchangeServer(config) as server:
        daemon = PaperDaemon(live(config, server.port), new_run=True)
        task = asyncio.create_task(daemon.run())
        before = await wait_steps(config.store.url)
        held = threading.Event()
        locker = threading.Thread(target=hold_write_lock, args=(path, 3.0, held))
        locker.start()
        await asyncio.to_thread(held.wait, 30)
        await asyncio.to_thread(locker.join)
        await wait_steps(config.store.url, before, "it trades on after the lock")
        daemon.stop.set()
        await asyncio.wait_for(task, 60)
    assert "database is locked" in caplog.text and "retry 1" in caplog.text


async def test_a_database_locked_for_too_long_stops_the_daemon_cleanly(tmp_path):
    config = settings(tmp_path)
    config = config.model_copy(
        update={"store": config.store.model_copy(update={"lock_timeout_s": 1.0})}
    )
    path = Path(config.store.url.removeprefix("sqlite:///"))
    async with ExchangeServer(config) as server:
        daemon = PaperDaemon(live(config, server.port), new_run=True)
        task = asyncio.create_task(daemon.run())
        await wait_steps(config.store.url)
        held = threading.Event()
        locker = threading.Thread(target=hold_write_lock, args=(path, 15.0, held))
        locker.start()
        try:
            with pytest.raises(DaemonStoppedError, match=r"database is locked\); giving up"):
                await asyncio.wait_for(task, 120)
        finally:
            await asyncio.to_thread(locker.join)
    with Store(config.store.url) as store:  # nothing half-written: the run resumes later
        (run,) = store.list_runs()
        assert run["last_step"] is not None


async def test_a_deleted_database_stops_the_daemon_and_the_next_start_says_so(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    config = settings(tmp_path)
    path = Path(config.store.url.removeprefix("sqlite:///"))
    async with ExchangeServer(config) as server:
        daemon = PaperDaemon(live(config, server.port), new_run=True)
        task = asyncio.create_task(daemon.run())
        await wait_steps(config.store.url)
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()  # the database and its -wal/-shm files
        with pytest.raises(DaemonStoppedError, match="the database file was deleted"):
            await asyncio.wait_for(task, 120)
        again = PaperDaemon(live(config, server.port))
        task = asyncio.create_task(again.run())
        # (not opening the store here: that would create the new database before the daemon)
        await until(lambda: again.engine is not None and again.engine.stats.rows > 0,
                    "the new run trades")  # fmt: skip
        again.stop.set()
        await asyncio.wait_for(task, 60)
    assert "it is a new, empty database" in caplog.text
