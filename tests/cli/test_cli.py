"""The command line end to end: import data, list it, backtest from the store, inspect runs."""

import json
from pathlib import Path

from bot.cli.main import main


def run(workdir: Path, *args: str) -> int:
    return main(["--config", str(workdir / "config.toml"), *args])


def test_import_list_backtest_and_inspect_runs(workdir, capsys):
    assert run(workdir, "data", "import", str(workdir / "csv"), "--interval", "1h") == 0
    out = capsys.readouterr().out
    assert "AAAUSDT" in out and "720" in out
    assert run(workdir, "data", "import", str(workdir / "csv"), "--interval", "60") == 0
    second = capsys.readouterr().out.splitlines()
    assert all(line.split()[3] == "0" for line in second[2:])  # nothing new: idempotent

    assert run(workdir, "data", "list") == 0
    assert "2024-01-30 23:00" in capsys.readouterr().out  # last bar of the 30 days

    result = workdir / "out" / "result.json"
    plot = workdir / "out" / "equity.png"
    code = run(workdir, "backtest", "--no-progress", "--json", str(result), "--plot", str(plot))
    assert code == 0
    out = capsys.readouterr().out
    assert "Sharpe" in out or "sharpe" in out
    report = json.loads(result.read_text())
    assert report["counts"]["bars"] == 720 and report["counts"]["fills"] > 0
    assert len(report["equity_curve"]["time"]) == 720
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"

    run_id = report["run_id"]
    assert run(workdir, "runs", "list") == 0
    assert run_id in capsys.readouterr().out
    assert run(workdir, "runs", "show", run_id[:6], "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == run_id and shown["status"] == "finished"
    assert shown["counts"]["fills"] == report["counts"]["fills"]
    assert shown["config"]["strategies"][0]["name"] == "momentum"


def test_backtest_overrides_and_usage_errors(workdir, capsys):
    synthetic = ["backtest", "--no-store", "--no-progress", "--source", "synthetic"]
    params = ["--param", "fast=5", "--param", "slow=20"]
    assert run(workdir, *synthetic, "--strategy", "ma_crossover", *params) == 0
    assert "ma_crossover" in capsys.readouterr().out
    assert run(workdir, *synthetic, "--strategy", "ma_crossover", "--param", "fats=5") == 2
    assert "has no parameter 'fats'" in capsys.readouterr().err
    assert run(workdir, "backtest", "--no-store", "--strategy", "nope") == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
    assert run(workdir, "runs", "show", "zzzzzz") == 2
    assert "no run" in capsys.readouterr().err


def test_store_source_without_data_is_a_clear_error(workdir, capsys):
    assert run(workdir, "backtest", "--no-progress") == 2
    assert "the store has no 1h bars for AAAUSDT, BBBUSDT" in capsys.readouterr().err
