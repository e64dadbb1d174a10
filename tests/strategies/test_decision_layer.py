"""The cost-aware decision layer: each rule does what it says, on its own and together, and a
block of rows gives the decisions one row at a time gives."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bot.core.timeutil import HOUR_MS
from strategies.decision_layer import YEAR_MS, DecisionLayer, DecisionRules, auto_band
from strategies.selection import choose, net_returns, selection_grid

A = 5


def signals(rows: int, seed: int = 1, scale: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Noisy, flip-flopping raw weights like a model's, at hourly decision times."""
    rng = np.random.default_rng(seed)
    slow = np.cumsum(rng.normal(0, 0.05, size=(rows, A)), axis=0)
    raw = np.tanh(slow + rng.normal(0, scale, size=(rows, A))) / A
    times = 1_700_000_000_000 + HOUR_MS * np.arange(rows, dtype=np.int64)
    return times, raw


def held_path(out: np.ndarray) -> np.ndarray:
    """The weights held after each row (NaN rows keep the previous; the start is flat)."""
    held, path = np.zeros(out.shape[1]), []
    for row in out:
        held = held if np.isnan(row).all() else row
        path.append(held)
    return np.array(path)


def test_default_rules_pass_the_signal_through_unchanged():
    times, raw = signals(200)
    layer = DecisionLayer(DecisionRules(), A)
    assert layer.apply(times, raw) is raw


def test_band_never_trades_inside_its_threshold_and_always_outside_it():
    times, raw = signals(3000)
    band = 0.05
    out = DecisionLayer(DecisionRules(band=band), A).apply(times, raw)
    held = np.vstack([np.zeros(A), held_path(out)])
    before, after = held[:-1], held[1:]
    moved = after != before
    gap = np.abs(raw - before)
    assert moved.any() and (~moved).any()
    assert (gap[moved] > band).all(), "a weight moved by less than the band"
    assert (after[moved] == raw[moved]).all(), "a move goes all the way to the target"
    assert not moved[gap > band].__invert__().any(), "a change beyond the band was skipped"
    decided = ~np.isnan(out).all(axis=1)
    assert (moved.any(axis=1) == decided).all(), "a row without a move is no decision"


def test_smoothing_is_an_ema_over_decisions():
    times, raw = signals(500)
    raw[::7] = np.nan  # rows without a decision do not advance the EMA
    out = DecisionLayer(DecisionRules(smoothing=9, band=1e-12), A).apply(times, raw)
    decided = ~np.isnan(raw).all(axis=1)
    expected = pd.DataFrame(raw[decided]).ewm(span=9, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(held_path(out)[decided], expected, rtol=0, atol=1e-12)


def test_min_hold_keeps_each_changed_weight_for_at_least_that_long():
    times, raw = signals(2000)
    out = DecisionLayer(DecisionRules(min_hold="12h"), A).apply(times, raw)
    held = np.vstack([np.zeros(A), held_path(out)])
    for s in range(A):
        changes = times[np.flatnonzero(held[1:, s] != held[:-1, s])]
        assert len(changes) > 20
        assert np.diff(changes).min() >= 12 * HOUR_MS
    # and without the rule the same signal changes every hour
    free = DecisionLayer(DecisionRules(band=1e-9), A).apply(times, raw)
    assert (~np.isnan(free).all(axis=1)).mean() > 0.99


def test_market_neutral_weights_sum_to_zero_within_the_gross_cap():
    times, raw = signals(2000)
    rules = DecisionRules(market_neutral=True, band=0.02, gross=1.5, smoothing=3)
    out = DecisionLayer(rules, A).apply(times, raw * 8)  # a signal well above the cap
    decided = out[~np.isnan(out).all(axis=1)]
    assert len(decided) > 100
    assert np.abs(decided.sum(axis=1)).max() < 1e-12
    assert np.abs(decided).sum(axis=1).max() <= 1.5 + 1e-12
    assert (decided < 0).any() and (decided > 0).any()


def test_long_only_never_shorts_and_gross_cap_holds():
    times, raw = signals(1000)
    out = DecisionLayer(DecisionRules(long_only=True, band=0.01, gross=0.5), A).apply(
        times, raw * 10
    )
    decided = out[~np.isnan(out).all(axis=1)]
    assert len(decided) and (decided >= 0).all()
    assert np.abs(decided).sum(axis=1).max() <= 0.5 + 1e-12


@pytest.mark.parametrize("budget", [5.0, 40.0])
def test_turnover_budget_holds_over_years_and_binds(budget):
    times, raw = signals(2 * 8760, scale=0.6)
    free = DecisionLayer(DecisionRules(band=1e-9), A)
    free.apply(times, raw)
    layer = DecisionLayer(DecisionRules(band=1e-9, turnover_budget=budget), A)
    out = layer.apply(times, raw)
    years = (times[-1] - times[0]) / YEAR_MS
    assert free.turnover > 3 * budget * years, "the signal must want more than the budget"
    assert layer.turnover <= budget * years + budget / 12 + 1e-9
    assert layer.turnover >= 0.9 * budget * years, "the budget is spent, not hoarded"
    # every year-long stretch stays within a year's budget plus what may be held in hand
    held = np.vstack([np.zeros(A), held_path(out)])
    spent = np.abs(np.diff(held, axis=0)).sum(axis=1).cumsum()
    year_rows = 8760
    assert (spent[year_rows:] - spent[:-year_rows]).max() <= budget * (1 + 1 / 12) + 1e-9
    # partial moves head for the target: never away from it
    before = held[:-1]
    step = held[1:] - before
    assert (step * (raw - before) >= -1e-15).all()


def test_a_block_decides_as_one_row_at_a_time():
    times, raw = signals(3000)
    raw[::5] = np.nan
    rules = DecisionRules(band=0.03, smoothing=4, min_hold="6h", market_neutral=True,
                          turnover_budget=30.0, gross=1.0)  # fmt: skip
    block = DecisionLayer(rules, A).apply(times, raw)
    single = DecisionLayer(rules, A)
    rows = np.vstack([single.apply(times[i : i + 1], raw[i : i + 1]) for i in range(len(raw))])
    assert np.array_equal(block, rows, equal_nan=True)
    parts = DecisionLayer(rules, A)
    cuts = [0, 17, 18, 900, 2500, 3000]
    chunks = [parts.apply(times[a:b], raw[a:b]) for a, b in itertools.pairwise(cuts)]
    assert np.array_equal(block, np.vstack(chunks), equal_nan=True)


def test_retune_keeps_what_is_held():
    times, raw = signals(400)
    layer = DecisionLayer(DecisionRules(band=0.01, turnover_budget=20.0), A)
    layer.apply(times[:200], raw[:200])
    held = layer.held
    layer.retune(DecisionRules(band=0.5, turnover_budget=20.0), 0.5)
    out = layer.apply(times[200:], raw[200:])
    assert np.isnan(out).all(), "nothing moves by half the equity in this signal"
    assert np.array_equal(layer.held, held)


def test_auto_band_scales_with_cost_and_signal():
    assert auto_band(0.2, 0.01, 0.0013, 1.0) == pytest.approx(0.2 * 0.13)
    assert auto_band(0.2, 0.01, 0.0013, 2.0) == pytest.approx(0.2 * 0.26)
    assert auto_band(0.2, 0.0005, 0.0013, 1.0) == pytest.approx(0.2)  # costs above the move
    assert auto_band(0.2, 0.0, 0.0013, 1.0) == 0.0
    layer = DecisionLayer(DecisionRules(band="auto", band_scale=2.0, round_trip_bp=10), A)
    layer.calibrate(0.1, 0.01)
    assert layer.band == pytest.approx(0.1 * 2 * 0.1)


@pytest.mark.parametrize(
    "changes, key",
    [({"band": -0.1}, "band"), ({"band": "wide"}, "band"), ({"smoothing": 0}, "smoothing"),
     ({"smoothing": 2.5}, "smoothing"), ({"min_hold": "soon"}, "min_hold"),
     ({"market_neutral": True, "long_only": True}, "market_neutral"),
     ({"turnover_budget": 0.0}, "turnover_budget"), ({"gross": 0}, "gross"),
     ({"band_scale": 0}, "band_scale")],
)  # fmt: skip
def test_bad_rules_are_refused_by_name(changes, key):
    with pytest.raises(ValueError, match=key):
        DecisionRules(**changes)


def test_net_returns_charge_half_the_round_trip_per_unit_traded():
    weights = np.array([[0.5, 0.5], [np.nan, np.nan], [1.0, 0.0]])
    moves = np.array([[0.01, 0.0], [0.02, -0.01], [0.0, 0.05]])
    net, turnover = net_returns(weights, moves, round_trip=0.002)
    assert turnover == pytest.approx(2.0)
    np.testing.assert_allclose(net, [0.005 - 0.001, 0.005, 0.0 - 0.001])


def test_selection_prefers_the_setting_that_earns_after_costs():
    """A noisy signal around a slow true one: trading every wiggle loses to the costs, a wide
    band keeps the slow part."""
    rng = np.random.default_rng(3)
    rows = 2000
    trend = np.sign(np.sin(np.arange(rows)[:, None] / 60 + np.arange(A)))
    returns = trend * 0.002 + rng.normal(0, 0.004, size=(rows, A))
    raw = (trend + rng.normal(0, 2.0, size=(rows, A))) / (3 * A)
    times = HOUR_MS * np.arange(rows, dtype=np.int64)
    rules = DecisionRules(band="auto", round_trip_bp=40)
    grid = selection_grid({"band_scale": [0.01, 0.5], "smoothing": [1, 20]}, rules)
    choice = choose(grid, rules, lambda c: raw, times, returns, typical_move=0.004)
    assert choice.settings == {"band_scale": 0.5, "smoothing": 20}
    assert choice.scores[-1] == max(choice.scores) > choice.scores[0]
    assert choice.label() == "band_scale=0.5,smoothing=20"


@pytest.mark.parametrize(
    "select, message",
    [({"gross": [1, 2]}, "cannot vary 'gross'"), ({"smoothing": []}, "non-empty list"),
     ({"smoothing": 3}, "non-empty list"), ({"band_scale": [1, 2]}, "band = 'auto'"),
     ({"smoothing": [0, 2]}, "smoothing"), ({"smoothing": list(range(1, 66))}, "≤ 64")],
)  # fmt: skip
def test_bad_grids_are_refused_at_start_up(select, message):
    with pytest.raises(ValueError, match=message):
        selection_grid(select, DecisionRules())
