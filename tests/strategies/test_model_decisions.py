"""Model strategies with the decision layer, seed ensembles and selection on the validation
slice, walking forward on real bars: replay blocks and single bars decide alike, an ensemble
serves its members' mean, and a refit's choice sees no bar after its training window."""

from __future__ import annotations

import numpy as np
import pytest

from bot.core.timeutil import HOUR_MS
from strategies.model_backed import TABLStrategy
from tests.enginekit import fingerprint, make_engine, replay
from tests.modelkit import TINY, real_panel
from tests.strategies.test_model_backed import perturbed_after

HYPER, FEATURES, _ = TINY["tabl"]
WALK = dict(retrain_every="every 336h", train_window=1200, epochs=1, model=HYPER,
            features=FEATURES, rebalance="4h")  # fmt: skip
TUNED = dict(band="auto", select={"band_scale": [0.5, 2.0], "smoothing": [1, 3]},
             turnover_budget=40.0, min_hold="8h")  # fmt: skip


@pytest.fixture(scope="module")
def panel(linear_dir):
    return real_panel(linear_dir, "2024-10-01", "2025-01-15")


def run(panel, strategy, block_rows=8192, use_batch=True):
    engine, journal = make_engine(
        panel, [strategy], interval="1h", block_rows=block_rows, use_batch=use_batch
    )
    replay(engine, panel)
    return engine, journal


def test_tuned_ensemble_decides_alike_in_blocks_and_bar_by_bar(panel):
    runs, versions = [], set()
    for block_rows, use_batch in [(8192, True), (97, True), (8192, False)]:
        s = TABLStrategy(panel.symbols, "1h", ensemble=2, **WALK, **TUNED)
        engine, journal = run(panel, s, block_rows, use_batch)
        runs.append(fingerprint(engine, journal))
        versions |= {d.model_version for d in journal.decisions}
    assert runs[1] == runs[0] and runs[2] == runs[0]
    assert len(runs[0][1]) > 20 and runs[0][3], "the strategy must decide and trade"
    assert len(versions) >= 3 and all("-ens2-" in v and "+band_scale=" in v for v in versions)


def test_the_layer_cuts_trading_on_the_same_models(panel):
    raw = TABLStrategy(panel.symbols, "1h", **WALK)
    tuned = TABLStrategy(panel.symbols, "1h", **WALK, **TUNED)
    traded = {}
    for label, s in (("raw", raw), ("tuned", tuned)):
        _, journal = run(panel, s)
        traded[label] = sum(abs(f.qty * f.price) for f in journal.fills)
        assert journal.fills, label
    assert traded["tuned"] < 0.7 * traded["raw"]


def test_an_ensemble_serves_the_mean_of_its_members(panel):
    """An ensemble of three with seed 7 fits each refit's members with the seeds single
    strategies with seeds 7, 8 and 9 use, so its weights are their mean at every decision."""
    weights = {}
    for label, params in (("ens", {"seed": 7, "ensemble": 3}), ("7", {"seed": 7}),
                          ("8", {"seed": 8}), ("9", {"seed": 9})):  # fmt: skip
        s = TABLStrategy(panel.symbols, "1h", **WALK, **params)
        _, journal = run(panel, s)
        weights[label] = {d.time: [d.weights[x] for x in panel.symbols] for d in journal.decisions}
    assert set(weights["ens"]) == set(weights["7"]) == set(weights["8"]) == set(weights["9"])
    assert len(weights["ens"]) > 100
    members = np.array([[weights[k][t] for t in sorted(weights["ens"])] for k in "789"])
    ensemble = np.array([weights["ens"][t] for t in sorted(weights["ens"])])
    np.testing.assert_allclose(ensemble, members.mean(axis=0), rtol=0, atol=1e-12)
    assert not np.allclose(members[0], members[1]), "different seeds must give other models"


def test_selection_sees_no_bar_after_its_training_window(panel):
    cut = len(panel) - 400
    t = int(panel.starts[cut]) + HOUR_MS
    decisions = []
    for bars in (panel, perturbed_after(panel, cut)):
        _, journal = run(bars, TABLStrategy(panel.symbols, "1h", **WALK, **TUNED))
        decisions.append([(d.time, d.weights, d.model_version) for d in journal.decisions])
    before = [d for d in decisions[0] if d[0] <= t]
    assert len(before) > 20 and before == [d for d in decisions[1] if d[0] <= t]
    assert {d[2] for d in before} >= {decisions[0][0][2]}
    assert decisions[0] != decisions[1], "the change after t must matter, or the test is empty"
