"""``bot runs list | head``: a reader that leaves early ends the command quietly."""

from __future__ import annotations

import subprocess
import sys

from backtest.runner import run_backtest
from bot.config import load_settings
from bot.store import Store
from tests.conftest import ROOT


def test_a_closed_pipe_is_not_a_traceback(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    settings = load_settings(
        ROOT / "config.toml",
        {"data.source": "synthetic", "engine.symbols": ["BTCUSDT"], "data.synthetic_bars": 50},
    )
    with Store(url) as store:
        for _ in range(3):
            run_backtest(settings, store=store)
    command = [sys.executable, "-m", "bot", "--config", str(ROOT / "config.toml"),
               "runs", "list", "--store", url]  # fmt: skip
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # the reader leaves before a line is written
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0, err
    assert err == ""
