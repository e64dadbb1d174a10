"""``bot sweep`` end to end on a month of synthetic CSV bars, in order (no Ray)."""

import json
import sys
import types
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.feeds.synthetic import synthetic_panel
from bot.store import Store
from tests.barfiles import write_csv

CONFIG = """
[engine]
symbols = ["AAAUSDT", "BBBUSDT"]
interval = "1h"
[data]
source = "csv"
path = "csv"
funding = false
[store]
url = "sqlite:///bot.db"
[[strategies]]
name = "equal_weight"
[instruments.AAAUSDT]
qty_step = 0.01
[instruments.BBBUSDT]
qty_step = 0.01
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text(CONFIG)
    panel = synthetic_panel(("AAAUSDT", "BBBUSDT"), "1h", 24 * 30, seed=3, volatility=0.01)
    write_csv(tmp_path / "csv" / "1h", panel)
    return tmp_path


def sweep(workdir: Path, *args: str) -> int:
    return main(["--config", str(workdir / "config.toml"), "sweep", "--strategy", "momentum",
                 "--serial", "--no-progress", *args])  # fmt: skip


def test_sweep_prints_the_ranked_table_and_writes_json(workdir, capsys):
    out_json = workdir / "out" / "sweep.json"
    code = sweep(workdir, "--param", "lookback=12,24,48", "--param", "top=1",
                 "--param", "rebalance=1d", "--top", "2", "--json", str(out_json))  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["rank", "trial", "lookback", "top"]
    assert [line.split()[0] for line in lines[2:4]] == ["1", "2"]  # --top 2 rows
    assert lines[4].startswith("sweep ") and "3 trials (0 failed)" in lines[4]
    doc = json.loads(out_json.read_text())
    assert [t["rank"] for t in doc["trials"]] == [1, 2, 3]
    assert sorted(t["params"]["lookback"] for t in doc["trials"]) == [12, 24, 48]
    scores = [t["score"] for t in doc["trials"]]
    assert scores == sorted(scores, reverse=True)
    with Store(f"sqlite:///{workdir / 'bot.db'}") as store:
        for t in doc["trials"]:
            run = store.get_run(t["runs"]["all"]["run_id"])
            assert run["kind"] == "backtest" and run["status"] == "finished"
            assert run["config"]["sweep"]["id"] == doc["sweep"]
            assert run["metrics"]["sharpe"] == t["runs"]["all"]["metrics"]["sharpe"] == t["score"]


def test_folds_and_random_search(workdir, capsys):
    out_json = workdir / "sweep.json"
    code = sweep(workdir, "--param", "lookback=6:48", "--search", "random", "--trials", "3",
                 "--seed", "1", "--folds", "2", "--start", "2024-01-02", "--end", "2024-01-30",
                 "--json", str(out_json))  # fmt: skip
    assert code == 0
    assert "OOS sharpe" in capsys.readouterr().out.splitlines()[0]
    doc = json.loads(out_json.read_text())
    assert [s["name"] for s in doc["spans"]] == ["fold 1", "fold 2", "holdout"]
    assert all(set(t["runs"]) == {"fold 1", "fold 2", "holdout"} for t in doc["trials"])
    assert all(6 <= t["params"]["lookback"] <= 48 for t in doc["trials"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "lookbak=1,2"], "--param lookbak: strategy 'momentum' has no parameter"),
        (["--param", "top=1,5"], "--param top=5: strategy 'momentum': top must be between 1"),
        (["--param", "top=1:2"], "--param top: a range needs --search random or optuna"),
        (["--param", "top=1", "--search", "random"], "--trials: --search random needs"),
        (["--param", "top=1", "--worker-memory", "lots"], "--worker-memory 'lots': write a size"),
        (["--param", "top=1", "--folds", "2"], "--folds needs a period"),  # no start/end
    ],
)
def test_bad_input_exits_2_with_one_line(workdir, capsys, args, message):
    assert sweep(workdir, *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err


def test_optuna_search_on_store_bars(workdir, capsys):
    folder = str(workdir / "csv" / "1h")
    assert (
        main(
            ["--config", str(workdir / "config.toml"), "data", "import", folder, "--interval", "1h"]
        )
        == 0
    )
    out_json = workdir / "sweep.json"
    args = ["--param", "lookback=6:48:log", "--param", "top=1,2", "--search", "optuna",
            "--trials", "4", "--workers", "2", "--seed", "3", "--source", "store"]  # fmt: skip
    assert sweep(workdir, *args, "--json", str(out_json)) == 0
    first = json.loads(out_json.read_text())
    assert sweep(workdir, *args, "--json", str(out_json)) == 0
    again = json.loads(out_json.read_text())
    assert len(first["trials"]) == 4 and all(t["error"] is None for t in first["trials"])
    assert [t["params"] for t in first["trials"]] == [t["params"] for t in again["trials"]]
    assert [t["score"] for t in first["trials"]] == [t["score"] for t in again["trials"]]


def test_report_gets_the_best_trial_runs_and_the_trial_table(workdir, capsys, monkeypatch):
    calls = []

    def write_report(runs, out, *, title=None, tables=None):
        calls.append((runs, out, title, tables))
        return out

    monkeypatch.setitem(sys.modules, "backtest.html_report",
                        types.SimpleNamespace(write_report=write_report))  # fmt: skip
    report = workdir / "best.html"
    args = ["--param", "lookback=12,24", "--folds", "2", "--start", "2024-01-02", "--end",
            "2024-01-30", "--report", str(report), "--json", str(workdir / "s.json")]  # fmt: skip
    assert sweep(workdir, *args) == 0
    best = json.loads((workdir / "s.json").read_text())["trials"][0]
    ((runs, out, title, tables),) = calls
    assert out == report and f"best trial {best['trial']}" in title
    assert [r.run_id for r in runs] == [
        best["runs"][s]["run_id"] for s in ("holdout", "fold 1", "fold 2")
    ]
    trials = tables["Sweep trials"]
    assert len(trials) == 2 and {"IS sharpe", "OOS sharpe"} <= set(trials.columns)


def test_real_html_report(workdir, capsys):
    report = workdir / "best.html"
    assert sweep(workdir, "--param", "lookback=12,24", "--report", str(report)) == 0
    assert "Sweep trials" in report.read_text()
