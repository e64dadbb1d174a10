"""The model-health checks on their own: feature drift and prediction collapse fire on
constructed inputs and not on healthy ones, their verdicts do not depend on how the decisions
are split into blocks, and their settings are checked when a strategy is made."""

from __future__ import annotations

import numpy as np
import pytest

from strategies.model_backed import TABLStrategy
from strategies.model_health import COLLAPSE, DRIFT, HealthConfig, HealthMonitor
from strategies.registry import StrategyParameterError, create

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
NAMES = ("log_return", "range", "relative_volume")


def healthy(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` decisions as a well-fed, working model sees them: z-scored features with
    fat tails and persistence (as real features have), and outputs that move."""
    rng = np.random.default_rng(seed)
    shocks = rng.standard_t(3, size=(n, len(SYMBOLS), len(NAMES))) / np.sqrt(3)
    features = np.empty_like(shocks)
    features[0] = shocks[0]
    for t in range(1, n):  # AR(1) with unit variance
        features[t] = 0.9 * features[t - 1] + np.sqrt(1 - 0.81) * shocks[t]
    outputs = np.tanh(features.sum(axis=2))  # [n, A], depends on the inputs
    return features, outputs


def screen_in_blocks(config, features, outputs, sizes):
    """Feed decisions in blocks of the given sizes (cycled); the first finding's global index."""
    monitor = HealthMonitor(config)
    done, k = 0, 0
    while done < len(features):
        size = sizes[k % len(sizes)]
        k += 1
        found = monitor.screen(
            features[done : done + size], outputs[done : done + size], SYMBOLS, NAMES
        )
        if found is not None:
            return done + found[0], found[1]
        done += size
    return None


def test_healthy_decisions_pass_every_check():
    features, outputs = healthy(5000)
    assert screen_in_blocks(HealthConfig(), features, outputs, [5000]) is None


def test_a_drifted_feature_halts_once_its_window_mean_passes_the_limit():
    features, outputs = healthy(1000)
    features[600:, 2, 1] += 12.0  # SOL's range moved 12 training SDs (a feed in other units)
    config = HealthConfig(window=100, drift_z=8.0)
    row, finding = screen_in_blocks(config, features, outputs, [1000])
    assert finding.check == DRIFT
    assert finding.detail["feature"] == "range" and finding.detail["symbol"] == "SOLUSDT"
    assert finding.detail["z"] > 8.0
    assert "feature drift: range on SOLUSDT z=+" in finding.reason
    # the mean of the last 100 crosses 8 after about 8/12 of a window of shifted decisions
    assert 600 + 50 <= row <= 600 + 80
    window = features[row - 99 : row + 1, 2, 1]
    assert window.mean() > 8.0 > features[row - 100 : row, 2, 1].mean()


def test_a_single_outlier_is_not_drift_but_a_non_finite_input_is():
    features, outputs = healthy(400)
    features[300, 0, 0] = 500.0  # a crash bar: 500 SDs, once
    assert screen_in_blocks(HealthConfig(window=100), features, outputs, [400]) is None
    features[350, 1, 2] = np.inf
    row, finding = screen_in_blocks(HealthConfig(window=100), features, outputs, [400])
    assert row == 350 and finding.check == DRIFT
    assert "relative_volume on ETHUSDT is inf" in finding.reason


def test_no_drift_verdict_before_the_window_is_full():
    features, outputs = healthy(300)
    features += 20.0  # off from the start
    row, finding = screen_in_blocks(HealthConfig(window=168), features, outputs, [300])
    assert row == 167 and finding.check == DRIFT


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_output_is_a_collapse_at_once(bad):
    features, outputs = healthy(300)
    outputs[123, 1] = bad
    row, finding = screen_in_blocks(HealthConfig(), features, outputs, [300])
    assert row == 123 and finding.check == COLLAPSE
    assert finding.reason.startswith("prediction collapse: ")
    assert ("NaN" if np.isnan(bad) else "infinite") in finding.reason


def test_outputs_stuck_for_a_window_are_a_collapse_and_moving_ones_are_not():
    features, outputs = healthy(300)
    outputs[100:] = outputs[100]  # the model answers the same whatever it is fed
    row, finding = screen_in_blocks(HealthConfig(collapse_window=24), features, outputs, [300])
    assert row == 100 + 23 and finding.check == COLLAPSE
    assert "for 24 decisions in a row" in finding.reason
    # moving by more than the tolerance, in a single output of one decision, is not stuck
    wobbly = outputs.copy()
    wobbly[110::20, 0] += 1e-5
    assert screen_in_blocks(HealthConfig(collapse_window=24), features, wobbly, [300]) is None
    # ... and a tolerance above the wobble calls it stuck again
    config = HealthConfig(collapse_window=24, collapse_tol=1e-4)
    assert screen_in_blocks(config, features, wobbly, [300])[0] == 123


def test_checks_can_be_turned_off():
    features, outputs = healthy(300)
    features[:, 0, 0] += 50.0
    outputs[150:] = np.nan
    assert screen_in_blocks(HealthConfig(enabled=False), features, outputs, [300]) is None
    only_collapse = HealthConfig(drift_z=0)
    assert screen_in_blocks(only_collapse, features, outputs, [300])[1].check == COLLAPSE
    outputs[150:] = 0.5
    assert screen_in_blocks(HealthConfig(drift_z=0, collapse_window=0), features, outputs,
                            [300]) is None  # fmt: skip


@pytest.mark.parametrize("case", ["drift", "stuck", "nan", "healthy"])
def test_verdicts_do_not_depend_on_how_decisions_are_split_into_blocks(case):
    features, outputs = healthy(900, seed=4)
    if case == "drift":  # a slow ramp, so the window mean crosses the limit between rows
        features[400:, 1, 0] += np.linspace(0, 30, 500)
    elif case == "stuck":
        outputs[500:] = outputs[500]
    elif case == "nan":
        outputs[777, 2] = np.nan
    config = HealthConfig(window=72, collapse_window=12)
    whole = screen_in_blocks(config, features, outputs, [900])
    for sizes in ([1], [7], [100, 1, 33], [450, 450], [899, 1]):
        assert screen_in_blocks(config, features, outputs, sizes) == whole
    assert (whole is None) == (case == "healthy")


def test_a_monitor_reset_forgets_the_windows():
    features, outputs = healthy(60)
    outputs[:] = outputs[0]
    monitor = HealthMonitor(HealthConfig(collapse_window=40))
    assert monitor.screen(features[:30], outputs[:30], SYMBOLS, NAMES) is None
    monitor.reset()  # a new model: its outputs are judged from scratch
    assert monitor.screen(features[30:60], outputs[30:60], SYMBOLS, NAMES) is None
    assert monitor.screen(features[:10], outputs[:10], SYMBOLS, NAMES)[0] == 9


def test_settings_are_read_from_a_table_true_or_false():
    assert HealthConfig.of(None) == HealthConfig.of(True) == HealthConfig()
    assert HealthConfig.of(False).enabled is False
    config = HealthConfig.of({"drift_z": 6, "window": 72, "collapse_window": 0})
    assert (config.drift_z, config.window, config.collapse_window) == (6.0, 72, 0)
    for bad, message in [
        ({"drift": 3}, "unknown key 'drift'"),
        ({"window": 1}, "window must be in"),
        ({"window": 2.5}, "window must be a whole number"),
        ({"drift_z": -1}, "drift_z must be"),
        ({"drift_z": "high"}, "drift_z must be a number"),
        ({"collapse_window": 1}, "collapse_window must be 0"),
        ({"collapse_tol": float("nan")}, "collapse_tol must be"),
        ({"enabled": "no"}, "enabled must be true or false"),
        ("off", "health must be true, false or a table"),
    ]:
        with pytest.raises(ValueError, match=message):
            HealthConfig.of(bad)


def test_a_model_strategy_takes_health_as_a_parameter():
    s = TABLStrategy(SYMBOLS, "1h", retrain_every="720h", health={"drift_z": 5})
    assert s.health.drift_z == 5.0 and s.health.enabled
    assert TABLStrategy(SYMBOLS, "1h", retrain_every="720h", health=False).health.enabled is False
    assert TABLStrategy(SYMBOLS, "1h", retrain_every="720h").health == HealthConfig()
    with pytest.raises(StrategyParameterError, match=r"strategy 'tabl': health: unknown key"):
        create("tabl", SYMBOLS, "1h", {"retrain_every": "720h", "health": {"z": 3}})
