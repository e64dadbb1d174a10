"""The search space: values typed like ``bot backtest --param``, grids, seeded draws."""

import pytest

from backtest.sweep_optuna import OptunaSearch
from backtest.sweep_space import (
    Choice,
    Range,
    SpaceError,
    check_names,
    grid,
    parse_space,
    random_draws,
)
from strategies.registry import accepted_parameters, resolve


def test_values_are_typed_like_backtest_params():
    dims = parse_space(["lookback=24,72", "rebalance=1d,1w", "gross=0.5", "long_short=true,false"])
    assert dims == [
        Choice("lookback", (24, 72)),
        Choice("rebalance", ("1d", "1w")),
        Choice("gross", (0.5,)),
        Choice("long_short", (True, False)),
    ]


def test_ranges_integer_float_and_log():
    assert parse_space(["lookback=24:336:log", "gross=0.5:1.5"]) == [
        Range("lookback", 24, 336, log=True),
        Range("gross", 0.5, 1.5),
    ]
    assert Range("lookback", 24, 336).integer and not Range("gross", 0.5, 1.5).integer


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("lookback", "--param 'lookback': write key=v1,v2,... or key=lo:hi"),
        ("lookback=", "--param 'lookback=': write key=v1,v2,... or key=lo:hi"),
        ("lookback=5:1", "--param lookback=5:1: the range needs low < high"),
        ("gross=0:2:log", "--param gross=0:2:log: a log range needs low > 0"),
        ("gross=1,nan", "--param gross=1,nan: not a finite number"),
    ],
)
def test_bad_values_are_named(flag, message):
    with pytest.raises(SpaceError) as err:
        parse_space([flag])
    assert str(err.value) == message


def test_a_parameter_given_twice_is_refused():
    with pytest.raises(SpaceError, match="--param top: given twice"):
        parse_space(["top=1", "top=2"])


def test_unknown_parameter_names_the_strategy_and_its_parameters():
    accepted = accepted_parameters(resolve("momentum"))
    check_names("momentum", accepted, parse_space(["lookback=1,2", "top=1"]))
    with pytest.raises(SpaceError) as err:
        check_names("momentum", accepted, parse_space(["lookbak=1,2"]))
    assert str(err.value).startswith("--param lookbak: strategy 'momentum' has no parameter")
    assert "lookback, top, rebalance" in str(err.value)


def test_grid_is_the_product_first_dimension_slowest():
    assert grid(parse_space(["a=1,2", "b=x,y,z"])) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"},
    ]  # fmt: skip


def test_grid_refuses_ranges():
    with pytest.raises(SpaceError, match="--param b: a range needs --search random or optuna"):
        grid(parse_space(["a=1,2", "b=1:5"]))


def test_random_draws_are_seeded_in_bounds_and_typed():
    dims = parse_space(["lookback=24:336:log", "gross=0.5:1.5", "top=1,2,3"])
    draws = random_draws(dims, 50, seed=3)
    assert draws == random_draws(dims, 50, seed=3)
    assert draws != random_draws(dims, 50, seed=4)
    assert all(isinstance(d["lookback"], int) and 24 <= d["lookback"] <= 336 for d in draws)
    assert all(isinstance(d["gross"], float) and 0.5 <= d["gross"] <= 1.5 for d in draws)
    assert {d["top"] for d in draws} == {1, 2, 3}


def test_optuna_asks_are_seeded_and_learn_from_scores():
    dims = parse_space(["lookback=24:336", "gross=0.5:1.5:log", "top=1,2"])

    def session(seed: int) -> list[dict]:
        search, seen = OptunaSearch(dims, seed), []
        for _ in range(12):
            number, params = search.ask()
            seen.append(params)
            search.tell(number, None if params["top"] == 2 else -abs(params["lookback"] - 100))
        return seen

    first = session(5)
    assert first == session(5) and first != session(6)
    assert all(24 <= p["lookback"] <= 336 and 0.5 <= p["gross"] <= 1.5 for p in first)


def test_optuna_refuses_values_it_cannot_pick():
    with pytest.raises(SpaceError, match="--param w: Optuna picks only"):
        OptunaSearch(parse_space(["w=[1,2],[3,4]"]), 0)
