"""Orders go out through the executor; what becomes of them comes back as reports the engine
books through one path — on the spot for the paper executor, later for a live one."""

import numpy as np
import pytest

from bot.core.events import (
    ACCEPTED,
    CANCELLED,
    FILLED,
    FUNDING,
    PARTIALLY_FILLED,
    REJECTED,
    ExecutionReport,
    Fill,
    Order,
)
from bot.core.execution import PaperExecutor
from bot.feeds.synthetic import synthetic_panel
from strategies.baselines.equal_weight import EqualWeight
from tests.enginekit import make_engine, replay

SYMS = ("AAAUSDT", "BBBUSDT")


class DeferredExecutor:
    """Sends orders somewhere and learns their fate later, like an exchange: nothing fills at
    a bar's open, and submitting reports nothing."""

    def __init__(self) -> None:
        self.sent: list[Order] = []
        self.submitted = 0
        self.submitted_ns = 0

    @property
    def pending(self) -> list[Order]:
        return []

    def submit(self, orders: list[Order]) -> list[ExecutionReport]:
        self.sent.extend(orders)
        self.submitted += len(orders)
        return []

    def on_open(self, start, opens, present) -> list[ExecutionReport]:
        return []

    def on_symbol_open(self, symbol, start, open_price) -> list[ExecutionReport]:
        return []


def deferred_engine(rows: int = 30):
    panel = synthetic_panel(SYMS, "1h", rows, seed=3, start_ms=0)
    engine, journal = make_engine(panel, [EqualWeight(SYMS, "1h", rebalance="bar")],
                                  interval="1h")  # fmt: skip
    executor = DeferredExecutor()
    engine.executor = executor
    replay(engine, panel)
    return engine, journal, executor


def trade(order: Order, qty: float, price: float, exec_id: str, fee: float = 0.5) -> Fill:
    return Fill(exec_id, order.link_id, order.symbol, order.decision_time + 1, qty, price, fee,
                "Trade", -qty * price - fee)  # fmt: skip


def test_a_live_style_executor_books_nothing_until_reports_arrive():
    engine, journal, executor = deferred_engine()
    assert executor.sent, "the strategy decided and sent orders"
    assert not journal.fills and not journal.orders
    assert np.all(engine.portfolio.qty == 0)
    cash = engine.portfolio.cash

    order = next(o for o in executor.sent if o.qty > 0)
    engine.on_execution(ExecutionReport(ACCEPTED, order.symbol, order.decision_time, order))
    assert journal.orders == [(order, "New")]

    half = trade(order, order.qty / 2, 100.0, "e1")
    engine.on_execution(ExecutionReport(PARTIALLY_FILLED, order.symbol, half.time, order, half))
    s = engine.portfolio.index[order.symbol]
    assert engine.portfolio.qty[s] == pytest.approx(order.qty / 2)
    assert engine.portfolio.cash == pytest.approx(cash + half.cash_flow)
    assert journal.positions[-1][1:3] == (order.symbol, pytest.approx(order.qty / 2))

    engine.on_execution(ExecutionReport(CANCELLED, order.symbol, half.time, order, reason="IOC"))
    assert journal.orders[-1] == (order, "Cancelled")
    assert engine.stats.cancelled == 1
    assert engine.stats.fills == 1


def test_rejections_and_funding_from_the_exchange_are_booked_as_reported():
    engine, journal, executor = deferred_engine()
    order = executor.sent[0]
    qty_before = engine.portfolio.qty.copy()
    engine.on_execution(ExecutionReport(REJECTED, order.symbol, order.decision_time, order,
                                        reason="110007"))  # fmt: skip
    assert journal.orders[-1] == (order, "Rejected")
    assert engine.stats.rejected == 1
    assert np.array_equal(engine.portfolio.qty, qty_before)

    cash = engine.portfolio.cash
    funding = Fill("f-1", None, order.symbol, 8 * 3_600_000, 0.0, 0.0, 1.25, "Funding", -1.25)
    engine.on_execution(ExecutionReport(FUNDING, order.symbol, funding.time, fill=funding))
    assert engine.portfolio.cash == pytest.approx(cash - 1.25)
    assert engine.stats.funding == pytest.approx(-1.25)
    assert journal.fills[-1] is funding


def test_the_paper_executor_reports_replacement_then_acceptance_then_the_fill():
    executor = PaperExecutor(SYMS, fee_rate=0.001, slippage_rate=0.0)
    first = Order("a-1", SYMS[0], 1.0, decision_time=0)
    assert [r.kind for r in executor.submit([first])] == [ACCEPTED]
    second = Order("a-2", SYMS[0], 2.0, decision_time=0)
    reports = executor.submit([second])
    assert [(r.kind, r.order) for r in reports] == [(CANCELLED, first), (ACCEPTED, second)]
    (filled,) = executor.on_open(10, np.array([100.0, 50.0]), np.array([True, True]))
    assert filled.kind == FILLED and filled.order == second
    assert filled.fill.price == 100.0 and filled.fill.fee == pytest.approx(0.2)


def test_an_unknown_report_kind_is_refused():
    with pytest.raises(ValueError, match="report kind"):
        ExecutionReport("exploded", SYMS[0], 0)
