"""The engine's contracts: one code path, next-open fills, risk, funding, stale symbols."""

import numpy as np
import pytest

from bot.core.context import StrategyError
from bot.core.events import CLOSE, OPEN, Panel
from bot.core.funding import FundingRates
from bot.core.risk import RiskLimits
from bot.core.timeutil import HOUR_MS
from bot.feeds.synthetic import synthetic_panel
from strategies.api import Strategy, VectorStrategy
from strategies.baselines.buy_and_hold import BuyAndHold
from strategies.baselines.equal_weight import EqualWeight
from strategies.baselines.ma_crossover import MovingAverageCrossover
from strategies.baselines.momentum import CrossSectionalMomentum
from tests.enginekit import make_engine, replay

SYMS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")


def with_gaps(panel: Panel, seed: int = 5, share: float = 0.03) -> Panel:
    """Knock random bars out (never all symbols of a row) to exercise stale steps."""
    rng = np.random.default_rng(seed)
    present = panel.present & (rng.random(panel.present.shape) > share)
    present[:, 0] = True
    values = np.where(present[:, :, None], panel.values, np.nan)
    return Panel(panel.symbols, panel.interval_ms, panel.starts, values, present)


def baselines():
    return [
        MovingAverageCrossover(SYMS, "1h", fast=5, slow=20),
        CrossSectionalMomentum(SYMS, "1h", lookback=24, top=1, rebalance="1d"),
        EqualWeight(SYMS, "1h", rebalance="1d"),
        BuyAndHold(SYMS, "1h"),
    ]


def fingerprint(engine, journal):
    times, equity = engine.equity_curve()
    return (
        times.tobytes(),
        equity.tobytes(),
        engine.gross_exposure_curve().tobytes(),
        [(f.exec_id, f.time, f.qty, f.price, f.fee, f.realized_pnl) for f in journal.fills],
        [(d.time, d.strategy, d.weights, d.target, d.stale) for d in journal.decisions],
        [(o.link_id, o.qty, status) for o, status in journal.orders],
    )


@pytest.mark.parametrize("strategy_index", range(4))
def test_block_size_and_batch_versus_per_bar_give_bit_identical_runs(strategy_index):
    """The replay's vectorised quiet spans and a live one-row-at-a-time run are one path."""
    panel = with_gaps(synthetic_panel(SYMS, "1h", 1500, seed=11, volatility=0.01))
    runs = []
    for block_rows, use_batch in [(8192, True), (97, True), (1, True), (8192, False)]:
        strategy = baselines()[strategy_index]
        engine, journal = make_engine(
            panel, [strategy], interval="1h", block_rows=block_rows, use_batch=use_batch
        )
        replay(engine, panel)
        runs.append(fingerprint(engine, journal))
    assert runs[0][3], "the scenario must trade for the comparison to mean anything"
    for other in runs[1:]:
        assert other == runs[0]


def test_orders_fill_at_the_next_open_with_slippage_and_fee():
    panel = synthetic_panel(SYMS[:1], "1h", 200, seed=2, volatility=0.01)
    engine, journal = make_engine(
        panel, [MovingAverageCrossover(SYMS[:1], "1h", 5, 20)], interval="1h",
        fee=0.001, slippage=0.0005,
    )  # fmt: skip
    replay(engine, panel)
    orders = {o.link_id: o for o, status in journal.orders if status == "New"}
    assert journal.fills
    for fill in journal.fills:
        order = orders[fill.link_id]
        t = int(np.searchsorted(panel.starts, order.decision_time - HOUR_MS))  # decided at close
        assert fill.time == panel.starts[t + 1]
        open_next = panel.values[t + 1, 0, OPEN]
        expected = open_next * (1.0005 if fill.qty > 0 else 0.9995)
        assert fill.price == pytest.approx(expected, rel=1e-15)
        assert fill.fee == pytest.approx(abs(fill.qty) * fill.price * 0.001, rel=1e-12)
    # target quantity = weight × equity / decision close, rounded down to the 0.001 step
    first = journal.fills[0]
    decision_row = int(np.searchsorted(panel.starts, first.time)) - 1
    close = panel.values[decision_row, 0, CLOSE]
    assert first.qty == pytest.approx(np.floor(100_000 / close / 0.001) * 0.001, abs=1e-9)


def crash_panel() -> Panel:
    """Flat prices, then a 70% crash over ten bars, then a recovery."""
    n = 300
    path = np.full(n, 100.0)
    path[150:160] = np.linspace(100.0, 30.0, 10)
    path[160:] = np.linspace(30.0, 120.0, n - 160)
    values = np.empty((n, 1, 5))
    values[:, 0, OPEN] = np.r_[100.0, path[:-1]]
    values[:, 0, CLOSE] = path
    values[:, 0, 1] = np.maximum(values[:, 0, OPEN], path)
    values[:, 0, 2] = np.minimum(values[:, 0, OPEN], path)
    values[:, 0, 4] = 1.0
    starts = np.arange(n, dtype=np.int64) * HOUR_MS
    return Panel(SYMS[:1], HOUR_MS, starts, values, np.ones((n, 1), bool))


@pytest.mark.parametrize("block_rows", [8192, 1])
def test_kill_switch_flattens_halts_and_records_why(block_rows):
    panel = crash_panel()
    engine, journal = make_engine(
        panel, [BuyAndHold(SYMS[:1], "1h")], interval="1h", block_rows=block_rows,
        limits=RiskLimits(max_drawdown=0.4), fee=0.0, slippage=0.0,
    )  # fmt: skip
    replay(engine, panel)
    times, equity = engine.equity_curve()
    assert engine.risk.halted
    (event,) = journal.events
    assert event.kind == "kill_switch" and "max drawdown breached" in event.detail["reason"]
    breach_row = int(np.searchsorted(times, event.time))
    assert 1.0 - equity[breach_row] / equity[:breach_row].max() >= 0.4
    assert 1.0 - equity[breach_row - 1] / equity[: breach_row - 1].max() < 0.4
    kill_orders = [o for o, _ in journal.orders if o.reason == "kill_switch"]
    assert len(kill_orders) == 1 and kill_orders[0].decision_time == event.time
    last_fill = journal.fills[-1]
    assert last_fill.link_id == kill_orders[0].link_id
    assert last_fill.time == panel.starts[breach_row + 1]  # flattened at the next open
    assert engine.portfolio.qty.tolist() == [0.0]
    assert all(d.time <= event.time for d in journal.decisions)  # no decisions after
    assert np.all(equity[breach_row + 1 :] == equity[breach_row + 1])  # flat: equity frozen


def test_funding_is_paid_on_the_position_held_at_the_funding_time():
    panel = synthetic_panel(SYMS[:1], "1h", 100, seed=4, start_ms=0)
    funding = FundingRates({SYMS[0]: (np.array([8, 16, 24, 48]) * HOUR_MS,
                                      np.array([0.001, -0.002, 0.0005, 0.0001]))})  # fmt: skip
    engine, journal = make_engine(
        panel, [BuyAndHold(SYMS[:1], "1h")], interval="1h", funding=funding, fee=0.0,
        slippage=0.0,
    )  # fmt: skip
    replay(engine, panel)
    payments = [f for f in journal.fills if f.exec_type == "Funding"]
    qty = journal.fills[0].qty  # bought at the open of bar 1
    assert [p.time for p in payments] == [8 * HOUR_MS, 16 * HOUR_MS, 24 * HOUR_MS, 48 * HOUR_MS]
    for payment, rate in zip(payments, [0.001, -0.002, 0.0005, 0.0001], strict=True):
        row = int(payment.time // HOUR_MS)
        mark = panel.values[row, 0, OPEN]
        assert payment.cash_flow == pytest.approx(-qty * mark * rate, rel=1e-12)
    assert engine.stats.funding == pytest.approx(sum(p.cash_flow for p in payments))


def test_no_new_exposure_on_a_stale_symbol():
    panel = synthetic_panel(SYMS, "1h", 50, seed=8)
    present = panel.present.copy()
    present[:30, 2] = False  # CCC has no bars yet when equal weight first invests
    values = np.where(present[:, :, None], panel.values, np.nan)
    panel = Panel(SYMS, panel.interval_ms, panel.starts, values, present)

    class AlwaysEqual(Strategy):
        name = "always_equal"

        def on_bar(self, ctx):
            return {s: 1 / 3 for s in self.symbols}  # ignores the stale mask on purpose

    engine, journal = make_engine(panel, [AlwaysEqual(SYMS, "1h")], interval="1h")
    replay(engine, panel)
    bought_c = [f for f in journal.fills if f.symbol == "CCCUSDT"]
    # first decision that sees CCC trading is at the close of row 30: filled at the open of 31
    assert bought_c and bought_c[0].time == panel.starts[31]
    stale_decisions = [d for d in journal.decisions if "CCCUSDT" in d.stale]
    assert len(stale_decisions) == 30


def test_a_strategy_returning_the_wrong_shape_is_a_clear_error():
    class Broken(VectorStrategy):
        name = "broken"

        def on_bars(self, ctx):
            return np.zeros((len(ctx), 2))

    panel = synthetic_panel(SYMS, "1h", 20)
    engine, _ = make_engine(panel, [Broken(SYMS, "1h")], interval="1h")
    with pytest.raises(StrategyError, match=r"broken.on_bars returned shape \(20, 2\)"):
        replay(engine, panel)


def test_two_strategies_share_capital_by_allocation():
    panel = synthetic_panel(SYMS, "1h", 60, seed=9)
    engine, journal = make_engine(
        panel,
        [BuyAndHold(SYMS[:1], "1h"), BuyAndHold(SYMS[1:], "1h")],
        interval="1h",
    )
    replay(engine, panel)
    target = journal.decisions[-1].target
    assert target == pytest.approx({"AAAUSDT": 0.5, "BBBUSDT": 0.25, "CCCUSDT": 0.25})


def test_strategy_symbols_must_be_subscribed():
    panel = synthetic_panel(SYMS[:1], "1h", 5)
    with pytest.raises(ValueError, match="not subscribed"):
        make_engine(panel, [BuyAndHold(("XYZUSDT",), "1h")], interval="1h")
