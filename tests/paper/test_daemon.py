"""The paper daemon in process against the local exchange: start-up errors, unreachable
venues, clean stops and resuming a stopped run."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from backtest.parity import backtest_of_run, compare_runs
from bot.config import parse_settings
from bot.core.timeutil import HOUR_MS
from bot.exchange.server import ExchangeServer
from bot.paper.daemon import PaperDaemon, StartupError
from bot.store import Store

SYMBOLS = ["AAAUSDT", "BBBUSDT"]
START = 1_706_745_600_000  # 2024-02-01


def settings(tmp_path, symbols=SYMBOLS, port: int = 0):
    momentum = {"name": "momentum", "params": {"lookback": 12, "top": 1, "rebalance": "bar"}}
    venue = {"target": "local", "reconnect_initial_s": 0.05, "reconnect_max_s": 0.2,
             "request_timeout_s": 2.0, "max_retries": 1}  # fmt: skip
    exchange = {"port": port, "speed": 3600 / 0.05, "source": "synthetic", "seed": 4,
                "start": str(START + 30 * 24 * HOUR_MS)}  # fmt: skip
    return parse_settings(
        {
            "engine": {"symbols": symbols, "interval": "1h", "grace_ms": 5000},
            "data": {"source": "synthetic", "synthetic_bars": 24 * 90, "synthetic_seed": 3},
            "strategies": [momentum],
            "instruments": {s: {"qty_step": 0.01, "tick_size": 0.01} for s in symbols},
            "store": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "venue": venue,
            "paper": {"heartbeat_s": 1.0},
            "exchange": exchange,
        },
        "test",
    )


def live(config, port: int):
    return config.model_copy(update={"exchange": config.exchange.model_copy(update={"port": port})})


def last_step(url: str) -> int:
    """The newest run's last committed step (0 before there is one)."""
    with Store(url) as store:
        runs = store.list_runs()
        return (runs[0]["last_step"] or 0) if runs else 0


async def wait_steps(url: str, after: int = 0, what: str = "the daemon trades") -> int:
    """Wait (generously: a busy machine is slow) until the run's last step passes ``after``."""
    deadline = time.monotonic() + 120
    while (step := await asyncio.to_thread(last_step, url)) <= after:
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.1)
    return step


async def test_a_symbol_the_venue_does_not_list_is_a_clear_start_up_error(tmp_path):
    async with ExchangeServer(settings(tmp_path)) as server:
        wanted = live(settings(tmp_path, symbols=[*SYMBOLS, "NOPEUSDT"]), server.port)
        with pytest.raises(StartupError, match=r"NOPEUSDT.*check engine.symbols"):
            await PaperDaemon(wanted).run()


async def test_an_unreachable_venue_is_retried_until_stopped(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    daemon = PaperDaemon(live(settings(tmp_path), port=1))  # nothing listens on port 1
    task = asyncio.create_task(daemon.run())

    def retries() -> int:
        return sum("venue unreachable at start-up" in r.message for r in caplog.records)

    deadline = time.monotonic() + 120
    while retries() < 2:  # retried, not given up
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.05)
    daemon.stop.set()
    assert await asyncio.wait_for(task, 30) == ""


async def test_a_stopped_run_resumes_where_it_stopped_and_equals_its_backtest(tmp_path):
    config = settings(tmp_path)
    async with ExchangeServer(config) as server:
        first = PaperDaemon(live(config, server.port), new_run=True)
        task = asyncio.create_task(first.run())
        begun = await wait_steps(config.store.url)
        await wait_steps(config.store.url, begun + 20 * HOUR_MS, "20 steps are traded")
        first.stop.set()
        run_id = await asyncio.wait_for(task, 60)
        with Store(config.store.url) as store:
            stopped = store.get_run(run_id)
        assert stopped["status"] == "stopped" and stopped["last_step"] is not None
        steps_before = stopped["counts"]["equity"]

        await asyncio.sleep(1)  # the market moves on while the daemon is down
        second = PaperDaemon(live(config, server.port))  # no --new: resumes
        task = asyncio.create_task(second.run())
        await wait_steps(config.store.url, stopped["last_step"] + 25 * HOUR_MS, "it resumed")
        second.stop.set()
        assert await asyncio.wait_for(task, 60) == run_id

    with Store(config.store.url) as store:
        resumed = store.get_run(run_id)
        assert resumed["counts"]["equity"] > steps_before + 20
        assert [r["id"] for r in store.list_runs()] == [run_id]
        replay = await asyncio.to_thread(backtest_of_run, config, store, run_id)
        assert compare_runs(store, run_id, replay) == []


async def test_a_run_that_reaches_until_compares_its_last_bars_with_the_venue(tmp_path, caplog):
    """paper.until is a normal end, not an interruption: the bars the stream had no time to
    check against the venue's REST record are checked before the daemon stops."""
    caplog.set_level(logging.INFO)
    config = settings(tmp_path)
    until = START + 30 * 24 * HOUR_MS + 40 * HOUR_MS
    config = config.model_copy(
        update={"paper": config.paper.model_copy(update={"until": str(until)})}
    )
    async with ExchangeServer(config) as server:
        run_id = await asyncio.wait_for(
            PaperDaemon(live(config, server.port), new_run=True).run(), 120
        )
    assert run_id
    messages = [r.getMessage() for r in caplog.records]
    reached = next(i for i, m in enumerate(messages) if m.startswith("reached "))
    audits = [m for m in messages[reached:] if "recent bars with the venue's record" in m]
    assert audits == ["compared 82 recent bars with the venue's record: 0 corrected"]  # 2 × 41


async def test_a_start_up_error_hands_the_run_back(tmp_path):
    config = settings(tmp_path)
    async with ExchangeServer(config) as server:
        first = PaperDaemon(live(config, server.port), new_run=True)
        task = asyncio.create_task(first.run())
        await wait_steps(config.store.url)
        first.stop.set()
        run_id = await asyncio.wait_for(task, 60)
        # resumed with a symbol the venue does not list: refused after claiming the run
        wrong = settings(tmp_path, symbols=[*SYMBOLS, "NOPEUSDT"])
        with pytest.raises(StartupError):
            await PaperDaemon(live(wrong, server.port), run_id=run_id).run()
    with Store(config.store.url) as store:
        assert store.lease_holder(run_id) is None  # the next daemon need not wait for it
