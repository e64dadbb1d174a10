"""A file a command would write where it cannot be written is refused before any work, with
exit status 2 and the flag named, not a traceback after the work is done."""

from __future__ import annotations

import pytest

from bot.cli.main import main

COMMANDS = [
    ("report", "feedbeef", "--out"),
    ("backtest", "--report"),
    ("backtest", "--json"),
    ("backtest", "--plot"),
    ("sweep", "--strategy", "momentum", "--param", "lookback=24", "--json"),
    ("sweep", "--strategy", "momentum", "--param", "lookback=24", "--report"),
    ("data", "export", "--out"),
    ("train", "tabl", "--out"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unwritable_output_is_one_usage_line(command, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as stopped:
        main([*command, str(blocker / "out.html")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {command[-1]}: cannot write {blocker / 'out.html'}: " in err
    assert "Traceback" not in err


def test_a_missing_folder_is_made(tmp_path, capsys):
    out = tmp_path / "new" / "folder" / "report.html"
    assert main(["report", "feedbeef", "--out", str(out), "--store",
                 f"sqlite:///{tmp_path / 'bot.db'}"]) == 2  # fmt: skip
    assert "no run 'feedbeef'" in capsys.readouterr().err  # the run, not the path, is wrong
    assert out.parent.is_dir()
