"""What a person sees: the demo prints one line per event they care about, keeps routine lines
in its log file (or shows them with -v), and counts trades apart from funding settlements."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.store import Store
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

CONFIG = """
[engine]
symbols = ["{a}", "{b}"]
interval = "1h"
[data]
path = "{data}"
[[strategies]]
name = "equal_weight"
[instruments.{a}]
qty_step = 0.001
min_order_qty = 0.001
[instruments.{b}]
qty_step = 0.001
min_order_qty = 0.001
"""
#: Lines each routine INFO record writes, which the terminal must not show by default.
ROUTINE = ("spans missing", "store open", "fetching bars", "summary ")
#: A line the bot prints for an event: a market time or a wall-clock time, then the event.
EVENT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? ")


def demo(tmp_path: Path, *flags: str, data: Path | None = None) -> subprocess.CompletedProcess:
    """``bot demo`` of equal weights on two symbols in a child process (a terminal of its own):
    real BTC and ETH bars from ``data``, or synthetic ones."""
    config = tmp_path / "config.toml"
    real = ("BTCUSDT", "ETHUSDT") if data else ("AAAUSDT", "BBBUSDT")
    config.write_text(CONFIG.format(data=data or tmp_path / "no-data", a=real[0], b=real[1]))
    command = [sys.executable, "-m", "bot", *flags, "--config", str(config), "demo",
               "--strategy", "equal_weight", "--bars", "24", "--speed", str(50 * 3600),
               "--store", str(tmp_path / "demo.db")]  # fmt: skip
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_demo_shows_events_keeps_routine_lines_in_its_log_and_counts_trades(
    tmp_path, linear_dir, capsys
):
    """On real bars, whose funding settles every eight hours."""
    done = demo(tmp_path, data=linear_dir)
    shown = done.stdout + done.stderr
    assert not [line for line in shown.splitlines() if any(r in line for r in ROUTINE)], shown
    assert " INFO " not in shown  # no log-record noise: events read as sentences
    assert f"log: {tmp_path / 'demo.log'}" in shown
    events = [line for line in shown.splitlines() if EVENT.match(line)]
    assert any("new paper run" in line for line in events)
    assert any("  decide  equal_weight" in line for line in events)
    assert any("  fill    " in line for line in events)
    kept = (tmp_path / "demo.log").read_text()
    assert all(r in kept for r in ROUTINE[:3]), kept  # nothing was lost: it is in the file

    (summary,) = re.findall(r"(\d+) decisions, (\d+) trades, (\d+) funding settlements", shown)
    with Store(f"sqlite:///{tmp_path / 'demo.db'}") as store:
        (run,) = [r for r in store.list_runs() if r["kind"] == "paper"]
        kinds = Counter(f["exec_type"] for f in store.fills(run["id"]))
        decisions = len(store.decisions(run["id"]))
    assert kinds["Trade"] > 0 and kinds["Funding"] > 0
    assert summary == (str(decisions), str(kinds["Trade"]), str(kinds["Funding"]))
    fills_shown = [line for line in events if "  fill    " in line]
    assert len(fills_shown) == kinds["Trade"]  # one line per trade, funding on its own lines

    # `bot runs show` of the paper run the demo names: counted the same way, metrics so far
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert f"Inspect: bot runs show {run['id']} --store {url}" in shown
    assert main(["runs", "show", run["id"], "--store", url]) == 0
    details = capsys.readouterr().out
    assert f"{kinds['Trade']} trades, {kinds['Funding']} funding settlements" in details
    assert re.search(r"data       \S+ \S+ → \S+ \S+", details)  # through its last step
    assert re.search(r"Sharpe ratio +-?\d", details)


def test_verbose_shows_the_routine_lines_too(tmp_path):
    done = demo(tmp_path, "-v")
    shown = done.stdout + done.stderr
    assert "spans missing" in shown and "store open" in shown
