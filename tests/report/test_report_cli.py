"""``bot report`` and ``bot backtest --report`` from the command line."""

from __future__ import annotations

from bot.cli.main import main
from tests.backtest.test_runner import ROOT


def test_report_of_two_stored_runs_by_prefix(stored, tmp_path, capsys):
    out = tmp_path / "two.html"
    ids = [stored.momentum.run_id[:8], stored.small.run_id]
    assert main(["report", *ids, "--out", str(out), "--store", stored.url]) == 0
    assert capsys.readouterr().out == f"wrote {out} (2 runs)\n"
    html = out.read_text()
    assert stored.momentum.run_id in html and stored.small.run_id in html


def test_an_unknown_run_is_one_line_and_exit_2(stored, tmp_path, capsys):
    out = tmp_path / "none.html"
    assert main(["report", "feedbeef", "--out", str(out), "--store", stored.url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run 'feedbeef'" in err
    assert not out.exists()


def test_backtest_writes_the_report_of_its_run(linear_dir, tmp_path, capsys):
    out = tmp_path / "bt.html"
    args = ["--config", str(ROOT / "config.toml"), "backtest", "--data", str(linear_dir),
            "--symbols", "BTCUSDT,ETHUSDT", "--start", "2024-03-01", "--end", "2024-03-08",
            "--store", f"sqlite:///{tmp_path / 'bot.db'}", "--no-progress"]  # fmt: skip
    assert main([*args, "--report", str(out)]) == 0
    printed = capsys.readouterr().out
    run_id = printed.split()[1]
    assert f"wrote {out}\n" in printed and f"Run {run_id}" in out.read_text()
    assert main([*args, "--no-store", "--report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--report" in err and "--no-store" in err
