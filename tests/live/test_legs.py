"""An engine order becomes reduce-only closes and capped opening legs with their own ids."""

import pytest

from bot.core.events import Order
from bot.core.instruments import InstrumentSpec
from bot.live.legs import plan_legs

SPEC = InstrumentSpec("BTCUSDT", qty_step=0.001, min_order_qty=0.001)
RUN = "0123456789abcdef"


def order(qty: float) -> Order:
    return Order("engine-id", "BTCUSDT", qty, decision_time=1_700_000_000_000)


def shape(legs):
    return [(leg.qty, leg.reduce_only, leg.leg) for leg in legs]


def test_opening_and_adding_are_plain_orders():
    assert shape(plan_legs(order(0.5), 0.0, SPEC, RUN, 10.0)) == [(0.5, False, 0)]
    assert shape(plan_legs(order(-0.5), -1.0, SPEC, RUN, 10.0)) == [(-0.5, False, 0)]


def test_reducing_is_reduce_only():
    assert shape(plan_legs(order(-0.4), 1.0, SPEC, RUN, 10.0)) == [(-0.4, True, 0)]
    assert shape(plan_legs(order(1.0), -1.0, SPEC, RUN, 10.0)) == [(1.0, True, 0)]


def test_a_flip_is_a_reduce_only_close_then_an_opening_order():
    legs = plan_legs(order(-1.5), 1.0, SPEC, RUN, 10.0)
    assert shape(legs) == [(-1.0, True, 0), (-0.5, False, 1)]


def test_quantities_above_the_market_maximum_are_split_exactly():
    legs = plan_legs(order(2.501), 0.0, SPEC, RUN, 1.0)
    assert shape(legs) == [(1.0, False, 0), (1.0, False, 1), (0.501, False, 2)]
    assert sum(leg.qty for leg in legs) == pytest.approx(2.501)
    flip = plan_legs(order(-3.2), 1.5, SPEC, RUN, 1.0)
    assert shape(flip) == [(-1.0, True, 0), (-0.5, True, 1), (-1.0, False, 2), (-0.7, False, 3)]


def test_a_maximum_far_above_the_quantity_sends_it_whole():
    assert shape(plan_legs(order(1.0), 0.0, SPEC, RUN, 1e9)) == [(1.0, False, 0)]
    assert shape(plan_legs(order(-0.5), 0.0, SPEC, RUN, 1e12)) == [(-0.5, False, 0)]


def test_each_leg_has_its_own_deterministic_valid_id():
    legs = plan_legs(order(-3.2), 1.5, SPEC, RUN, 1.0)
    ids = [leg.link_id for leg in legs]
    assert len(set(ids)) == len(ids) and all(len(i) <= 36 for i in ids)
    assert ids == [leg.link_id for leg in plan_legs(order(-3.2), 1.5, SPEC, RUN, 1.0)]


def test_a_maximum_below_one_step_is_refused():
    with pytest.raises(ValueError, match="below one step"):
        plan_legs(order(1.0), 0.0, SPEC, RUN, 0.0001)
