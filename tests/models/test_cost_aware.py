"""Training that knows what trading costs: labels whose "no move" covers the round trip, a
portfolio loss net of the turnover between consecutive decisions, and batches that keep
decisions next to each other so that loss can see them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.base import head_loss
from models.pipeline import TrainOptions, direction_labels, prepare
from models.training import ConsecutiveBatches
from strategies.model_backed import MULTISCALE_FEATURES
from strategies.model_fitting import scale_bars
from tests.modelkit import TINY, real_panel

PERIOD = ("2024-09-01", "2024-11-15")


@pytest.fixture(scope="module")
def ohlcv(linear_dir: Path) -> np.ndarray:
    return np.asarray(real_panel(linear_dir, *PERIOD).values, dtype=float)


def options(name: str, cost: float, horizon: int = 1) -> TrainOptions:
    hyper, features, _ = TINY[name]
    return TrainOptions(features=features, model=hyper, horizon=horizon, cost=cost)


def test_direction_labels_call_a_move_inside_the_round_trip_neither():
    returns = np.array([0.01, -0.01, 0.0005, -0.0005, 0.0, np.nan])
    np.testing.assert_array_equal(
        direction_labels(returns, 0.001), [1.0, 0.0, 0.5, 0.5, 0.5, np.nan]
    )
    np.testing.assert_array_equal(direction_labels(returns, 0.0), [1, 0, 1, 0, 0, np.nan])


def test_the_stationary_class_covers_at_least_the_round_trip(ohlcv):
    free = prepare("tabl", ohlcv, options("tabl", 0.0))
    costly = 3 * free.target["threshold"]  # well above the balanced threshold
    priced = prepare("tabl", ohlcv, options("tabl", costly))
    assert priced.target["threshold"] == costly
    labels = np.array([int(priced.train_set[i][1]) for i in range(len(priced.train_set))])
    shares = np.bincount(labels, minlength=3) / len(labels)
    assert shares[1] > 0.6, "most hourly moves do not pay three balanced thresholds"
    cheap = prepare("tabl", ohlcv, options("tabl", free.target["threshold"] / 10))
    assert cheap.target["threshold"] == free.target["threshold"], "a small cost changes nothing"


def test_portfolio_heads_learn_net_of_turnover_and_others_do_not(ohlcv):
    cross = prepare("cross_asset", ohlcv, options("cross_asset", 0.0013))
    assert cross.model.head == "portfolio" and cross.recipe.turnover_cost == pytest.approx(0.00065)
    tabl = prepare("tabl", ohlcv, options("tabl", 0.0013))
    assert tabl.recipe.turnover_cost == 0.0


def test_multiscale_direction_targets_use_the_cost(ohlcv, linear_dir):
    panel = real_panel(linear_dir, *PERIOD)
    starts = np.asarray(panel.starts)
    hyper = {"scales": ("1h", "4h"), "seq_lens": (8, 4), "n_layers": (1, 1), "n_heads": (2, 2),
             "d_model": 16, "cross_heads": 2}  # fmt: skip
    scales = {s: scale_bars(starts, ohlcv, "1h", s) for s in ("1h", "4h")}
    cost = 0.004
    prepared = prepare(
        "multiscale", ohlcv,
        TrainOptions(features=MULTISCALE_FEATURES[:4], model=hyper, horizons=(1, 2, 4), cost=cost),
        scales=scales,
    )  # fmt: skip
    targets = [prepared.train_set[i][1] for i in range(0, len(prepared.train_set), 7)]
    direction = np.array([float(t["direction"]) for t in targets])
    assert set(np.unique(direction)) == {0.0, 0.5, 1.0}
    scale = np.asarray(prepared.target["target_scale"])[0]
    short = np.array([float(t["returns"][0]) for t in targets]) * scale
    np.testing.assert_array_equal(direction == 0.5, np.abs(short) < cost)


def test_net_sharpe_loss_charges_turnover_between_consecutive_samples():
    returns = torch.tensor([[0.01, -0.02], [0.03, 0.00], [-0.01, 0.02], [0.02, 0.01]])
    steady = torch.full((4, 2), 0.5)
    flipping = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    # steady weights trade nothing: the cost only drops the first sample (no predecessor)
    gross = (steady * returns).sum(-1)[1:]
    expected = -gross.mean() / (gross.std(unbiased=False) + 1e-8)
    assert float(head_loss("portfolio", steady, returns, 0.01)) == pytest.approx(float(expected))
    net = (flipping * returns).sum(-1)[1:] - 0.01 * 2.0
    expected = -net.mean() / (net.std(unbiased=False) + 1e-8)
    assert float(head_loss("allocation", flipping, returns, 0.01)) == pytest.approx(float(expected))
    assert float(head_loss("allocation", flipping, returns, 0.01)) > float(
        head_loss("allocation", flipping, returns, 0.0)
    )


def test_consecutive_batches_cover_every_sample_once_in_runs_in_varied_order():
    generator = torch.Generator().manual_seed(3)
    sampler = ConsecutiveBatches(103, 16, generator)
    epochs = [list(sampler) for _ in range(4)]
    for batches in epochs:
        seen = [i for batch in batches for i in batch]
        assert len(seen) == len(set(seen)) and set(seen) <= set(range(103))
        assert len(seen) >= 103 - 2, "at most a lone sample at each end is left out"
        assert all(b == list(range(b[0], b[0] + len(b))) for b in batches)
        assert all(2 <= len(b) <= 16 for b in batches)
        assert len(batches) <= len(sampler)
    assert len({tuple(map(tuple, e)) for e in epochs}) == 4, "each epoch cuts and orders anew"
    again = ConsecutiveBatches(103, 16, torch.Generator().manual_seed(3))
    assert list(again) == epochs[0], "seeded: the same batches"
