"""The assembly builds the configured strategies: a strategy that prices its trades gets the
run's round trip unless it was given one."""

from __future__ import annotations

from bot.assembly import make_strategies
from bot.config import load_settings
from tests.conftest import ROOT


def strategies(params: dict, name: str = "tabl", **overrides):
    values = {"strategies": [{"name": name, "params": params}], **overrides}
    return make_strategies(load_settings(ROOT / "config.toml", values))


def test_a_model_strategy_prices_its_trades_at_the_runs_costs():
    ((strategy, _),) = strategies(
        {"retrain_every": "720h"}, **{"portfolio.fee_bp": 4.0, "portfolio.slippage_bp": 3.0}
    )
    assert strategy.rules.round_trip_bp == 14.0  # 2 × (4 + 3), not the default 13
    ((free, _),) = strategies(
        {"retrain_every": "720h"}, **{"portfolio.fee_bp": 0.0, "portfolio.slippage_bp": 0.0}
    )
    assert free.rules.round_trip_bp == 0.0


def test_a_round_trip_given_to_the_strategy_is_kept():
    ((strategy, _),) = strategies({"retrain_every": "720h", "round_trip_bp": 20.0})
    assert strategy.rules.round_trip_bp == 20.0


def test_a_strategy_without_costs_gets_no_round_trip_parameter():
    ((strategy, _),) = strategies({"rebalance": "1w"}, name="equal_weight")
    assert not hasattr(strategy, "rules")
