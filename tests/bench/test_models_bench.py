"""The model benchmark keeps working: a ``--quick`` run measures every model and reports
consistent numbers. Speeds are not asserted (the machine may be shared); only their shape.

The run uses the seeded synthetic bars (``BOT_DATA_DIR`` points at an empty folder), so it
does not depend on the real data and covers the fallback the benchmark announces.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

MODELS = {"cross_asset", "stockformer", "multiscale", "tabl"}
QUICK_BARS, QUICK_STREAMING_BARS = 24, 12  # bench/models.py QUICK


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[str, dict]:
    folder = tmp_path_factory.mktemp("models_bench")
    out = folder / "models.json"
    env = {**os.environ, "BOT_DATA_DIR": str(folder / "absent")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "models.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, check=False, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout, json.loads(out.read_text())


def by_model(rows: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for row in rows:
        found.setdefault(row["model"], []).append(row)
    return found


def test_every_model_is_measured_in_every_section(run):
    stdout, results = run
    for section in ("backtest", "latency", "training"):
        rows = results[section]
        assert set(by_model(rows)) == MODELS, section
        assert not [r for r in rows if "error" in r], section
    measured = results["latency"] + results["training"]
    measured += [r[k] for r in results["backtest"] for k in ("checkpoint", "batched", "streaming")]
    assert all(r["peak_rss_mb"] > r["rss_growth_mb"] > 0 for r in measured)
    for header in ("(1) backtest", "(2) inference latency", "(3) training throughput"):
        assert header in stdout
    assert "data: SYNTHETIC bars" in stdout
    assert results["settings"]["data"].startswith("SYNTHETIC")


def test_latency_rows_are_consistent(run):
    _, results = run
    sizes = {m: [r["size"] for r in rows] for m, rows in by_model(results["latency"]).items()}
    # the strategies serve the chapter's size of the cross-asset models, their own of the others
    both = ["chapter", "strategy"]
    assert sizes == {"cross_asset": ["chapter"], "stockformer": ["chapter"],
                     "multiscale": both, "tabl": both}  # fmt: skip
    for row in results["latency"]:
        assert row["mflop"] > 0 and row["floor_ms"] > 0
        assert row["hyperparameters"]
        for precision in ("float32", "float64"):
            timing = row[precision]
            assert 0 < timing["p50_ms"] <= timing["p99_ms"]
            assert timing["reps"] >= 1
            assert timing["meets_target"] == (timing["p50_ms"] < 5.0)
    chapter = {r["model"]: r for r in results["latency"] if r["size"] == "chapter"}
    assert chapter["cross_asset"]["input"] == "[1,5,168,6]"  # one decision over five assets
    assert chapter["tabl"]["input"] == "[5,100,6]"  # five series folded into the batch


def test_batched_and_streaming_backtests_make_the_same_decisions(run):
    _, results = run
    assert results["settings"]["year_bars"] == QUICK_BARS
    for row in results["backtest"]:
        batched, streaming = row["batched"], row["streaming"]
        assert batched["bars"] == batched["decisions"] == QUICK_BARS  # primed: every bar decides
        assert streaming["bars"] == streaming["decisions"] == QUICK_STREAMING_BARS
        assert batched["compared"] == streaming["compared"]
        assert batched["compared"]["decisions"] == QUICK_STREAMING_BARS
        assert row["same_decisions"] is True
        assert batched["precision"] == streaming["precision"] == "float32"  # the default
        decision = streaming["decision_ms"]  # each streaming decision timed, features included
        assert decision["calls"] == QUICK_STREAMING_BARS
        assert 0 < decision["p50"] <= decision["p99"] <= decision["max"]
        assert "decision_ms" not in batched
        for replay in (batched, streaming):
            assert replay["seconds"] > 0 and replay["decisions_per_second"] > 0
        assert row["streaming_year_seconds"] == pytest.approx(streaming["seconds"] * 2)
        assert row["checkpoint"]["epochs"] == 0 and row["checkpoint"]["train_samples"] > 0


def test_training_throughput_is_positive(run):
    _, results = run
    for row in results["training"]:
        assert row["batch_size"] == 2 and row["threads"] == 1  # --quick
        assert 1 <= row["micro_batch"] <= row["batch_size"]
        assert row["steps"] >= 1 and row["seconds_per_step"] > 0
        assert row["samples_per_second"] == pytest.approx(2 / row["seconds_per_step"])
