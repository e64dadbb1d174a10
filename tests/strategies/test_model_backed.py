"""Model-backed strategies in the engine: one batched pass per replay block equals per-bar
streaming, decisions are causal, walk-forward retraining swaps models at its fire times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bot.core.context import warm_rows
from bot.core.events import CLOSE, Panel
from bot.core.timeutil import HOUR_MS
from models.checkpoint import CheckpointMismatchError
from models.features import DEFAULT_FEATURES
from strategies.model_backed import (
    CrossAssetStrategy,
    MultiScaleStrategy,
    StockformerStrategy,
    TABLStrategy,
    to_weights,
)
from strategies.model_fitting import scale_bars
from strategies.registry import StrategyParameterError, create
from tests.enginekit import fingerprint, make_engine, replay
from tests.modelkit import TINY, real_panel

STRATEGIES = {
    "cross_asset": CrossAssetStrategy,
    "stockformer": StockformerStrategy,
    "tabl": TABLStrategy,
    "multiscale": MultiScaleStrategy,
}


def strategy(name: str, checkpoint: Path, panel: Panel, **params):
    features = TINY[name][1]
    return STRATEGIES[name](panel.symbols, "1h", checkpoint=str(checkpoint), features=features,
                            **params)  # fmt: skip


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_batched_inference_equals_per_bar_streaming(name, checkpoints, traded):
    """Served in float32 (the default), a backtest's blocks decide and trade exactly as the
    daemon's one bar at a time, whatever the block size."""
    runs = []
    for block_rows, use_batch in [(8192, True), (101, True), (8192, False)]:
        s = strategy(name, checkpoints[name], traded, precision="float32")
        engine, journal = make_engine(
            traded, [s], interval="1h", block_rows=block_rows, use_batch=use_batch
        )
        replay(engine, traded)
        runs.append(fingerprint(engine, journal))
        assert {d.model_version for d in journal.decisions} == {s.model_version}
        assert s.model_version.startswith(f"{name}-")
    assert len(runs[0][1]) > 100 and runs[0][3], "the model must decide and trade"
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]


def served_outputs(s, panel: Panel, rows: np.ndarray, live: bool) -> list[torch.Tensor]:
    """The model's raw outputs for decisions at ``rows`` of ``panel``: all in one call (a
    replay block), or one call per decision on just the bars the engine holds for it (live:
    each window and its features' lead)."""
    serving, lead = s.serving, s.spec.lead
    ohlcv, starts = np.asarray(panel.values, dtype=float), np.asarray(panel.starts)
    if serving.model.input_kind == "scales":
        scales = {k: scale_bars(starts, ohlcv, "1h", k) for k in serving.model.config.scales}
        lengths = serving.model.config.window_lengths()

        def inputs(picked: np.ndarray) -> dict:
            bars = {}
            for k, b in scales.items():
                ends = np.searchsorted(b.visible_at, picked, side="right") - 1
                lo, hi = int(ends[0]) - lengths[k] - lead + 1 if live else 0, int(ends[-1]) + 1
                bars[k] = (b.ohlcv[lo:hi], b.starts[lo:hi], ends - lo)
            return s.scale_inputs(serving, bars)
    else:

        def inputs(picked: np.ndarray) -> torch.Tensor:
            lo = int(picked[0]) - serving.model.config.seq_len - lead + 1 if live else 0
            hi = int(picked[-1]) + 1
            return s.model_inputs(serving, ohlcv[lo:hi], starts[lo:hi], picked - lo)

    def run(picked: np.ndarray) -> list[torch.Tensor]:
        output = serving.run(inputs(picked), s.decision_samples(serving))
        return [output.prediction, *output.extras.values()]

    if not live:
        return run(rows)
    parts = [run(rows[[k]]) for k in range(len(rows))]
    return [torch.cat(outputs) for outputs in zip(*parts, strict=True)]


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_a_blocks_model_outputs_are_the_live_ones_bit_for_bit(name, precision, checkpoints, traded):
    """Below the decisions (which round and threshold): the raw outputs of a block's forward
    passes equal those of the daemon's one-decision calls, in both precisions."""
    s = strategy(name, checkpoints[name], traded, precision=precision)
    rows = np.arange(len(traded) - 40, len(traded))
    block = served_outputs(s, traded, rows, live=False)
    live = served_outputs(s, traded, rows, live=True)
    assert block[0].dtype == torch.float32 and len(block[0]) == len(live[0])
    assert not torch.equal(block[0][0], block[0][-1]), "the outputs must vary, or this is empty"
    for together, alone in zip(block, live, strict=True):
        assert torch.equal(together, alone)


def perturbed_after(panel: Panel, row: int, seed: int = 1) -> Panel:
    """The same bars up to ``row``, different ones after (scaled prices, other volumes)."""
    rng = np.random.default_rng(seed)
    values = panel.values.copy()
    tail = values[row + 1 :]
    tail[:, :, :4] *= rng.uniform(0.8, 1.2, size=(len(tail), tail.shape[1], 1))
    tail[:, :, 4] *= rng.uniform(0.1, 10.0, size=(len(tail), tail.shape[1]))
    return Panel(panel.symbols, panel.interval_ms, panel.starts, values, panel.present)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_changing_data_after_t_changes_no_decision_at_or_before_t(name, checkpoints, traded):
    first = warm_rows(strategy(name, checkpoints[name], traded))  # rows before it decides
    t_row = (first + len(traded)) // 2
    t = int(traded.starts[t_row]) + HOUR_MS  # close of bar t_row: decisions up to here
    decisions = []
    for panel in (traded, perturbed_after(traded, t_row)):
        engine, journal = make_engine(panel, [strategy(name, checkpoints[name], panel)],
                                      interval="1h", block_rows=4096)  # fmt: skip
        replay(engine, panel)
        decisions.append([(d.time, d.weights) for d in journal.decisions])
    before = [d for d in decisions[0] if d[0] <= t]
    assert before and before == [d for d in decisions[1] if d[0] <= t]
    assert decisions[0] != decisions[1], "the change after t must matter, or the test is empty"


def test_walk_forward_retrains_on_schedule_and_is_causal_and_path_independent(linear_dir):
    panel = real_panel(linear_dir, "2024-10-01", "2025-01-15")
    hyper, features, _ = TINY["tabl"]
    params = dict(retrain_every="every 336h", train_window=1000, epochs=1, model=hyper,
                  features=features)  # fmt: skip
    runs, versions = [], []
    for block_rows, use_batch in [(8192, True), (8192, False)]:
        s = TABLStrategy(panel.symbols, "1h", **params)
        engine, journal = make_engine(
            panel, [s], interval="1h", block_rows=block_rows, use_batch=use_batch
        )
        replay(engine, panel)
        runs.append(fingerprint(engine, journal))
        versions.append([(d.time, d.model_version) for d in journal.decisions])
    assert runs[1] == runs[0]
    pairs = zip(versions[0], versions[0][1:], strict=False)
    changes = [t for (_, v), (t, w) in pairs if v != w]  # first decision of each new model
    assert len({v for _, v in versions[0]}) == len(changes) + 1 >= 3
    first_decision = versions[0][0][0]
    assert first_decision == int(panel.starts[999]) + HOUR_MS  # trained on the first 1000 bars
    for t in changes:  # the job fires after the decision at a 14-day boundary's close
        assert ((t - HOUR_MS) // HOUR_MS) % 336 == 0
    # causal: bars after a retrain never reach the model that decided before it
    cut = len(panel) - 300
    t = int(panel.starts[cut]) + HOUR_MS
    s = TABLStrategy(panel.symbols, "1h", **params)
    changed = perturbed_after(panel, cut)
    engine, journal = make_engine(changed, [s], interval="1h")
    replay(engine, changed)
    mine = [(d.time, d.weights, d.model_version) for d in journal.decisions if d.time <= t]
    reference = [(d[0], d[2], d[4]) for d in runs[0][1] if d[0] <= t]
    assert mine == reference


def test_a_checkpoint_refuses_other_features_symbols_or_bars(checkpoints, traded):
    path = str(checkpoints["cross_asset"])
    with pytest.raises(CheckpointMismatchError, match="trained on features"):
        CrossAssetStrategy(traded.symbols, "1h", checkpoint=path, features=DEFAULT_FEATURES)
    features = TINY["cross_asset"][1]
    # without `features`, the checkpoint's own are used
    assert CrossAssetStrategy(traded.symbols, "1h", checkpoint=path).spec.names == features
    with pytest.raises(ValueError, match="trained on symbols"):
        CrossAssetStrategy(traded.symbols[::-1], "1h", checkpoint=path, features=features)
    with pytest.raises(ValueError, match="trained on 1h bars"):
        CrossAssetStrategy(traded.symbols, "4h", checkpoint=path, features=features)
    with pytest.raises(StrategyParameterError, match=r"strategy 'tabl'.*trained on features"):
        params = {"checkpoint": str(checkpoints["tabl"]), "features": ["log_return"]}
        create("tabl", traded.symbols, "1h", params)


def test_parameters_are_checked_when_the_strategy_is_made(checkpoints, traded):
    with pytest.raises(ValueError, match="either checkpoint or retrain_every"):
        TABLStrategy(traded.symbols, "1h")
    with pytest.raises(ValueError, match="funding_rate"):
        TABLStrategy(traded.symbols, "1h", retrain_every="720h", features=["funding_rate"])
    with pytest.raises(ValueError, match="train_window 100 bars is too short"):
        TABLStrategy(traded.symbols, "1h", retrain_every="720h", train_window=100)
    with pytest.raises(ValueError, match="signal must be"):
        MultiScaleStrategy(traded.symbols, "1h", retrain_every="720h", signal="soon")


def test_outputs_become_weights_within_the_gross_cap():
    portfolio = np.array([[0.5, 0.3, 0.2]])
    assert np.allclose(to_weights("portfolio", portfolio, 0.8, 0.4), [[0.4, 0.24, 0.16]])
    allocation = np.array([[0.9, -0.8, 0.5], [0.1, -0.2, 0.0]])
    w = to_weights("allocation", allocation, 1.0, 0.4)
    assert np.isclose(np.abs(w[0]).sum(), 1.0) and np.allclose(w[1], [0.1, -0.2, 0.0])
    regression = np.array([[0.02, -0.001, 0.004]])
    w = to_weights("regression", regression, 1.0, 0.4, scale=0.01)  # clipped to ±1 first
    assert np.allclose(w, np.array([[1.0, -0.1, 0.4]]) / 1.5)
    logits = np.log(np.array([[[0.1, 0.2, 0.7], [0.35, 0.35, 0.3], [0.6, 0.3, 0.1]]]))
    w = to_weights("classification", logits, 1.0, 0.5)
    assert np.allclose(w, np.array([[0.6, 0.0, -0.5]]) / 1.1)
    w = to_weights("direction", np.array([[2.0, 0.1, -3.0]]), 1.0, 0.7)
    up = 1 / (1 + np.exp(-np.array([2.0, -3.0])))
    expected = np.array([2 * up[0] - 1, 0.0, 2 * up[1] - 1])
    assert np.allclose(w[0], expected / max(np.abs(expected).sum(), 1.0))
    assert CLOSE == 3  # the strategies read closes at this column of a bar
