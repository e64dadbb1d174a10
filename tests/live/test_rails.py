"""Rails refuse oversized orders, oversized positions and order bursts before any request."""

import math

import pytest

from bot.core.events import Order
from bot.live.legs import Leg
from bot.live.rails import RailLimits, Rails


def leg(qty: float, reduce_only: bool = False, n: int = 0) -> Leg:
    order = Order("x", "BTCUSDT", qty, 0)
    return Leg(f"id-{n}", "BTCUSDT", qty, reduce_only, 0, order)


def test_an_order_above_the_notional_limit_is_refused():
    rails = Rails(RailLimits(max_order_notional=1_000))
    assert rails.check(leg(0.01), 50_000, 0.0, 0) is None  # 500 USDT
    assert "max_order_notional" in rails.check(leg(0.03), 50_000, 0.0, 0)  # 1,500 USDT


def test_a_position_above_its_limit_is_refused_but_reducing_it_is_not():
    rails = Rails(RailLimits(max_position_notional=2_000))
    assert "max_position_notional" in rails.check(leg(0.02), 50_000, 0.03, 0)
    assert rails.check(leg(-0.02, reduce_only=True), 50_000, 0.05, 0) is None


def test_bursts_are_refused_until_the_minute_has_passed():
    rails = Rails(RailLimits(max_orders_per_minute=3))
    assert [rails.check(leg(0.001, n=i), 100, 0.0, 1000 + i) for i in range(3)] == [None] * 3
    assert "max_orders_per_minute" in rails.check(leg(0.001), 100, 0.0, 2000)
    assert rails.check(leg(0.001), 100, 0.0, 61_001) is None  # the first ones aged out


def test_a_price_that_cannot_be_true_refuses_an_opening_order():
    rails = Rails(RailLimits())
    assert "no usable price" in rails.check(leg(1.0), math.nan, 0.0, 0)
    assert "no usable price" in rails.check(leg(1.0), 0.0, 0.0, 0)


def test_limits_must_make_sense():
    with pytest.raises(ValueError):
        RailLimits(max_order_notional=0)
    with pytest.raises(ValueError):
        RailLimits(max_orders_per_minute=0)
