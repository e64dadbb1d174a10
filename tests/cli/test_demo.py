"""``bot demo``: by default it fits a small TABL model before its market opens, trades it through
the local exchange, prints each decision with the model's version and what it attended to, and
ends with the backtest of the same bars agreeing value for value; ``--strategy equal_weight``
trades equal weights as before. Synthetic bars (no data folder), fifty bars a second."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.cli.demo_model import tabl_headline
from bot.cli.main import main
from bot.core.timeutil import HOUR_MS
from bot.feeds.loaders import align
from bot.store import Store
from models.explain import summarise
from strategies.model_backed import TABLStrategy

SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
CONFIG = """
[engine]
symbols = {symbols}
interval = "1h"
[data]
path = "{data}"
[[strategies]]
name = "momentum"
{instruments}
"""
BARS = 48
SPEED = 50 * 3600  # fifty bars a second
DECISION = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d  decide  tabl \[(?P<version>tabl-[0-9a-f]{12})\]: .+"
    r"  \| (?P<note>TABL: most attended bar t-\d+ \(\d+%\))$"
)


@pytest.fixture(autouse=True)
def bot_log_level() -> Iterator[None]:
    """The demo turns the bot's logs up to INFO; later tests get the level they had."""
    logger = logging.getLogger("bot")
    level = logger.level
    yield
    logger.setLevel(level)


def demo(tmp_path: Path, *args: str) -> int:
    instruments = "".join(
        f"[instruments.{s}]\nqty_step = 0.01\nmin_order_qty = 0.01\n" for s in SYMBOLS
    )
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(symbols=SYMBOLS, data=tmp_path / "no-data",
                                    instruments=instruments))  # fmt: skip
    return main(["--config", str(config), "demo", "--bars", str(BARS), "--speed", str(SPEED),
                 "--store", str(tmp_path / "demo.db"), *args])  # fmt: skip


def paper_run(store: Store) -> dict:
    (run,) = [r for r in store.list_runs() if r["kind"] == "paper"]
    return run


def test_the_demo_trades_a_model_fitted_at_start_up_and_says_what_it_attended_to(
    tmp_path: Path, capsys
):
    assert demo(tmp_path) == 0
    out = capsys.readouterr().out
    fitted = re.search(r"^model: tabl fitted on 720 bars .* \(seed 7, \d+ epochs\): "
                       r"(tabl-[0-9a-f]{12}), (\S+)$", out, re.M)  # fmt: skip
    assert fitted, out
    version, checkpoint = fitted.group(1), Path(fitted.group(2))
    assert checkpoint == tmp_path / "demo-tabl.pt"
    lines = [line for line in out.splitlines() if "  decide  " in line]
    matches = [DECISION.match(line) for line in lines]
    assert lines and all(matches), "\n".join(lines)
    assert {m["version"] for m in matches} == {version}
    assert "PARITY FAILED" not in out
    assert "parity: the backtest" in out and "value for value" in out

    with Store(f"sqlite:///{tmp_path / 'demo.db'}") as store:
        run = paper_run(store)
        decisions = store.decisions(run["id"])
        frames = {s: store.load_klines(s, "1h") for s in SYMBOLS}
        assert any(store.fills(run["id"]))  # it traded
    assert len(decisions) == len(lines) >= BARS // 4 - 1  # every 4h
    assert [d["model_version"] for d in decisions] == [version] * len(decisions)

    # each note is the model's attention on that decision's own window, read from the bars
    # the daemon stored: the note looked at the bars the decision saw, not a neighbour's
    strategy = TABLStrategy(SYMBOLS, checkpoint=str(checkpoint))
    serving = strategy.serving
    bars = align(frames, SYMBOLS, "1h")
    rows = np.searchsorted(bars.starts, [d["time"] - HOUR_MS for d in decisions])
    inputs = strategy.model_inputs(serving, bars.values.astype(float), bars.starts, rows)
    a = len(SYMBOLS)
    expected = [
        tabl_headline(summarise(serving.model, inputs[i * a : (i + 1) * a].to(serving.dtype), a),
                      SYMBOLS)
        for i in range(len(decisions))
    ]  # fmt: skip
    assert [m["note"] for m in matches] == expected


def test_equal_weight_is_still_an_option(tmp_path: Path, capsys):
    assert demo(tmp_path, "--strategy", "equal_weight") == 0
    out = capsys.readouterr().out
    assert out.startswith("demo: equal_weight on AAAUSDT, BBBUSDT, CCCUSDT")
    assert "model:" not in out and not (tmp_path / "demo-equal_weight.pt").exists()
    lines = [line for line in out.splitlines() if "  decide  " in line]
    assert lines
    assert all(re.search(r"  decide  equal_weight: (\w+ \+33\.3%(, )?){3}$", line)
               for line in lines), lines  # fmt: skip
    assert "PARITY FAILED" not in out and "parity: the backtest" in out


def test_the_tabl_note_counts_bars_back_from_the_one_that_just_closed():
    temporal = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.5, 0.2, 0.2]])  # oldest bar first
    assert tabl_headline({"temporal": temporal}, ["A", "B"]) == (
        "TABL: most attended bar t-2 (35%)"
    )
