import numpy as np
import pytest

from bot.core.events import Fill
from bot.core.ids import order_link_id
from bot.core.instruments import InstrumentSpec
from bot.core.portfolio import Portfolio, plan_rebalance
from bot.core.risk import RiskLimits, RiskManager

SPECS = {
    "BTCUSDT": InstrumentSpec("BTCUSDT", 0.001, 0.001, 5.0),
    "WIFUSDT": InstrumentSpec("WIFUSDT", 1.0, 1.0, 5.0),
}
SYMS = ("BTCUSDT", "WIFUSDT")


def trade(symbol, qty, price, fee_rate=0.001, time=0):
    fee = abs(qty) * price * fee_rate
    return Fill(f"x{time}{symbol}", "l", symbol, time, qty, price, fee, "Trade", -qty * price - fee)


def test_quantities_round_toward_zero_without_float_dust():
    spec = SPECS["BTCUSDT"]
    assert spec.round_qty(0.3000000000000001) == 0.3
    assert spec.round_qty(0.0029999) == 0.002
    assert spec.round_qty(-1.23456) == -1.234
    assert spec.round_qty(0.0009) == 0.0
    assert InstrumentSpec("X", 0.1, 0.1).round_qty(0.7) == 0.7  # 0.7/0.1 = 6.9999999


def test_realized_pnl_follows_bybit_closed_pnl_including_both_fees():
    pf = Portfolio(SYMS, SPECS, 10_000)
    opened = pf.apply_fill(trade("BTCUSDT", 0.1, 50_000))
    assert opened.realized_pnl == 0
    closed = pf.apply_fill(trade("BTCUSDT", -0.04, 55_000))
    expected = 0.04 * 5_000 - 0.04 * 50_000 * 0.001 - 0.04 * 55_000 * 0.001
    assert closed.realized_pnl == pytest.approx(expected)
    assert pf.qty[0] == pytest.approx(0.06)
    assert pf.avg_price[0] == 50_000
    flipped = pf.apply_fill(trade("BTCUSDT", -0.1, 40_000))  # closes 0.06, opens 0.04 short
    assert flipped.realized_pnl == pytest.approx(0.06 * -10_000 - 0.06 * 50 - 0.06 * 40_000 * 0.001)
    assert pf.qty[0] == pytest.approx(-0.04) and pf.avg_price[0] == 40_000
    assert pf.held == [0]
    cash = 10_000 - 5_000 - 5 + 0.04 * 55_000 - 2.2 + 0.1 * 40_000 - 4
    assert pf.cash == pytest.approx(cash)
    assert pf.mark_row([41_000.0, 1.0]) == pytest.approx(cash - 0.04 * 41_000)


def test_plan_rebalance_respects_steps_minimums_threshold_and_closes():
    pf = Portfolio(SYMS, SPECS, 10_000)
    prices = np.array([50_000.0, 2.0])
    fresh = np.array([False, False])
    orders = plan_rebalance(pf, np.array([0.5, 0.0004]), prices, fresh, 0.01, "run12345", 7)
    # BTC: 0.5 × 10k / 50k = 0.1; WIF: 4 USDT < min notional and < threshold: skipped
    assert [(o.symbol, o.qty) for o in orders] == [("BTCUSDT", 0.1)]
    assert orders[0].link_id == order_link_id("run12345", 7, "BTCUSDT")
    pf.apply_fill(trade("BTCUSDT", 0.1, 50_000, fee_rate=0))
    pf.equity = pf.mark_row(prices.tolist())
    drift = plan_rebalance(pf, np.array([0.505, 0.0]), prices, fresh, 0.01, "run12345", 8)
    assert drift == []  # 0.5% of equity is under the 1% threshold
    close = plan_rebalance(pf, np.array([0.0, 0.0]), prices, fresh, 0.5, "run12345", 9)
    assert [(o.symbol, o.qty) for o in close] == [("BTCUSDT", -0.1)]  # closing ignores it


def test_stale_symbols_may_shrink_but_never_grow():
    pf = Portfolio(SYMS, SPECS, 10_000)
    pf.apply_fill(trade("BTCUSDT", 0.05, 50_000, fee_rate=0))
    prices = np.array([50_000.0, 2.0])
    stale = np.array([True, True])
    grow = plan_rebalance(pf, np.array([0.9, 0.5]), prices, stale, 0.0, "r1234567", 1)
    assert grow == []
    shrink = plan_rebalance(pf, np.array([0.1, 0.0]), prices, stale, 0.0, "r1234567", 2)
    assert [(o.symbol, o.qty) for o in shrink] == [("BTCUSDT", -0.03)]
    flip = plan_rebalance(pf, np.array([-0.5, 0.0]), prices, stale, 0.0, "r1234567", 3)
    assert [(o.symbol, o.qty) for o in flip] == [("BTCUSDT", -0.05)]  # to flat, not short


def test_order_link_ids_are_deterministic_valid_and_distinct():
    a = order_link_id("0123456789abcdef", 1_700_000_000_000, "BTCUSDT")
    assert a == order_link_id("0123456789abcdef", 1_700_000_000_000, "BTCUSDT")
    assert len(a) <= 36 and a.replace("-", "").isalnum()
    others = {
        order_link_id("0123456789abcdef", 1_700_000_000_000, "ETHUSDT"),
        order_link_id("0123456789abcdef", 1_700_000_000_001, "BTCUSDT"),
        order_link_id("0123456789abcdef", 1_700_000_000_000, "BTCUSDT", attempt=1),
        order_link_id("0123456789abcdef", 1_700_000_000_000, "BTCUSDT", leg=1),
        order_link_id("fedcba9876543210", 1_700_000_000_000, "BTCUSDT"),
    }
    assert a not in others and len(others) == 5
    assert len(order_link_id("0123456789abcdef", 1_700_000_000_000, "X", 999, leg=999)) <= 36


def test_risk_clip_caps_per_symbol_and_gross_and_removes_shorts():
    risk = RiskManager(RiskLimits(max_weight=0.5, max_gross=1.0), 1.0)
    # capped to [0.5, 0.5, 0.3], short removed, then scaled from gross 1.3 down to 1.0
    np.testing.assert_allclose(
        risk.clip(np.array([0.6, 0.6, 0.3, -0.2])), [0.5 / 1.3, 0.5 / 1.3, 0.3 / 1.3, 0.0]
    )
    shorts = RiskManager(RiskLimits(max_weight=0.5, max_gross=2.0, allow_short=True), 1.0)
    np.testing.assert_allclose(shorts.clip(np.array([1.0, -0.7, 0.2])), [0.5, -0.5, 0.2])


def test_drawdown_breach_single_and_vectorised_agree():
    series = np.array([100, 120, 110, 90, 84, 130, 60.0])
    one = RiskManager(RiskLimits(max_drawdown=0.3), 100.0)
    flags = [one.breached(x) for x in series]
    many = RiskManager(RiskLimits(max_drawdown=0.3), 100.0)
    assert many.first_breach(series) == flags.index(True) == 4
    assert many.peak == 120.0
