"""Every user mistake on the command line: exit status 2 and one line naming the flag or key,
never a traceback, and nothing half done."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.main import main
from bot.store import Store
from tests.bot.test_config import SHIPPED

SYNTHETIC = ["backtest", "--no-store", "--no-progress", "--source", "synthetic"]


def fails(capsys, config: Path, *args: str) -> str:
    """Run ``bot`` expecting exit 2; the one line it printed to stderr."""
    assert main(["--config", str(config), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("bot: ") and "Traceback" not in err[0]
    return err[0].removeprefix("bot: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cash", "inf"],
         "--cash (portfolio.initial_cash): Input should be a finite number (got inf)"),
        (["--cash", "nan"], "--cash (portfolio.initial_cash): Input should be a finite number"),
        (["--cash", "1e300"],
         "--cash (portfolio.initial_cash): Input should be less than or equal to 10000000000"),
        (["--fee-bp=-inf"], "--fee-bp (portfolio.fee_bp): Input should be a finite number"),
        (["--threshold", "nan"],
         "--threshold (portfolio.rebalance_threshold): Input should be a finite number"),
        (["--max-drawdown", "inf"], "--max-drawdown (risk.max_drawdown): Input should be a fin"),
        (["--block-rows", "0"], "--block-rows (engine.block_rows): Input should be greater"),
        (["--interval", "7x"], "--interval (engine.interval): unknown interval '7x'"),
        (["--symbols", "BTCUSDT,btc-usdt"], "--symbols (engine.symbols): symbol 'BTC-USDT'"),
        (["--store", "::nonsense"], "--store (store.url): not a database URL"),
    ],
)  # fmt: skip
def test_bad_backtest_flags_name_the_flag_and_the_key(workdir, capsys, args, message):
    assert fails(capsys, workdir / "config.toml", *SYNTHETIC, *args).startswith(message)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["lookback=1e400"], "--param lookback=1e400: not a finite number"),
        (["lookback=nan"], "--param lookback=nan: not a finite number"),
        (["lookback=[1, inf]"], "--param lookback=[1, inf]: not a finite number"),
        (["lookback=1e12"], "strategy 'momentum': lookback of 1,000,000,000,001 bars is more "
                            "than the 5,000,000 the engine can hold"),
        (["lookback=1e18"], "strategy 'momentum': lookback of 1e+18 bars is more than"),
        (["top=1e300"], "strategy 'momentum': top must be between 1 and 2"),
        (["=3"], "--param '=3': write key=value"),
    ],
)  # fmt: skip
def test_absurd_strategy_parameters_are_one_line(workdir, capsys, params, message):
    pairs = [arg for p in params for arg in ("--param", p)]
    err = fails(capsys, workdir / "config.toml", *SYNTHETIC, "--strategy", "momentum", *pairs)
    assert err.startswith(message)


def test_non_finite_strategy_params_in_the_config_name_the_key(tmp_path, capsys):
    config = tmp_path / "config.toml"
    text = SHIPPED.read_text()
    config.write_text(text.replace('params = { rebalance = "1w" }', "params = { lookback = nan }"))
    err = fails(capsys, config, "backtest", "--no-store")
    assert err == (f"{config}: strategies.0.params.lookback: Input should be a finite number "
                   "(got nan)")  # fmt: skip


@pytest.mark.parametrize("symbols", ["", " , ,", ","])
@pytest.mark.parametrize(
    "command",
    [
        ["backtest", "--no-store", "--no-progress"],
        ["train", "tabl"],
        ["data", "fetch", "--interval", "1h", "--start", "2024-01-01"],
    ],
)
def test_empty_symbols_are_refused_by_every_command(workdir, capsys, command, symbols):
    err = fails(capsys, workdir / "config.toml", *command, "--symbols", symbols)
    assert err == f"--symbols {symbols!r}: give at least one symbol, e.g. BTCUSDT,ETHUSDT"


def test_train_flags_and_hyperparameters_name_the_flag(workdir, capsys):
    config = workdir / "config.toml"
    assert fails(capsys, config, "train", "tabl", "--set", "dropout=nan") == (
        "--set dropout=nan: not a finite number"
    )
    assert fails(capsys, config, "train", "tabl", "--threads", "100000").startswith(
        "--threads (train.threads): Input should be less than or equal to 1024"
    )
    assert fails(capsys, config, "train", "tabl", "--seed", "-3").startswith(
        "--seed (train.seed): Input should be greater than or equal to 0"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("::nonsense", "not a database URL (expected e.g. sqlite:///bot.db or "
                       "postgresql+psycopg://user@host/db)"),
        ("mysql://bot:s3cret@h/db", "unsupported database 'mysql': the store runs on SQLite "
         "(sqlite:///FILE) or PostgreSQL (postgresql+psycopg://user@host/db) "
         "(got 'mysql://bot:***@h/db')"),
        ("oracle://h/db?password=s3cret&token=s3cret&mode=x",
         "unsupported database 'oracle'"),
    ],
)  # fmt: skip
@pytest.mark.parametrize(
    "command",
    [
        ["data", "list"],
        ["data", "import", "csv", "--interval", "1h"],
        ["runs", "list"],
        ["models"],
        ["backtest", "--no-progress", "--source", "synthetic"],
    ],
)
def test_bad_store_flags_are_one_line_without_secrets(workdir, capsys, command, url, message):
    command = [str(workdir / c) if c == "csv" else c for c in command]
    err = fails(capsys, workdir / "config.toml", *command, "--store", url)
    assert err.startswith(f"--store (store.url): {message}")
    assert "s3cret" not in err


def test_a_bad_store_url_in_the_environment_is_named(workdir, capsys, monkeypatch):
    monkeypatch.setenv("BOT_STORE_URL", "mysql://bot:s3cret@h/db")
    for command in (["data", "list"], ["backtest", "--no-progress"]):
        err = fails(capsys, workdir / "config.toml", *command)
        assert err.startswith("BOT_STORE_URL (store.url): unsupported database 'mysql'")
        assert "s3cret" not in err


def test_a_bad_store_url_in_the_config_is_named(workdir, capsys):
    config = workdir / "config.toml"
    config.write_text(config.read_text().replace("sqlite:///state/bot.db", "mysql://u@h/db"))
    for command in (["data", "list"], ["runs", "list"], ["backtest", "--no-progress"]):
        err = fails(capsys, config, *command)
        assert err.startswith(f"{config}: store.url: unsupported database 'mysql'")


def bad_copy(workdir: Path, name: str, edit) -> Path:
    """The AAAUSDT file of the fixture under another name, one line changed by ``edit``."""
    lines = (workdir / "csv" / "AAAUSDT.csv").read_text().splitlines()
    path = workdir / "csv" / name
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def test_an_import_with_a_refused_file_imports_nothing(workdir, capsys):
    def negative_close(lines: list[str]) -> list[str]:
        cells = lines[4].split(",")
        cells[4] = "-1.0"
        return [*lines[:4], ",".join(cells), *lines[5:]]

    bad_copy(workdir, "CCCUSDT.csv", negative_close)
    bad_copy(workdir, "DDDUSDT.csv", lambda lines: lines[:1])
    bad_copy(workdir, "EEEUSDT.csv", lambda lines: [*lines[:3], "abc,1,1,1,1,1", *lines[4:]])
    config = str(workdir / "config.toml")
    assert main(["--config", config, "data", "import", str(workdir / "csv"),
                 "--interval", "1h"]) == 2  # fmt: skip
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert captured.out == ""
    folder = workdir / "csv"
    assert err[0].startswith(f"bot: {folder / 'CCCUSDT.csv'}: row 3: price not positive")
    assert err[1] == f"bot: {folder / 'DDDUSDT.csv'}: no bars (a header and no rows)"
    assert err[2] == f"bot: {folder / 'EEEUSDT.csv'}: row 2: timestamp_ms 'abc' is not a number"
    assert err[3] == "bot: 3 of 5 files refused; nothing was imported"
    assert len(err) == 4
    with Store(f"sqlite:///{workdir / 'state' / 'bot.db'}") as store:
        assert store.kline_summary() == []  # not even the two good files


def test_a_single_refused_file_is_one_line(workdir, capsys):
    path = bad_copy(workdir, "CCCUSDT.csv", lambda lines: [lines[0], "1500000000000.5,1,1,1,1,1"])
    err = fails(capsys, workdir / "config.toml", "data", "import", str(path), "--interval", "1h")
    assert err == (f"{path}: row 0: time 1500000000000.5 is not a whole number of milliseconds; "
                   "nothing was imported")  # fmt: skip
    empty = workdir / "EMPTY.csv"
    empty.write_bytes(b"")
    err = fails(capsys, workdir / "config.toml", "data", "import", str(empty), "--interval", "1h")
    assert err == f"{empty}: empty file (no header, no rows); nothing was imported"


def test_an_import_of_good_files_writes_them_all(workdir, capsys):
    config = str(workdir / "config.toml")
    args = ["--config", config, "data", "import", str(workdir / "csv"), "--interval", "1h"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["symbol", "interval", "rows", "read", "new", "already", "stored"]
    assert [line.split()[:5] for line in lines[2:]] == [
        ["AAAUSDT", "1h", "720", "720", "0"], ["BBBUSDT", "1h", "720", "720", "0"],
    ]  # fmt: skip
    assert main(args) == 0
    assert [line.split()[3] for line in capsys.readouterr().out.splitlines()[2:]] == ["0", "0"]


def test_a_non_integer_time_in_a_backtest_file_is_named(workdir, capsys):
    config = workdir / "config.toml"
    csv = workdir / "csv" / "AAAUSDT.csv"
    lines = csv.read_text().splitlines()
    lines[6] = lines[6].replace(lines[6].split(",")[0], lines[6].split(",")[0] + ".5", 1)
    csv.write_text("\n".join(lines) + "\n")
    err = fails(capsys, config, "backtest", "--no-store", "--no-progress", "--source", "csv",
                "--data", str(workdir / "csv"))  # fmt: skip
    assert err.startswith(f"{csv}: row 5: time ") and "is not a whole number of milliseconds" in err
