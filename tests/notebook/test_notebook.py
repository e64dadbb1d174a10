"""The notebook API: ``from bot import backtest, load_run`` runs and loads backtests with the
CLI's settings and returns them as the store holds them."""

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backtest.run_data import JOURNALS
from bot import notebook
from bot.cli.backtest_cmd import overrides
from bot.cli.common import settings_from
from bot.cli.main import build_parser
from bot.config import ConfigError
from tests.conftest import ROOT

#: The README's example (the ```python block under "### From a notebook"), run as it stands.
EXAMPLE = """\
from bot import backtest, load_run

run = backtest(strategy="momentum", params={"lookback": 168, "top": 2}, start="2024-06-01")
run.equity.plot(x="when", y="equity")  # equity, fills, trades, funding, weights...: DataFrames
run.report("momentum.html")  # the HTML report (print(run): id, Sharpe, return)
again = load_run(run.run_id)  # the same run, later, from the store it went to
"""
README_HEADING = "### From a notebook"
CONFIG = ROOT / "config.toml"
#: Small and fast: synthetic bars need no data folder.
SYNTHETIC = {"source": "synthetic", "symbols": ["BTCUSDT", "ETHUSDT"], "interval": "1h"}
FEW_BARS = {"data.synthetic_bars": 24 * 60}


def assert_same_run(a: notebook.Result, b: notebook.Result) -> None:
    assert a.run == b.run
    assert a.metrics == b.metrics
    for name in [*JOURNALS, "trades", "funding", "weights"]:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert repr(a) == repr(b)


def readme_example() -> str | None:
    """The python block right after the README's notebook heading, or None without one."""
    text = (ROOT / "README.md").read_text()
    if README_HEADING not in text:
        return None
    after = text.split(README_HEADING, 1)[1]
    found = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    return found.group(1) if found else None


def test_the_readme_shows_this_example():
    assert readme_example() == EXAMPLE, f"README.md's '{README_HEADING}' block differs"


def test_the_readme_example_runs_on_real_data(linear_dir, tmp_path, monkeypatch):
    """As a user runs it: in a folder holding their config.toml (the project's, pointed at
    the data), recording into that folder's bot.db."""
    config = CONFIG.read_text()
    pointed = config.replace('path = "../shared/data/bybit-linear"', f'path = "{linear_dir}"')
    assert pointed != config, "the project's config no longer names the data folder this way"
    (tmp_path / "config.toml").write_text(pointed)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BOT_STORE_URL", raising=False)
    pytest.importorskip("matplotlib").use("Agg")
    scope: dict = {}
    exec(EXAMPLE, scope)
    run, again = scope["run"], scope["again"]
    assert (tmp_path / "bot.db").exists() and (tmp_path / "momentum.html").stat().st_size > 0
    assert run.settings["store"]["url"] == f"sqlite:///{tmp_path / 'bot.db'}"
    assert run.settings["strategies"][0]["params"] == {"lookback": 168, "top": 2}
    assert run.equity["when"].iloc[1] == pd.Timestamp("2024-06-01 01:00", tz="UTC")
    assert len(run.trades) > 0 and set(run.weights.columns) == set(run.symbols)
    assert_same_run(run, again)


def test_a_run_and_the_run_loaded_by_its_id_are_the_same(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run = notebook.backtest(CONFIG, store=url, settings=FEW_BARS, **SYNTHETIC)
    again = notebook.load_run(run.run_id[:6], store=url, config=CONFIG)
    assert isinstance(run, notebook.Result) and len(run.fills) > 0
    assert_same_run(run, again)
    assert run.metrics["bars"] == 24 * 60
    assert repr(run).startswith(f"<backtest {run.run_id} equal_weight sharpe=")
    assert "\n" not in repr(run)
    table = run.metrics_table
    assert (
        list(table.columns) == [run.label]
        and table.loc["sharpe", run.label] == run.metrics["sharpe"]
    )


def test_the_settings_are_those_bot_backtest_builds_from_the_same_flags(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    argv = ["--config", str(CONFIG), "backtest", "--strategy", "momentum", "--param",
            "lookback=48", "--param", "top=1", "--symbols", "btcusdt,ETHUSDT", "--interval",
            "1h", "--start", "2024-03-01", "--end", "2024-04-01", "--source", "parquet",
            "--data", str(tmp_path), "--fee-bp", "2.5", "--slippage-bp", "0", "--cash", "5000",
            "--threshold", "0.02", "--max-drawdown", "0.3", "--block-rows", "64",
            "--store", url]  # fmt: skip
    args = build_parser().parse_args(argv)
    from_cli = settings_from(args, overrides(args))
    from_python = notebook.backtest_settings(
        CONFIG, strategy="momentum", params={"lookback": 48, "top": 1},
        symbols="btcusdt,ETHUSDT", interval="1h", start=pd.Timestamp("2024-03-01"),
        end="2024-04-01", source="parquet", data=tmp_path, fee_bp=2.5, slippage_bp=0,
        cash=5000, threshold=0.02, max_drawdown=0.3, block_rows=64, store=url,
    )  # fmt: skip
    assert from_python.model_dump() == {
        **from_cli.model_dump(),
        "engine": {**from_cli.engine.model_dump(), "start": "2024-03-01T00:00:00"},
    }
    assert from_python.engine.start_ms == from_cli.engine.start_ms


def test_an_in_memory_store_writes_nothing_to_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = notebook.backtest(CONFIG, store=":memory:", settings=FEW_BARS, **SYNTHETIC)
    assert list(tmp_path.iterdir()) == []
    assert run.settings["store"]["url"] == "sqlite://"
    assert len(run.equity) == 24 * 60 + 1 and len(run.decisions) > 0


def test_it_runs_where_an_event_loop_is_already_running():
    """Jupyter runs its cells inside an event loop, where ``asyncio.run`` is refused."""

    async def cell() -> notebook.Result:
        return notebook.backtest(CONFIG, store=":memory:", settings=FEW_BARS, **SYNTHETIC)

    assert asyncio.run(cell()).metrics["bars"] == 24 * 60


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"fee_bps": 3}, r"^backtest\(\): unknown keyword 'fee_bps' \(did you mean 'fee_bp'\?\)$"),
        ({"cash": -1}, r"^cash= \(portfolio.initial_cash\): Input should be greater than 0"),
        ({"settings": {"portfolio.fee_bps": 1}}, r"unknown key 'portfolio.fee_bps' \(did you"),
        ({"params": {"top": 1}}, r"^params= needs strategy="),
        ({"strategy": "momentum", "params": {"lookback": float("inf")}},
         r"^params\['lookback'\] \(strategies.0.params.lookback\): Input should be a finite"),
        ({"symbols": []}, r"^symbols= \(engine.symbols\): List should have at least 1 item"),
        ({"store": "mysql://db"}, r"^store= \(store.url\): unsupported database 'mysql'"),
        ({"config": "absent.toml"}, r"^absent.toml: config file not found"),
    ],
)  # fmt: skip
def test_bad_input_is_a_config_error_naming_it(given, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = {"config": CONFIG, "store": ":memory:", **given}
    with pytest.raises(ConfigError, match=message):
        notebook.backtest(**options)
    assert list(tmp_path.iterdir()) == []


def test_the_report_is_the_html_report_of_the_run(tmp_path):
    run = notebook.backtest(CONFIG, store=":memory:", settings=FEW_BARS, **SYNTHETIC)
    out = run.report(tmp_path / "run.html", title="a title")
    assert out == tmp_path / "run.html"
    page = out.read_text()
    assert "a title" in page and run.run_id[:8] in page


def test_importing_bot_stays_cheap():
    """The CLI imports ``bot``; the notebook API (pandas, SQLAlchemy, torch) comes on use."""
    probe = (
        "import sys, bot; heavy = [m for m in ('bot.notebook', 'pandas', 'torch', "
        "'sqlalchemy') if m in sys.modules]; print(heavy); from bot import backtest; "
        "print(backtest.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=ROOT)  # fmt: skip
    assert done.stdout.split("\n")[:2] == ["[]", "bot.notebook"]


def test_an_unknown_name_of_bot_is_an_attribute_error():
    import bot  # noqa: PLC0415 — the package itself, under test

    with pytest.raises(AttributeError, match="has no attribute 'backtset'"):
        bot.backtset  # noqa: B018
    assert isinstance(Path(notebook.PROJECT_CONFIG), Path) and notebook.PROJECT_CONFIG == CONFIG
