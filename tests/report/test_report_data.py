"""The numbers and figures the HTML report shows, checked against the stored runs."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest

from backtest import report_charts as charts
from backtest.html_report import build_page, write_report
from backtest.report_attention import Unexplained, explain_run
from backtest.report_bars import run_bars
from backtest.report_data import (
    MAX_POINTS,
    equity_curves,
    keep_points,
    metrics_table,
    pnl_contributions,
    trade_table,
)
from bot.core.timeutil import iso


def test_per_symbol_contributions_add_up_to_the_equity_change(stored):
    data = stored.momentum
    found = pnl_contributions(data, run_bars(stored.store, data))
    change = data.equity["equity"].iloc[-1] - 100_000.0
    assert "last close of the 1h bars from" in found.marked_with  # real prices, said so
    assert found.table["total"].sum() == pytest.approx(change, abs=1e-4)
    assert found.unexplained == pytest.approx(0.0, abs=1e-4)
    assert found.table["fees"].sum() == pytest.approx(data.metrics["fees"], rel=1e-9)
    assert found.table["funding"].sum() == pytest.approx(data.metrics["funding"], rel=1e-9)
    assert (found.table["unrealised"] != 0).sum() == 1  # one symbol held at the end (top 1)


def test_without_bars_open_positions_are_marked_at_the_last_fill_and_it_says_so(stored):
    data = stored.momentum
    found = pnl_contributions(data, None)
    assert found.marked_with == "open positions marked at the last fill price"
    assert abs(found.unexplained) < 0.02 * data.equity["equity"].iloc[-1]  # a near price


def test_the_trade_table_holds_the_trades_most_recent_first_kept(stored):
    data = stored.momentum
    table, total = trade_table(data)
    assert total == len(data.trades) == len(table) > 0
    assert table["price"].tolist() == data.trades["price"].tolist()
    assert set(table["reason"]) <= set(data.orders["reason"])
    capped, total = trade_table(data, limit=5)
    assert total == len(data.trades)
    assert capped["price"].tolist() == data.trades["price"].tolist()[-5:]


def test_thinning_keeps_extremes_and_bounds_the_points():
    values = np.sin(np.linspace(0, 60, 100_000))
    values[31_337] = 5.0
    keep = keep_points(values)
    assert len(keep) <= MAX_POINTS and keep[0] == 0 and keep[-1] == len(values) - 1
    assert 31_337 in keep and np.all(np.diff(keep) > 0)
    assert values[keep].min() == values.min()


def test_several_runs_get_one_normalised_equity_trace_each_and_metrics_in_columns(stored):
    runs = [stored.momentum, stored.small]
    page = build_page(runs, store=stored.store)
    equity = next(f for f in page.figures.values() if "initial equity" in f.layout.title.text)
    assert [t.name for t in equity.data] == [r.label for r in runs]
    for trace, data in zip(equity.data, runs, strict=True):
        assert trace.y[0] == pytest.approx(1.0)  # 100,000 and 5,000 of cash on one axis
        assert trace.y[-1] == pytest.approx(data.metrics["final_equity"] / data.metrics[
            "initial_equity"])  # fmt: skip
    table = metrics_table(runs)
    assert list(table.columns) == [r.label for r in runs]
    assert table.loc["Initial equity"].tolist() == ["100,000.00", "5,000.00"]
    assert table.loc["Start"].tolist() == [iso(r.metrics["start"]) + " UTC" for r in runs]


def test_a_model_run_shows_its_versions_and_attention(stored):
    data = stored.model
    version = data.decisions["model_version"].dropna().iloc[-1]
    explained = explain_run(stored.store, data)
    assert not isinstance(explained, Unexplained), explained
    assert explained.version == version and explained.decisions > 0
    assert explained.arrays["leadership"].shape == (3,)
    page = build_page([data], store=stored.store)
    titles = [f.layout.title.text for f in page.figures.values()]
    assert "model version of each decision" in titles
    assert any(t.startswith("lead–lag ranking") for t in titles)
    assert any(t.startswith("cross-asset attention") for t in titles)
    assert not any(t.startswith("model version") for t in _titles(stored.momentum, stored))


def test_a_model_run_without_its_checkpoint_says_why_in_one_line(stored, tmp_path):
    data = stored.model
    config = json.loads(json.dumps(data.settings))
    config["strategies"][0]["params"]["checkpoint"] = str(tmp_path / "gone.pt")
    moved = dataclasses.replace(data, run={**data.run, "config": config})
    explained = explain_run(stored.store, moved)
    assert (
        isinstance(explained, Unexplained) and "no checkpoint of cross_asset-" in explained.reason
    )
    html = write_report([moved], tmp_path / "r.html").read_text()
    assert "attention not shown: no checkpoint of" in html


def test_a_secret_url_in_the_settings_never_reaches_the_page(stored, tmp_path):
    data = stored.small
    config = json.loads(json.dumps(data.settings))
    config["store"]["url"] = "postgresql+psycopg://bot:hunter2secret@db.example/bot"
    config["strategies"][0]["params"]["feed"] = "https://api.example/x?api_key=k3yk3yk3y"
    leaky = dataclasses.replace(data, run={**data.run, "config": config})
    html = write_report([leaky], tmp_path / "r.html").read_text()
    assert "db.example" in html and "api.example" in html  # the settings are shown ...
    assert "hunter2secret" not in html and "k3yk3yk3y" not in html  # ... without secrets


def test_extra_tables_are_sortable_sections(stored, tmp_path):
    trials = pd.DataFrame({"trial": [0, 1], "in-sample sharpe": [1.5, -0.25]})
    out = write_report([stored.small], tmp_path / "r.html", tables={"Sweep trials": trials})
    html = out.read_text()
    section = html[html.index("<h2>Sweep trials</h2>") :]
    assert re.match(
        r'<h2>Sweep trials</h2>\s*<div class="scroll"><table class="sortable">', section
    )
    assert '<td data-v="-0.25">-0.25</td>' in section


def _titles(data, stored) -> list[str]:
    return [f.layout.title.text for f in build_page([data], store=stored.store).figures.values()]


def test_curves_are_thinned_for_long_runs(stored):
    equity, drawdown = equity_curves(stored.momentum)
    assert len(equity.values) == len(stored.momentum.equity) <= MAX_POINTS
    assert drawdown.values.min() == pytest.approx(-stored.momentum.metrics["max_drawdown"])
    assert charts.curves([("a", equity)], "t", "y").data[0].y.shape == equity.values.shape
