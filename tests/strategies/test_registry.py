import pytest

from strategies.baselines.ma_crossover import MovingAverageCrossover
from strategies.registry import (
    MAX_LOOKBACK_BARS,
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


class Greedy(MovingAverageCrossover):
    """A plugin whose constructor allocates its window up front."""

    def __init__(self, symbols, interval="1h", size=10):
        super().__init__(symbols, interval)
        if size > 10**6:
            raise MemoryError
        self.buffer = [0.0] * size


class Deep(MovingAverageCrossover):
    """A plugin that reads a higher interval over a long window."""

    def __init__(self, symbols, interval="1h", days=30):
        super().__init__(symbols, interval)
        self.extra_intervals = {"1d": days}


def test_constructor_failures_become_parameter_errors_naming_the_strategy():
    overflow = r"^strategy 'momentum': cannot convert float infinity to integer$"
    with pytest.raises(StrategyParameterError, match=overflow):
        create("momentum", ["BTCUSDT", "ETHUSDT"], "1h", {"lookback": float("inf")})
    with pytest.raises(StrategyParameterError, match=r"^strategy 'tests.*:Greedy': MemoryError$"):
        create(f"{__name__}:Greedy", ["BTCUSDT"], "1h", {"size": 10**12})


def test_lookback_and_warmup_are_bounded():
    big = MAX_LOOKBACK_BARS
    assert create("momentum", ["BTCUSDT"], "1h", {"lookback": big - 1, "top": 1}).lookback == big
    too_long = r"^strategy 'momentum': lookback of 5,000,001 bars is more than the 5,000,000 "
    with pytest.raises(StrategyParameterError, match=too_long + "the engine can hold$"):
        create("momentum", ["BTCUSDT"], "1h", {"lookback": big, "top": 1})
    with pytest.raises(StrategyParameterError, match=r"'ma_crossover': lookback of 1e\+18 bars"):
        create("ma_crossover", ["BTCUSDT"], "1h", {"slow": 10**18})
    with pytest.raises(StrategyParameterError, match=r"lookback on 1d of 9,000,000 bars"):
        create(f"{__name__}:Deep", ["BTCUSDT"], "1h", {"days": 9_000_000})
