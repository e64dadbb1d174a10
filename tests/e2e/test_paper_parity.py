"""The proof of the design: a paper daemon streaming real bars through every fault stores
exactly what a backtest of the same bars produces — and so does one killed ten times."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from backtest.parity import backtest_of_run, compare_runs
from bot.config import load_settings
from bot.core.timeutil import HOUR_MS, iso, to_ms
from bot.store import Store
from tests.e2e.harness import (
    ALL_FAULTS,
    SYMBOLS,
    bot,
    exchange_clock,
    exchange_status,
    last_step,
    start_exchange,
    stop,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.slow

START = to_ms("2024-03-01")
BARS = 2100  # the market waits for the daemon's subscription: it trades all of them
SPEED = 3600 / 0.03  # a bar every 30 ms of wall time


def setup(tmp_path: Path, linear_dir: Path, speed: float = SPEED) -> Path:
    until = START + BARS * HOUR_MS
    faults = ALL_FAULTS.format(outage_at=iso(START + 700 * HOUR_MS).replace(" ", "T"))
    return write_config(tmp_path, linear_dir, iso(START).replace(" ", "T"),
                        iso(until).replace(" ", "T"), speed, faults)  # fmt: skip


def check_parity(config: Path, linear_dir: Path) -> str:
    settings = load_settings(config)
    with Store(settings.store.url) as store:
        (paper,) = [r for r in store.list_runs() if r["kind"] == "paper"]
        run = store.get_run(paper["id"])
        steps = (run["last_step"] - run["data_start"]) // HOUR_MS
        assert steps >= 2000, f"only {steps} steps traded"
        assert run["last_step"] == START + BARS * HOUR_MS
        stale = [e for e in store.events(run["id"]) if e["kind"] == "stale_step"]
        assert stale == [], "faults must be healed by backfill, not decided around"
        # the stored bars are the exchange's, value for value
        for symbol in SYMBOLS:
            stored = store.load_klines(symbol, "1h", run["data_start"], run["last_step"])
            source = pd.read_csv(linear_dir / "1h" / f"{symbol}.csv")
            source = source[(source.timestamp_ms >= run["data_start"])
                            & (source.timestamp_ms < run["last_step"])]  # fmt: skip
            assert stored["start"].tolist() == source["timestamp_ms"].tolist()
            for field in ("open", "high", "low", "close", "volume"):
                assert stored[field].tolist() == source[field].tolist(), (symbol, field)
        replay = backtest_of_run(settings, store, run["id"])
        problems = compare_runs(store, run["id"], replay)
        assert problems == []
        orders = store.orders(run["id"])
        assert len(orders) == len({(o["decision_time"], o["symbol"]) for o in orders})
        assert run["counts"]["fills"] > 200 and run["counts"]["decisions"] > 100
        return run["id"]


def test_paper_daemon_through_every_fault_equals_the_backtest(tmp_path, linear_dir):
    config = setup(tmp_path, linear_dir)
    exchange = start_exchange(config, tmp_path / "exchange.log")
    try:
        daemon = bot(config, "paper", "--new", log=tmp_path / "daemon.log")
        assert daemon.wait(400) == 0, (tmp_path / "daemon.log").read_text()[-3000:]
        faults = exchange_status(config)["faults"]
    finally:
        stop(exchange)
    for kind in ("drops", "duplicates", "reordered", "delayed", "malformed", "outage_refusals",
                 "rate_limited", "http_errors"):  # fmt: skip
        assert faults.get(kind, 0) > 0, f"fault {kind} never happened: {faults}"
    log = (tmp_path / "daemon.log").read_text()
    assert "backfilling over REST" in log and "reconnecting" in log
    check_parity(config, linear_dir)


def test_killed_ten_times_the_daemon_ends_where_an_uninterrupted_run_does(tmp_path, linear_dir):
    """Each kill lands while the daemon trades; the market runs on for a while (bars are
    missed), then pauses until the next daemon has subscribed, so the ten kills fit in the
    run however slowly the machine restarts a daemon."""
    config = setup(tmp_path, linear_dir, speed=3600 / 0.05)
    url = load_settings(config).store.url
    rng = random.Random(2024)
    exchange = start_exchange(config, tmp_path / "exchange.log")
    log = tmp_path / "daemon.log"
    try:
        args = ["paper", "--new"]
        for _ in range(10):
            before = last_step(url)
            daemon = bot(config, *args, log=log)
            args = ["paper"]  # later starts resume the run
            wait_until(lambda: exchange_status(config)["connections"]["open"] > 0,
                       "the daemon subscribed")  # fmt: skip
            exchange_clock(config, "resume")
            wait_until(lambda b=before: last_step(url) > b, "the daemon trades")  # fmt: skip
            time.sleep(rng.uniform(0.0, 1.5))
            assert daemon.poll() is None, "the run ended before ten kills"
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            wait_until(lambda: exchange_status(config)["connections"]["open"] == 0,
                       "the exchange saw the daemon go")  # fmt: skip
            time.sleep(rng.uniform(0.1, 1.0))  # bars go by while it is down
            exchange_clock(config, "pause")
        final = bot(config, "paper", log=log)
        wait_until(lambda: exchange_status(config)["connections"]["open"] > 0,
                   "the daemon subscribed")  # fmt: skip
        exchange_clock(config, "resume")
        assert final.wait(300) == 0, log.read_text()[-3000:]
    finally:
        stop(exchange)
    text = log.read_text()
    assert text.count("resuming paper run") == 10  # every restart resumed the run
    assert " 0 diverged" in text and "replay diverged" not in text  # state rebuilt exactly
    check_parity(config, linear_dir)
