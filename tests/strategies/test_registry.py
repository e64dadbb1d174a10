import pytest

from strategies.baselines.ma_crossover import MovingAverageCrossover
from strategies.registry import (
    StrategyNotFoundError,
    StrategyParameterError,
    available,
    create,
    resolve,
)


def test_builtin_strategies_are_registered_by_entry_point():
    names = available()
    assert {"equal_weight", "buy_and_hold", "momentum", "ma_crossover"} <= set(names)
    assert resolve("ma_crossover") is MovingAverageCrossover


def test_module_path_and_parameters():
    strategy = create(
        "strategies.baselines.ma_crossover:MovingAverageCrossover", ["BTCUSDT"], "1h",
        {"fast": 3, "slow": 9},
    )  # fmt: skip
    assert (strategy.fast, strategy.slow, strategy.lookback) == (3, 9, 10)


def test_unknown_names_and_parameters_are_clear_errors():
    with pytest.raises(StrategyNotFoundError, match=r"unknown strategy 'nope'; available: .*ma_"):
        resolve("nope")
    with pytest.raises(StrategyNotFoundError, match="cannot import"):
        resolve("no.such.module:Thing")
    with pytest.raises(StrategyNotFoundError, match="not a subclass"):
        resolve("bot.core.clock:SimulatedClock")
    with pytest.raises(StrategyParameterError, match=r"has no parameter 'fats'.*fast, slow"):
        create("ma_crossover", ["BTCUSDT"], "1h", {"fats": 3})
    with pytest.raises(StrategyParameterError, match=r"'ma_crossover': need 1 <= fast < slow"):
        create("ma_crossover", ["BTCUSDT"], "1h", {"fast": 30, "slow": 10})
