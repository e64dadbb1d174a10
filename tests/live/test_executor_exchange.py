"""The live executor, the signed client and the private stream against the local exchange
with its private faults on: after every decision the bot's positions equal the exchange's, no
orderLinkId is placed twice, every execution is booked once and the wallet equals the booked
cash flows."""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal

import pytest

from bot.config import parse_settings
from bot.core.events import FILLED, FUNDING, PARTIALLY_FILLED, Order
from bot.core.instruments import InstrumentSpec
from bot.exchange.server import ExchangeServer
from bot.live.executor import LiveExecutor
from bot.live.rails import RailLimits, Rails
from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.gap_fill import SeenExecutions, fetch_missed_executions
from bot.venues.bybit.private_records import Execution, OrderUpdate
from bot.venues.bybit.private_rest import TradingRest
from bot.venues.bybit.private_stream import PrivateStream
from tests.live.test_executor import MemoryLedger

KEY, SECRET = "liveTESTkey0001", "liveTESTsecret0001"
SYMBOLS = {"BTCUSDT": 0.001, "ETHUSDT": 0.01, "SOLUSDT": 0.1}  # qty steps
START = 1_704_067_200_000 + 200 * 3_600_000
FAULTS = {
    "lost_response_probability": 0.08,
    "late_acceptance_probability": 0.08,
    "late_acceptance_ms": 200,
    "error_before_probability": 0.06,
    "error_after_probability": 0.06,
    "async_reject_probability": 0.04,
    "ioc_partial_probability": 0.08,
    "delayed_fill_probability": 0.08,
    "fill_delay_ms": 150,
    "ws_drop_probability": 0.08,
    "ws_duplicate_probability": 0.08,
    "ws_reorder_probability": 0.08,
    "ws_double_filled_probability": 0.1,
    "rate_limit_burst_probability": 0.02,
    "rate_limit_burst_requests": 2,
    "rate_limit_reset_ms": 50,
    "clock_skew_probability": 0.04,
    "clock_skew_ms": 6_000,
    "insufficient_balance_probability": 0.04,
    "below_min_notional_probability": 0.04,
    "qty_to_zero_probability": 0.04,
    "manual_order_probability": 0.2,
    "auth_failure_probability": 0.3,
    "ws_disconnect_probability": 0.03,
}
#: faults that fire per order or message: each must have fired this often for the test to count
OFTEN = 5


def exchange_settings(faults: dict):
    return parse_settings(
        {
            "engine": {"symbols": list(SYMBOLS), "interval": "1h"},
            "data": {"synthetic_bars": 400},
            "strategies": [{"name": "equal_weight"}],
            "instruments": {s: {"qty_step": q, "min_order_qty": q, "min_notional": 5.0,
                                "tick_size": 0.01} for s, q in SYMBOLS.items()},
            "exchange": {
                "host": "127.0.0.1", "port": 0, "source": "synthetic", "seed": 11,
                "speed": 3600.0, "start": str(START), "start_on": "serve",
                "accounts": [{"name": "bot", "api_key": KEY, "api_secret": SECRET,
                              "balance": 10_000_000.0}],
                "private_faults": faults,
            },
        }
    )  # fmt: skip


class Harness:
    """An executor wired to the exchange as a live daemon wires it."""

    def __init__(self, server: ExchangeServer, rest: TradingRest, stop: asyncio.Event):
        self.server, self.rest, self.stop = server, rest, stop
        self.reports = []
        self.seen = SeenExecutions()
        specs = {s: InstrumentSpec(s, q, q, 5.0, 0.01) for s, q in SYMBOLS.items()}
        self.executor = LiveExecutor(
            run_id="c0ffee00c0ffee00", specs=specs,
            max_market_qty=dict.fromkeys(SYMBOLS, 1e9), venue=rest, ledger=MemoryLedger(),
            emit=self.reports.append, price_of=self.price,
            settle_timeout_s=1.0, retry_pause_s=0.02,
            rails=Rails(RailLimits(max_orders_per_minute=100_000)),
        )  # fmt: skip
        url = server.rest_url.replace("http://", "ws://") + "/v5/private"
        self.stream = PrivateStream(url, Credentials(KEY, SECRET), self.sink, on_gap=self.gap,
                                    seen=self.seen, reconnect_initial_s=0.05,
                                    reconnect_max_s=0.5, seed=5)  # fmt: skip

    def price(self, symbol: str) -> float:
        private = self.server.state.private
        return float(private.marks(self.server.state.clock.now())[symbol])

    async def sink(self, record) -> None:
        if isinstance(record, OrderUpdate):
            await self.executor.on_order(record)
        elif isinstance(record, Execution):
            self.executor.on_execution(record)

    async def gap(self) -> None:
        until = self.server.state.clock.now() + 60_000
        for execution in await fetch_missed_executions(self.rest, START - 3_600_000, self.seen,
                                                       until_ms=until):  # fmt: skip
            self.executor.on_execution(execution)

    @property
    def account(self):
        return self.server.state.private.members["bot"].account

    def exchange_positions(self) -> dict[str, Decimal]:
        return {p.symbol: p.size for p in self.account.positions.values()}


async def wait_for(condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_every_fault_ends_with_equal_books_and_no_order_placed_twice():
    settings = exchange_settings(FAULTS)
    stop = asyncio.Event()
    async with ExchangeServer(settings) as server, TradingRest(
        server.rest_url, Credentials(KEY, SECRET), stop=stop, timeout_s=5.0,
        backoff_base_s=0.02, backoff_max_s=0.3, rng_seed=2,
    ) as rest:  # fmt: skip
        h = Harness(server, rest, stop)
        tasks = [asyncio.create_task(h.stream.run(stop)), asyncio.create_task(h.executor.run(stop))]
        await wait_for(lambda: h.stream.stats["connects"] >= 1, "the private stream connects")
        rng = random.Random(7)
        try:
            for decision in range(60):
                orders = [
                    Order("engine", symbol, round(rng.uniform(-0.6, 0.6) / step) * step * 10,
                          START + decision * 3_600_000)
                    for symbol, step in SYMBOLS.items()
                ]  # fmt: skip
                orders = [o for o in orders if o.qty]
                await asyncio.to_thread(h.executor.submit, orders)
                await asyncio.wait_for(h.executor.drained(), 120)
                server.state.clock.pause()  # no new bar, so no manual order, while comparing
                await h.gap()  # what a lost stream message would otherwise hide
                mine = {s: Decimal(str(q)) for s, q in h.executor.positions.items() if q}
                theirs = {s: q for s, q in h.exchange_positions().items() if q}
                assert mine == theirs, f"decision {decision}: books differ"
                server.state.clock.resume()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    account = h.account
    links = [o.link_id for o in account.orders.values() if o.link_id]
    assert len(links) == len(set(links)), "an orderLinkId was placed twice"
    ledger = h.executor.ledger
    assert set(links) <= set(ledger.intents), "an exchange order is missing from the ledger"
    booked = [r.fill for r in h.reports if r.kind in (FILLED, PARTIALLY_FILLED, FUNDING)]
    exec_ids = [f.exec_id for f in booked]
    assert sorted(exec_ids) == sorted(e.exec_id for e in account.executions)
    # The exchange books a perpetual's wallet as realised PnL, fees and funding; the bot books
    # cash flows (notional, fees, funding) and marks positions: equal equity at the same marks.
    marks = server.state.private.marks(server.state.clock.now())
    flows = sum(Decimal(str(f.cash_flow)) for f in booked)
    held = sum(Decimal(str(q)) * marks[s] for s, q in h.executor.positions.items())
    assert abs(Decimal(10_000_000) + flows + held - account.equity(marks)) < Decimal("1e-6")
    fees = sum(Decimal(str(f.fee)) for f in booked if f.exec_type != "Funding")
    assert abs(fees - sum(e.fee for e in account.executions if e.exec_type != "Funding")) < (
        Decimal("1e-6")
    )
    fired = server.state.status()["private"]["faults"]
    rare = {"auth_failure", "manual_order"}  # per connection / per bar: fewer chances
    assert not [k for k in fired if k not in rare and fired[k] < OFTEN], fired
    assert fired["manual_order"] >= 1 and h.executor.foreign  # flagged, and still booked
    counters = h.executor.counters
    assert counters["unknown_outcomes"] >= OFTEN and counters["duplicate_proofs"] >= 1
