"""Restarts in mid-order: the live daemon dies where an order is half done — at five named
points of an order's life, and at ten SIGKILLs at seeded random moments — and the daemon that
starts after it leaves one order per ``orderLinkId`` and books equal to the exchange's: its
positions are the exchange's exactly, every exchange execution is stored exactly once, every
exchange order is in the store's order ledger (under the exchange's id), and no (decision,
symbol, leg) has more than one first attempt — nothing doubled, nothing lost.

The daemon that dies runs in a process of its own (:mod:`tests.live.crash_runner`); the local
exchange runs here and outlives it, holding what the dead daemon did. Market time stands
still while no daemon is subscribed, so a slow restart on a busy machine misses nothing and
every wait is bounded in time, never measured."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from backtest.parity import backtest_of_run, compare_runs
from bot.config import Settings
from bot.core.timeutil import HOUR_MS
from bot.exchange.server import ExchangeServer
from bot.live.daemon import LiveDaemon
from bot.store import Store
from tests.conftest import ROOT
from tests.live.crash_runner import CRASH_STATUS, POINTS
from tests.live.test_live_daemon import account, assert_books_equal, daemon_for, settings

pytestmark = pytest.mark.slow

#: an order whose outcome a crash left unknown is re-sent (same orderLinkId) by the next
#: daemon within this window of its intent: wide, so a slow restart on a busy machine still
#: does (past it the executor looks the order up until the exchange knows it, forever)
RESEND_WINDOW_S = 300.0
WAIT_S = 180.0  # the most any one wait may take (a busy machine), never how long it should
FLIP = {"name": "momentum", "params": {"lookback": 3, "top": 1, "rebalance": "bar"}}
UNRESOLVED = ("Unknown", "New", "PartiallyFilled")


# -- running a daemon in a process of its own ----------------------------------------------------
async def spawn(tmp_path: Path, server: ExchangeServer, kwargs: dict, log: Path,
                **spec: Any) -> asyncio.subprocess.Process:  # fmt: skip
    """Start :mod:`tests.live.crash_runner` with ``spec`` (see its docstring)."""
    defaults = {"tmp_path": str(tmp_path), "port": server.port, "settings": kwargs,
                "new_run": False, "run_id": None, "resend_window_s": RESEND_WINDOW_S}  # fmt: skip
    spec = defaults | spec
    path = tmp_path / f"spec-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.live.crash_runner", str(path),
            stdout=out, stderr=out, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"


async def ended(process: asyncio.subprocess.Process, log: Path) -> int:
    try:
        return await asyncio.wait_for(process.wait(), WAIT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the daemon did not end in {WAIT_S:.0f} s:\n{tail(log)}") from None


async def wait_until(condition, what: str, process=None, log: Path | None = None) -> None:
    """Poll ``condition`` (run on a thread: it may read the store) until it holds; fails
    after :data:`WAIT_S`, or at once when ``process`` ended meanwhile."""
    deadline = time.monotonic() + WAIT_S
    while not await asyncio.to_thread(condition):
        if process is not None and process.returncode is not None:
            raise AssertionError(f"the daemon ended before {what}:\n{tail(log)}")
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


async def resume_when_subscribed(server: ExchangeServer) -> None:
    """Let market time run again once a daemon's public stream is connected."""
    deadline = time.monotonic() + WAIT_S
    while not server.state.sessions and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    server.state.clock.resume()


async def resume_here(config: Settings, server: ExchangeServer, run_id: str) -> LiveDaemon:
    """Resume ``run_id`` in this process and run it to ``paper.until``, market time running
    again once it subscribed; the daemon, for the checks."""
    daemon = daemon_for(config, server, run_id=run_id, resend_window_s=RESEND_WINDOW_S)
    resume = asyncio.create_task(resume_when_subscribed(server))
    try:
        assert await asyncio.wait_for(daemon.run(), 300) == run_id
    finally:
        resume.cancel()
    return daemon


async def gone(server: ExchangeServer) -> None:
    """Market time stops with the daemon (bars a dead daemon misses are not at stake here),
    and the exchange has seen its connections close before the next one starts."""
    server.state.clock.pause()
    deadline = time.monotonic() + WAIT_S
    while server.state.sessions:
        assert time.monotonic() < deadline, "the exchange never saw the daemon go"
        await asyncio.sleep(0.02)


def the_run(store: Store) -> str:
    (run,) = store.list_runs()  # every restart resumed the one run
    return run["id"]


# -- what must hold after every restart ----------------------------------------------------------
def assert_equal_books(server: ExchangeServer, daemon: LiveDaemon, store: Store, run_id: str):
    """The issue's invariants, plus what the next restart would rebuild the books from."""
    assert_books_equal(server, daemon, store, run_id)
    per_leg = Counter((o["decision_time"], o["symbol"], o["leg"])
                      for o in store.order_ledger(run_id) if o["attempt"] == 0)  # fmt: skip
    assert max(per_leg.values()) == 1, [k for k, n in per_leg.items() if n > 1]
    # the stored executions alone add up to the exchange's positions (the next replay's books)
    stored: Counter[str] = Counter()
    for fill in store.fills(run_id):
        stored[fill["symbol"]] += float(fill["qty"]) * (1 if fill["side"] == "Buy" else -1)
    held = {p.symbol: float(p.size) for p in account(server).positions.values() if p.size}
    assert {s: q for s, q in stored.items() if abs(q) > 1e-9} == pytest.approx(held, abs=1e-9)


def exchange_orders(server: ExchangeServer, link_id: str) -> list:
    return [o for o in account(server).orders.values() if o.link_id == link_id]


def assert_hazard(point: str, crash: dict, server: ExchangeServer, store: Store, run_id: str):
    """The crash left what its name says (else the test would prove nothing about it)."""
    assert crash["point"] == point
    link_id = crash["link_id"]
    (row,) = [o for o in store.order_ledger(run_id) if o["order_link_id"] == link_id]
    stored = {f["exec_id"] for f in store.fills(run_id)}
    if point == "intent_stored":  # written ahead, never sent
        assert row["status"] == "Unknown"
        assert exchange_orders(server, link_id) == []
    elif point in ("request_sent", "response_received"):  # placed; the store does not know
        assert row["status"] == "Unknown" and row["order_id"] is None
        assert len(exchange_orders(server, link_id)) == 1
    else:  # filled on the exchange; the execution is in no store row
        (order,) = exchange_orders(server, link_id)
        assert order.status == "Filled"
        assert crash["exec_id"] in {e.exec_id for e in account(server).executions}
        assert crash["exec_id"] not in stored  # (the ledger may say Filled: the order's
        # update can come before its execution)


# -- the tests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("point", POINTS)
async def test_a_crash_at_a_named_point_of_an_order_leaves_equal_books(tmp_path, point):
    """The daemon dies at ``point`` of its third order leg (a flip strategy: reduce-only closes
    and opens, positions held); the next daemon resolves that leg through its orderLinkId —
    re-sent once if it never went out, found if it did, its execution fetched and booked once
    — and trades on."""
    # delayed fills: the exchange fills while the daemon waits, so it dies with the order
    # acknowledged and filled and its execution unbooked
    faults = {"delayed_fill_probability": 1.0, "fill_delay_ms": 200} if point in (
        "filled_unseen", "booked_unflushed") else {}  # fmt: skip
    kwargs = {"until_hours": 14, "strategy": FLIP, **faults}
    config = settings(tmp_path, **kwargs)
    log = tmp_path / "daemon.log"
    async with ExchangeServer(config) as server:
        process = await spawn(tmp_path, server, kwargs, log, new_run=True, point=point, nth=3,
                              marker=str(tmp_path / "crash.json"))  # fmt: skip
        assert await ended(process, log) == CRASH_STATUS, tail(log)
        await gone(server)
        crash = json.loads((tmp_path / "crash.json").read_text())
        with Store(config.store.url) as store:
            run_id = the_run(store)
            assert_hazard(point, crash, server, store, run_id)
            decided = len(store.decisions(run_id))

        daemon = await resume_here(config, server, run_id)
        with Store(config.store.url) as store:
            assert len(store.decisions(run_id)) > decided, "the restarted daemon traded on"
            (row,) = [o for o in store.order_ledger(run_id)
                      if o["order_link_id"] == crash["link_id"]]  # fmt: skip
            assert row["status"] not in UNRESOLVED, row  # resolved by the next daemon
            assert len(exchange_orders(server, crash["link_id"])) == 1  # placed exactly once
            assert_equal_books(server, daemon, store, run_id)
            replay = await asyncio.to_thread(backtest_of_run, config, store, run_id)
            assert compare_runs(store, run_id, replay, tables=("decisions",)) == []


KILLS = 10


async def test_ten_random_sigkills_while_trading_leave_equal_books(tmp_path):
    """Ten daemons in turn are SIGKILLed at a seeded random moment once they trade — half of
    them just after an order was seen in flight (written ahead, not yet settled; fills are
    delayed so orders stay in flight a while) — and each next daemon resumes the run; the last
    runs to ``paper.until``. The books are equal at the end and the decisions are those of a
    backtest of the stored bars (every restart rebuilt the strategies' state exactly)."""
    rng = random.Random(20240611)
    kwargs = {"until_hours": 2000, "strategy": FLIP, "delayed_fill_probability": 0.5,
              "fill_delay_ms": 300, "ws_drop_probability": 0.05}  # fmt: skip
    config = settings(tmp_path, **kwargs)
    log = tmp_path / "daemon.log"
    in_flight_at_kill = []
    async with ExchangeServer(config) as server:
        store = await asyncio.to_thread(Store, config.store.url)
        try:
            run_id = None
            for kill in range(KILLS):
                rows = (await asyncio.to_thread(store.order_ledger, run_id)) if run_id else []
                before = len(rows)
                process = await spawn(tmp_path, server, kwargs, log, new_run=kill == 0,
                                      run_id=run_id)  # fmt: skip
                try:
                    await wait_until(lambda: bool(server.state.sessions), "it subscribed",
                                     process, log)  # fmt: skip
                    server.state.clock.resume()
                    if run_id is None:
                        await wait_until(lambda: bool(store.list_runs()), "it opened its run",
                                         process, log)  # fmt: skip
                        run_id = the_run(store)
                    await wait_until(lambda b=before, r=run_id: len(store.order_ledger(r)) > b,
                                     "it traded", process, log)  # fmt: skip
                    if kill % 2:  # anywhere while it trades
                        await asyncio.sleep(rng.uniform(0.0, 1.0))
                    else:  # just after an order was seen in flight (if one is, soon)
                        deadline = time.monotonic() + 20
                        while time.monotonic() < deadline and not await asyncio.to_thread(
                            store.unresolved_orders, run_id
                        ):
                            await asyncio.sleep(0.01)
                        await asyncio.sleep(rng.uniform(0.0, 0.1))
                    assert process.returncode is None, f"it ended unkilled:\n{tail(log)}"
                    process.send_signal(signal.SIGKILL)
                finally:
                    if process.returncode is None:
                        process.kill()
                    await process.wait()
                await gone(server)
                unresolved = await asyncio.to_thread(store.unresolved_orders, run_id)
                in_flight_at_kill.append(len(unresolved))

            # the last daemon runs here, to paper.until a dozen bars on
            until = (server.state.clock.now() // HOUR_MS + 12) * HOUR_MS
            last = config.model_copy(update={"paper": config.paper.model_copy(
                update={"until": str(until)})})  # fmt: skip
            decided = len(await asyncio.to_thread(store.decisions, run_id))
            daemon = await resume_here(last, server, run_id)
            assert await asyncio.to_thread(the_run, store) == run_id
            assert len(await asyncio.to_thread(store.decisions, run_id)) > decided
            assert any(in_flight_at_kill), f"no kill caught an order in flight: {in_flight_at_kill}"
            assert_equal_books(server, daemon, store, run_id)
            replay = await asyncio.to_thread(backtest_of_run, last, store, run_id)
            assert compare_runs(store, run_id, replay, tables=("decisions",)) == []
        finally:
            await asyncio.to_thread(store.close)
    text = log.read_text(errors="replace")
    assert text.count("resuming live run") == KILLS - 1, tail(log)
    assert "replay diverged" not in text
