"""The live executor against a scripted exchange: every unknown outcome is resolved with the
same orderLinkId, no order is placed twice, fills are booked once, rails and rejections are
recorded and nothing else is sent for a symbol while one of its orders is unresolved."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field

import pytest

from bot.core.events import ACCEPTED, CANCELLED, FILLED, PARTIALLY_FILLED, REJECTED, Order
from bot.core.instruments import InstrumentSpec
from bot.live.executor import LiveExecutor
from bot.live.legs import Leg
from bot.live.rails import RailLimits, Rails
from bot.venues.bybit.private_errors import DuplicateOrderLinkId, OrderRejected, OutcomeUnknown
from bot.venues.bybit.private_protocol import OrderRequest
from bot.venues.bybit.private_records import Execution, OrderAck, OrderUpdate
from bot.venues.bybit.rest_protocol import BybitHTTPError

SPEC = InstrumentSpec("BTCUSDT", qty_step=0.001, min_order_qty=0.001)
PRICE = 50_000.0


def order_row(link_id: str, qty: float, side: str, status: str, filled: float) -> OrderUpdate:
    return OrderUpdate(
        order_id=f"oid-{link_id}", link_id=link_id, symbol="BTCUSDT", side=side,
        order_type="Market", qty=qty, price=0.0, avg_price=PRICE if filled else 0.0,
        cum_exec_qty=filled, cum_exec_value=filled * PRICE, cum_exec_fee=0.0,
        leaves_qty=qty - filled, status=status, reject_reason="", reduce_only=False,
        time_in_force="IOC", position_idx=0, category="linear", created_ms=1, updated_ms=2,
    )  # fmt: skip


def execution(link_id: str, exec_id: str, qty: float, side: str) -> Execution:
    return Execution(
        exec_id=exec_id, link_id=link_id, order_id=f"oid-{link_id}", symbol="BTCUSDT",
        side=side, qty=qty, price=PRICE, value=qty * PRICE, fee=qty * PRICE * 0.00055,
        fee_rate=0.00055, exec_type="Trade", is_maker=False, time_ms=10, seq=1,
        closed_size=0.0, exec_pnl=0.0, leaves_qty=0.0, category="linear",
    )  # fmt: skip


@dataclass
class ScriptedExchange:
    """Places and fills market orders; ``faults`` says, per create call, what goes wrong."""

    faults: list[str] = field(default_factory=list)  # per create call: "", "lost", "late", ...
    stream_live: bool = True  # deliver order/execution messages to the executor
    fill_ratio: float = 1.0  # IOC partly filled: the rest is cancelled
    orders: dict[str, OrderUpdate] = field(default_factory=dict)
    fills: dict[str, list[Execution]] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)  # accepted, not yet visible to look-ups
    creates: Counter = field(default_factory=Counter)  # create calls per link id
    placed: Counter = field(default_factory=Counter)  # orders that really exist per link id
    lookup_errors: int = 0  # so many look-ups fail before they answer
    executor: LiveExecutor | None = None
    tasks: list = field(default_factory=list)

    async def create_order(self, request: OrderRequest) -> OrderAck:
        link = request.link_id
        self.creates[link] += 1
        fault = self.faults.pop(0) if self.faults else ""
        if fault == "reject":
            raise OrderRejected(link, 110007, "insufficient available balance")
        if fault == "unknown-before":  # never reached the exchange
            raise OutcomeUnknown(link, "timed out")
        if link in self.placed:
            raise DuplicateOrderLinkId(link)
        self.placed[link] += 1
        qty = float(request.qty)
        filled = round(qty * self.fill_ratio, 3)
        status = "Filled" if filled == qty else "Cancelled"
        self.orders[link] = order_row(link, qty, request.side, status, filled)
        self.fills[link] = [execution(link, f"x-{link}", filled, request.side)]
        if fault == "late":
            self.hidden.add(link)
        if fault in ("lost", "late"):  # accepted, but the answer never arrives
            raise OutcomeUnknown(link, "connection reset")
        if self.stream_live:
            asyncio.get_running_loop().call_soon(self._stream, link)
        return OrderAck(f"oid-{link}", link)

    def _stream(self, link: str) -> None:
        for ex in self.fills[link]:
            self.executor.on_execution(ex)
        self.tasks.append(asyncio.ensure_future(self.executor.on_order(self.orders[link])))

    async def order_by_link_id(self, symbol: str, link_id: str) -> OrderUpdate | None:
        if self.lookup_errors:
            self.lookup_errors -= 1
            raise BybitHTTPError(503, "Service Unavailable", "/v5/order/realtime")
        if link_id in self.hidden:
            self.hidden.discard(link_id)  # visible from the next look-up on
            return None
        return self.orders.get(link_id)

    async def order_history(self, *, symbol=None, link_id=None) -> list[OrderUpdate]:
        return []

    async def executions(self, *, symbol=None, link_id=None) -> list[Execution]:
        return list(self.fills.get(link_id, []))


class MemoryLedger:
    def __init__(self) -> None:
        self.intents: list[str] = []
        self.status: dict[str, str] = {}
        self.codes: dict[str, str | None] = {}

    def write_intent(self, leg: Leg, created_at: int) -> None:
        assert leg.link_id not in self.status, "an intent is written once"
        self.intents.append(leg.link_id)
        self.status[leg.link_id] = "Unknown"

    def update(self, link_id, update, *, status, now, reject_code=None, reject_reason=None,
               order_id=None):  # fmt: skip
        self.status[link_id] = status
        self.codes[link_id] = reject_code


def executor_for(exchange: ScriptedExchange, limits: RailLimits | None = None, **kw):
    reports = []
    ledger = MemoryLedger()
    executor = LiveExecutor(
        run_id="0123456789abcdef", specs={"BTCUSDT": SPEC},
        max_market_qty={"BTCUSDT": kw.pop("max_qty", 100.0)}, venue=exchange, ledger=ledger,
        emit=reports.append, rails=Rails(limits or RailLimits()), price_of=lambda s: PRICE,
        retry_pause_s=0.001, settle_timeout_s=kw.pop("settle_timeout_s", 5.0), **kw,
    )  # fmt: skip
    exchange.executor = executor
    executor.start()
    return executor, ledger, reports


def kinds(reports):
    return [r.kind for r in reports]


async def run_order(executor: LiveExecutor, qty: float, time: int = 1000) -> None:
    await executor.execute(Order("engine", "BTCUSDT", qty, time))


async def test_a_clean_order_is_written_ahead_acknowledged_and_filled_once():
    exchange = ScriptedExchange()
    executor, ledger, reports = executor_for(exchange)
    await run_order(executor, 0.5)
    (link,) = ledger.intents
    assert exchange.creates[link] == 1 and ledger.status[link] == "Filled"
    assert kinds(reports) == [ACCEPTED, FILLED]
    assert reports[1].fill.qty == 0.5 and executor.positions["BTCUSDT"] == 0.5


async def test_an_accepted_order_whose_answer_was_lost_is_found_not_placed_again():
    exchange = ScriptedExchange(faults=["lost"])
    executor, ledger, reports = executor_for(exchange)
    await run_order(executor, 0.5)
    (link,) = ledger.intents
    assert exchange.placed[link] == 1 and exchange.creates[link] == 1  # found by look-up
    assert ledger.status[link] == "Filled" and executor.positions["BTCUSDT"] == 0.5
    assert kinds(reports).count(FILLED) == 1


async def test_a_late_acceptance_is_proved_by_110072_on_the_same_id_and_not_doubled():
    exchange = ScriptedExchange(faults=["late"], stream_live=False)
    executor, ledger, _reports = executor_for(exchange)
    await run_order(executor, 0.5)
    (link,) = ledger.intents
    assert exchange.creates[link] == 2  # re-sent once with the same id: 110072
    assert exchange.placed[link] == 1 and executor.counters["duplicate_proofs"] == 1
    assert ledger.status[link] == "Filled" and executor.positions["BTCUSDT"] == 0.5


async def test_an_order_that_never_arrived_is_re_sent_with_the_same_id():
    exchange = ScriptedExchange(faults=["unknown-before"])
    executor, ledger, _reports = executor_for(exchange)
    await run_order(executor, 0.5)
    (link,) = ledger.intents
    assert exchange.creates[link] == 2 and exchange.placed[link] == 1
    assert ledger.status[link] == "Filled" and executor.positions["BTCUSDT"] == 0.5


async def test_a_failed_look_up_is_no_reason_to_send_again():
    exchange = ScriptedExchange(faults=["lost"], stream_live=False, lookup_errors=3)
    executor, ledger, _reports = executor_for(exchange, settle_timeout_s=0.01)
    await run_order(executor, 0.5)
    (link,) = ledger.intents
    assert exchange.creates[link] == 1  # the look-up was asked again, nothing re-sent
    assert ledger.status[link] == "Filled" and executor.positions["BTCUSDT"] == 0.5


async def test_a_refused_re_send_does_not_hide_a_late_acceptance():
    # placed, answer lost, invisible to the first look-up; the re-send is refused (the
    # exchange validates before it sees the duplicate id): the order is still the truth
    exchange = ScriptedExchange(faults=["late", "reject"], stream_live=False)
    executor, ledger, reports = executor_for(exchange, settle_timeout_s=0.01)
    await run_order(executor, 0.5)
    (link,) = ledger.intents
    assert exchange.creates[link] == 2 and exchange.placed[link] == 1
    assert ledger.status[link] == "Filled" and executor.positions["BTCUSDT"] == 0.5
    assert REJECTED not in kinds(reports) and kinds(reports).count(FILLED) == 1


async def test_an_order_never_found_whose_re_send_was_refused_is_rejected_after_the_window():
    exchange = ScriptedExchange(faults=["unknown-before", "reject"])
    ticks = itertools.count(1_000)  # 1 ms a read: the re-send falls inside the window and
    # the window closes after a few dozen look-ups, however fast or slow the machine
    executor, ledger, reports = executor_for(exchange, resend_window_s=0.05,
                                             wall_ms=lambda: next(ticks))  # fmt: skip
    await run_order(executor, 0.5)
    (link,) = ledger.intents
    assert exchange.creates[link] == 2 and not exchange.placed
    assert ledger.status[link] == "Rejected" and ledger.codes[link] == "110007"
    assert kinds(reports) == [REJECTED] and "BTCUSDT" not in executor.blocked


async def test_past_the_resend_window_an_unfound_order_keeps_its_symbol_blocked():
    exchange = ScriptedExchange(faults=["unknown-before"])
    ticks = itertools.count(1_000)  # a clock that moves on at every read: the window of
    # 0 s has closed by the first look-up however fast the machine runs
    executor, _ledger, _ = executor_for(exchange, resend_window_s=0.0,
                                        wall_ms=lambda: next(ticks))  # fmt: skip
    task = asyncio.create_task(run_order(executor, 0.5))
    deadline = asyncio.get_running_loop().time() + 30
    while "BTCUSDT" not in executor.blocked:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)
    assert not task.done() and "BTCUSDT" in executor.blocked  # fail closed: no new id
    assert sum(exchange.creates.values()) == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_executions_the_stream_lost_are_fetched_by_link_id_and_booked_once():
    exchange = ScriptedExchange(stream_live=False)
    executor, ledger, reports = executor_for(exchange, settle_timeout_s=0.01)
    await run_order(executor, 0.5)
    link = ledger.intents[0]
    assert ledger.status[link] == "Filled"
    executor.on_execution(exchange.fills[link][0])  # the stream delivers it late
    assert kinds(reports).count(FILLED) == 1 and executor.positions["BTCUSDT"] == 0.5
    assert executor.counters["duplicate_executions"] == 1


async def test_an_ioc_partly_filled_reports_the_fill_then_the_cancelled_rest():
    exchange = ScriptedExchange(fill_ratio=0.6)
    executor, _ledger, reports = executor_for(exchange)
    await run_order(executor, 0.5)
    assert kinds(reports) == [ACCEPTED, PARTIALLY_FILLED, CANCELLED]
    assert executor.positions["BTCUSDT"] == 0.3


async def test_a_rejection_is_recorded_and_the_order_s_other_legs_are_not_sent():
    exchange = ScriptedExchange(faults=["reject"])
    executor, ledger, reports = executor_for(exchange, max_qty=1.0)
    await run_order(executor, 2.5)  # three legs planned
    assert len(ledger.intents) == 1 and ledger.codes[ledger.intents[0]] == "110007"
    assert kinds(reports) == [REJECTED] and "110007" in reports[0].reason


async def test_a_rail_refuses_before_any_request_and_records_why():
    exchange = ScriptedExchange()
    executor, ledger, reports = executor_for(exchange, RailLimits(max_order_notional=1_000))
    await run_order(executor, 0.5)  # 25,000 USDT
    assert sum(exchange.creates.values()) == 0
    assert ledger.codes[ledger.intents[0]] == "rail"
    assert kinds(reports) == [REJECTED] and "max_order_notional" in reports[0].reason


async def test_a_flip_closes_reduce_only_from_the_exchange_s_position_then_opens():
    exchange = ScriptedExchange()
    executor, ledger, _reports = executor_for(exchange, positions={"BTCUSDT": 0.2})
    await run_order(executor, -0.5)
    assert [exchange.orders[link].qty for link in ledger.intents] == [0.2, 0.3]
    assert executor.positions["BTCUSDT"] == pytest.approx(-0.3)


async def test_an_execution_the_run_did_not_place_is_flagged_foreign():
    exchange = ScriptedExchange()
    executor, _, reports = executor_for(exchange)
    executor.on_execution(execution("manual-1", "x-manual", 1.0, "Buy"))
    assert executor.foreign and executor.positions["BTCUSDT"] == 1.0
    assert reports[-1].fill.qty == 1.0  # booked: the exchange's position is the truth


async def test_orders_submitted_from_a_step_thread_are_carried_out_in_order():
    exchange = ScriptedExchange()
    executor, _ledger, _reports = executor_for(exchange)
    stop = asyncio.Event()
    worker = asyncio.create_task(executor.run(stop))
    orders = [Order("e", "BTCUSDT", q, t) for t, q in ((1, 0.1), (2, -0.3), (3, 0.2))]
    await asyncio.to_thread(executor.submit, orders)
    await asyncio.wait_for(executor.drained(), 30)
    stop.set()
    await worker
    assert executor.positions["BTCUSDT"] == pytest.approx(0.0)
    assert all(count == 1 for count in exchange.placed.values())
