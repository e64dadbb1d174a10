"""The evaluation benchmark keeps working: ``--quick`` (tiny models, two weeks, two epochs on
the order book) runs end to end on the real data and reports a complete, consistent table:
every model over every seed with its raw signal and through the decision layer, gross and net
of costs, beside the baselines."""

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import ROOT, real_data_dir

pytestmark = pytest.mark.slow

MODELS = {"cross_asset", "stockformer", "multiscale", "tabl"}
BASELINES = {"equal weight", "buy-and-hold BTC", "momentum", "long/short momentum"}
SEEDS = [7, 8, 9]
METHODS = {"majority class (train)", "logistic regression", "TABL"}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    data = real_data_dir()
    needed = [data / "bybit-linear" / "1h", data / "lob" / "bitstamp-btcusd-2015-05-01-lob20.csv"]
    missing = [p for p in needed if not p.exists()]
    if missing:
        pytest.skip(f"real data not found: {missing[0]} (set BOT_DATA_DIR to its folder)")
    out = tmp_path_factory.mktemp("evaluate")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "evaluate.py"), "--quick", "--data", str(data),
         "--json", str(out / "evaluate.json"), "--markdown", str(out / "evaluate.md")],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "evaluate.json").read_text())
    result["stdout"], result["markdown"] = done.stdout, (out / "evaluate.md").read_text()
    return result


def test_every_model_and_baseline_is_measured_over_the_same_period(report):
    rows = report["portfolio"]
    assert {r["name"] for r in rows if r["kind"] == "model"} == MODELS
    assert {r["name"] for r in rows if r["kind"] == "baseline"} == BASELINES
    runs = sorted((r["name"], r["variant"], r["seed"]) for r in rows if r["kind"] == "model")
    assert runs == sorted((m, v, s) for m in MODELS for v in ("signal", "decided") for s in SEEDS)
    assert len({(r["start"], r["end"], r["bars"]) for r in rows}) == 1
    assert rows[0]["bars"] == 14 * 24  # the quick plan's two weeks of hourly bars
    for r in rows:
        for key in ("total_return", "max_drawdown", "turnover", "final_equity", "fees",
                    "gross_return"):  # fmt: skip
            assert math.isfinite(r[key]), (r["name"], key)
        assert r["trades"] >= 0 and r["decisions"] >= 1 and r["halted"] is None
        if r["trades"]:  # a curve that never moves has no Sharpe ratio
            assert math.isfinite(r["sharpe"]), r["name"]
        assert 0 <= r["max_drawdown"] < 1
        assert len(r["daily_returns"]) == 14
        if r["trades"]:  # costs only ever take: gross ≥ net
            assert r["gross_return"] > r["total_return"]
    hold = next(r for r in rows if r["name"] == "buy-and-hold BTC")
    assert hold["trades"] == 1
    for r in rows:
        if r["kind"] == "model":
            assert r["strategy"]["params"]["retrain_every"] == "every 168h"
            assert r["decisions"] > 1 and r["config"]
            if r["variant"] == "decided":
                assert r["strategy"]["params"]["band"] == "auto"


def test_the_decision_layer_trades_less_on_the_same_models(report):
    rows = report["portfolio"]
    for model in MODELS:
        for seed in SEEDS:
            run = {r["variant"]: r for r in rows if r["name"] == model and r["seed"] == seed}
            assert run["decided"]["turnover"] < run["signal"]["turnover"], (model, seed)


def test_summaries_average_the_seeds_and_compare_with_equal_weight(report):
    lines = {(s["name"], s["variant"]): s for s in report["summary"]}
    assert len(lines) == 2 * len(MODELS) + len(BASELINES)
    for model in MODELS:
        line = lines[(model, "decided")]
        runs = [r for r in report["portfolio"] if r["name"] == model and r["variant"] == "decided"]
        assert line["seeds"] == SEEDS
        assert line["sharpe"][0] == pytest.approx(sum(r["sharpe"] for r in runs) / len(runs))
        estimate, low, high = line["vs_benchmark"]
        assert low <= high and math.isfinite(estimate)
    assert "vs_benchmark" not in lines[("equal weight", "-")]


def test_order_book_classifiers_are_scored_on_the_test_part(report):
    book = report["orderbook"]
    assert [h["horizon"] for h in book["horizons"]] == [10, 50, 100]
    window = book["plan"]["window"]
    for h in book["horizons"]:
        samples, first = h["samples"], h["first_row"]
        assert min(samples.values()) > 100
        # each part's first window starts after the previous part's last target
        for before, after in (("train", "val"), ("val", "test")):
            last_target = first[before] + samples[before] - 1 + h["horizon"]
            assert first[after] - window + 1 > last_target
        train_shares = h["class_shares"]["train"]
        assert train_shares[1] == pytest.approx(1 / 3, abs=0.01)  # the balancing threshold
        assert min(train_shares) > 0.2
        assert {r["method"] for r in h["results"]} == METHODS
        for r in h["results"]:
            assert 0 <= r["accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1
        majority = next(r for r in h["results"] if r["method"].startswith("majority"))
        share = h["class_shares"]["test"][h["majority_class"]]
        assert majority["accuracy"] == pytest.approx(share)
        assert h["majority_class"] == max(range(3), key=train_shares.__getitem__)


def test_the_table_is_printed_and_written_as_markdown(report):
    for name in (*MODELS, *BASELINES, *METHODS):
        assert name in report["stdout"]
        assert name in report["markdown"]
    assert "fee 5.5 bp + slippage 1 bp" in report["stdout"]
