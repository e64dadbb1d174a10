"""The evaluation's statistics on series whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.evaluation_stats import (
    block_indices,
    break_even_bp,
    daily_returns,
    sharpe,
    sharpe_difference_interval,
)


def test_daily_returns_start_from_the_initial_equity_and_days_are_whole():
    equity = np.array([101.0, 99.99, 102.0, 102.0, 103.02])
    np.testing.assert_allclose(daily_returns(equity, 100.0, 2), [-0.0001, 102 / 99.99 - 1])


def test_break_even_is_where_the_scaled_costs_eat_the_mean_gross_return():
    rng = np.random.default_rng(1)
    gross = rng.normal(0.001, 0.01, 5000)
    paid = np.abs(rng.normal(0.0004, 0.0001, 5000))  # what 6.5 bp a fill cost on each bar
    cost = break_even_bp(gross, gross - paid, 6.5)
    assert cost == pytest.approx(6.5 * gross.mean() / paid.mean())
    at_break_even = gross - (cost / 6.5) * paid
    assert at_break_even.mean() == pytest.approx(0.0, abs=1e-15)
    assert break_even_bp(gross - 0.01, gross - 0.01 - paid, 6.5) == 0.0  # loses before costs
    assert break_even_bp(gross, gross, 6.5) is None  # never traded


def test_sharpe_is_annualised_and_undefined_when_flat():
    r = np.array([0.01, -0.005, 0.02, 0.0])
    assert sharpe(r, 365) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    assert math.isnan(sharpe(np.zeros(5), 365))


def test_blocks_are_runs_of_consecutive_days():
    index = block_indices(100, 10, np.random.default_rng(2))
    assert len(index) == 100
    runs = index.reshape(10, 10)
    assert (np.diff(runs, axis=1) % 100 == 1).all()


def test_interval_separates_a_real_edge_from_none():
    rng = np.random.default_rng(3)
    days = 730
    benchmark = rng.normal(0.0, 0.02, days)
    better = np.stack([benchmark + rng.normal(0.002, 0.005, days) for _ in range(3)])
    estimate, low, high = sharpe_difference_interval(better, benchmark, samples=400)
    assert 0 < low < estimate < high
    same = np.stack([benchmark + rng.normal(0.0, 0.005, days) for _ in range(3)])
    estimate, low, high = sharpe_difference_interval(same, benchmark, samples=400)
    assert low < 0 < high
