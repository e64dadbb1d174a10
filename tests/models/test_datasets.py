"""Training data without leakage: targets after decisions, normalisation from training rows,
purged walk-forward folds, multi-scale windows of closed bars only."""

from __future__ import annotations

import numpy as np
import pytest

from bot.core.buffer import FeatureBuffer
from bot.core.timeutil import HOUR_MS
from bot.feeds.synthetic import synthetic_panel
from models.datasets import (
    MultiScaleDataset,
    Normalizer,
    WindowDataset,
    balanced_threshold,
    decision_rows,
    forward_log_returns,
    three_classes,
    walk_forward,
)
from strategies.model_fitting import decision_mask, scale_bars


def test_targets_lie_strictly_after_the_decision():
    close = np.array([100.0, 110.0, 99.0, 99.0])
    r = forward_log_returns(close, 1)
    assert r[0] == pytest.approx(np.log(1.1)) and np.isnan(r[-1])
    assert forward_log_returns(close, 2)[1] == pytest.approx(np.log(0.9))
    classes = three_classes(r, 0.05)
    assert classes.tolist() == [2, 0, 1, -1]
    assert balanced_threshold(np.array([0.01, -0.02, 0.03, np.nan])) == pytest.approx(1 / 60)


def test_decision_rows_have_a_warm_window_behind_and_a_target_ahead():
    rows = decision_rows(100, lookback=10, horizon=3, first_valid=20)
    assert rows[0] == 29 and rows[-1] == 96


def test_normalisation_comes_from_the_rows_training_windows_read():
    features = np.random.default_rng(0).normal(size=(200, 2, 3))
    train = np.arange(20, 100)
    stats = Normalizer.fit(features, train, lookback=10)
    changed = features.copy()
    changed[100:] += 50.0  # validation/test data: must not move the statistics
    changed[:11] -= 50.0  # before the first window
    same = Normalizer.fit(changed, train, lookback=10)
    np.testing.assert_array_equal(stats.mean, same.mean)
    changed[11] += 50.0  # the first training window's first row: must move them
    assert not np.array_equal(Normalizer.fit(changed, train, 10).mean, stats.mean)
    assert Normalizer.from_dict(stats.to_dict()).mean.tolist() == stats.mean.tolist()


def test_walk_forward_folds_are_purged_and_embargoed():
    rows = np.arange(50, 1050)
    folds = walk_forward(rows, n_folds=4, lookback=24, horizon=6, min_train=300)
    assert len(folds) == 4
    previous_end = -1
    for fold in folds:
        # no training target (t + horizon) reaches a test window (starting t - lookback + 1)
        assert fold.train[-1] + 6 < fold.test[0] - 24 + 1
        assert fold.test[0] > previous_end
        previous_end = fold.test[-1]
        assert np.all(np.diff(fold.test) == 1)
    assert len(folds[-1].train) > len(folds[0].train)  # expanding window
    with pytest.raises(ValueError, match="cannot make 4 folds"):
        walk_forward(rows[:320], n_folds=4, lookback=24, horizon=6, min_train=300)


def test_windows_are_views_of_the_rows_before_each_decision():
    features = np.arange(40 * 2 * 1, dtype=np.float32).reshape(40, 2, 1)
    data = WindowDataset(features, np.array([9, 20]), lookback=5, targets=np.arange(40))
    x, y = data[1]
    assert x.shape == (2, 5, 1) and y == 20
    assert x[0, :, 0].tolist() == features[16:21, 0, 0].tolist()


def test_multiscale_windows_hold_exactly_the_closed_bars_the_engine_shows():
    panel = synthetic_panel(("AAAUSDT",), "1h", 24 * 20, seed=3, start_ms=0)
    values = np.asarray(panel.values)
    lengths = {"1h": 6, "4h": 5, "1d": 3}
    bars = {s: scale_bars(panel.starts, values, "1h", s) for s in lengths}
    decisions = np.array([24 * 5 - 1, 24 * 5 + 1, 24 * 9 + 3, 24 * 20 - 1])
    data = MultiScaleDataset(
        {s: (b.visible_at, b.ohlcv[:, 0]) for s, b in bars.items()}, lengths, decisions,
        {"y": np.zeros(len(decisions))},
    )  # fmt: skip
    buffer = FeatureBuffer(panel.symbols, "1h", {"1h": 10, "4h": 10, "1d": 10}, len(panel))
    buffer.append(panel)
    assert len(data) == len(decisions)
    for i, row in enumerate(decisions):
        x, _ = data[i]
        for scale, length in lengths.items():
            seen = buffer.window(length, None if scale == "1h" else scale, int(row))
            np.testing.assert_array_equal(x[scale].numpy(), seen.values[0].astype(np.float32))
            # the last bar in the window had closed by the decision (close of bar `row`)
            close_time = int(panel.starts[row]) + HOUR_MS
            assert seen.starts[-1] + {"1h": 1, "4h": 4, "1d": 24}[scale] * HOUR_MS <= close_time


def test_decisions_are_sampled_where_the_strategy_rebalances():
    starts = np.arange(0, 48) * HOUR_MS
    assert decision_mask(starts, "1h", "bar").all()
    daily = decision_mask(starts, "1h", "1d")
    assert np.flatnonzero(daily).tolist() == [23, 47]  # bars closing at midnight
