"""A model-backed strategy retrained walk-forward in the paper daemon: the daemon runs the same
retraining job as a backtest, at the same instants, so a backtest of the bars it stored makes
the same decisions with the same model versions, and the same orders, fills and equity."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import pytest

from backtest.parity import backtest_of_run, compare_runs
from bot.config import load_settings
from bot.core.timeutil import HOUR_MS, iso, to_ms
from bot.store import Store
from tests.e2e.harness import bot, start_exchange, stop, write_config

pytestmark = pytest.mark.slow

START = to_ms("2024-06-01")
BARS = 600
STRATEGY = """[[strategies]]
name = "tabl"
params = { retrain_every = "240h", train_window = 900, epochs = 1, rebalance = "4h", model = { seq_len = 24, hidden = [] }, features = ["log_return", "range", "relative_volume", "momentum_5", "close_position"] }

"""  # noqa: E501 - one TOML inline table


def test_walk_forward_model_in_the_paper_daemon_equals_its_backtest(tmp_path: Path, linear_dir):
    start, until = (iso(t).replace(" ", "T") for t in (START, START + BARS * HOUR_MS))
    config = write_config(tmp_path, linear_dir, start, until, 3600 / 0.03, faults="")
    text = config.read_text()
    config.write_text(re.sub(r"\[\[strategies\]\].*?(?=\[instruments\.)", STRATEGY, text,
                             count=1, flags=re.S))  # fmt: skip
    exchange = start_exchange(config, tmp_path / "exchange.log")
    try:
        daemon = bot(config, "paper", "--new", log=tmp_path / "daemon.log")
        assert daemon.wait(300) == 0, (tmp_path / "daemon.log").read_text()[-3000:]
    finally:
        stop(exchange)
    settings = load_settings(config)
    with Store(settings.store.url) as store:
        (paper,) = [r for r in store.list_runs() if r["kind"] == "paper"]
        # the market waited for the daemon (however slowly it started): it traded all of it
        assert paper["data_start"] <= START and paper["last_step"] == START + BARS * HOUR_MS
        decisions = store.decisions(paper["id"])
        versions = [d["model_version"] for d in decisions]
        assert len(decisions) >= BARS // 4 - 1  # every 4h of the span
        assert all(v and v.startswith("tabl-") for v in versions)
        changes = [d["time"] for prev, d in pairwise(decisions)
                   if d["model_version"] != prev["model_version"]]  # fmt: skip
        assert len(changes) >= 2, "the retraining job must swap in new models as it runs"
        replay = backtest_of_run(settings, store, paper["id"])
        assert compare_runs(store, paper["id"], replay) == []
