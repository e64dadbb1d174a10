"""A model on recursive features (RSI and MACD) in the paper daemon, through faults and a kill.

Live, each decision carries the features' recursions forward from the previous one
(:class:`models.features.DecisionFeatures`); a restarted daemon rebuilds them from the bars it
backfills, and a bar corrected after it was consumed makes them restart. A backtest of the bars
the run stored computes the same windows in blocks: its decisions, orders, fills and equity
must be the daemon's, value for value."""

from __future__ import annotations

import re
import signal

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
from tests.modelkit import TINY, real_panel, train_tiny

pytestmark = pytest.mark.slow

START = to_ms("2024-06-01")
BARS = 500
SPEED = 3600 / 0.05  # a bar every 50 ms of wall time


def test_recursive_features_in_a_faulty_killed_daemon_equal_its_backtest(tmp_path, linear_dir):
    assert {"rsi_14", "macd"} <= set(TINY["tabl"][1])  # the features carried forward live
    checkpoint = tmp_path / "tabl.pt"
    train_tiny("tabl", real_panel(linear_dir, "2024-01-15", "2024-05-01", SYMBOLS), checkpoint)
    faults = ALL_FAULTS.format(outage_at=iso(START + 150 * HOUR_MS).replace(" ", "T"))
    start, until = (iso(t).replace(" ", "T") for t in (START, START + BARS * HOUR_MS))
    config = write_config(tmp_path, linear_dir, start, until, SPEED, faults)
    strategy = f'[[strategies]]\nname = "tabl"\nparams = {{ checkpoint = "{checkpoint}" }}\n\n'
    config.write_text(re.sub(r"\[\[strategies\]\].*?(?=\[instruments\.)", strategy,
                             config.read_text(), count=1, flags=re.S))  # fmt: skip
    url = load_settings(config).store.url
    exchange = start_exchange(config, tmp_path / "exchange.log")
    log = tmp_path / "daemon.log"
    try:
        daemon = bot(config, "paper", "--new", log=log)
        wait_until(lambda: last_step(url) > START + 250 * HOUR_MS, "the daemon trades a while")
        daemon.send_signal(signal.SIGKILL)  # after the outage: its backfill is behind it
        daemon.wait()
        wait_until(lambda: exchange_status(config)["connections"]["open"] == 0,
                   "the exchange saw the daemon go")  # fmt: skip
        exchange_clock(config, "pause")
        final = bot(config, "paper", log=log)
        wait_until(lambda: exchange_status(config)["connections"]["open"] > 0,
                   "the daemon subscribed")  # fmt: skip
        exchange_clock(config, "resume")
        assert final.wait(400) == 0, log.read_text()[-3000:]
    finally:
        stop(exchange)
    text = log.read_text()
    assert "resuming paper run" in text and "backfilling over REST" in text
    settings = load_settings(config)
    with Store(settings.store.url) as store:
        (paper,) = [r for r in store.list_runs() if r["kind"] == "paper"]
        assert paper["last_step"] == START + BARS * HOUR_MS
        decisions = store.decisions(paper["id"])
        assert len(decisions) > 100 and decisions[0]["model_version"].startswith("tabl-")
        fills = store.get_run(paper["id"])["counts"]["fills"]
        assert fills > 50, "the model must trade, or parity is empty"
        replay = backtest_of_run(settings, store, paper["id"])
        assert compare_runs(store, paper["id"], replay) == []
