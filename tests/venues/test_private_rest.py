"""The private REST client against a fake Bybit that verifies every signature on the raw bytes
it received: each endpoint parses, rate limits wait for the reset, a clock out of the receive
window is resynchronised, reads retry what is transient, and an order create never turns an
unknown outcome into a failure or a second order."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import pytest

from bot.core.timeutil import DAY_MS
from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.gap_fill import SeenExecutions, fetch_missed_executions
from bot.venues.bybit.private_errors import DuplicateOrderLinkId, OrderRejected, OutcomeUnknown
from bot.venues.bybit.private_protocol import (
    OrderRequest,
    quoted_server_time,
)
from bot.venues.bybit.private_rest import ClockError, PrivateRest, TradingRest
from bot.venues.bybit.rest_protocol import BybitAPIError, BybitHTTPError, RateLimited
from bot.venues.bybit.stopping import Stopping
from tests.conftest import ROOT
from tests.venues.private_fake import FakePrivateBybit, fill, position, serving

KEY = "PrivKeyMarker7Q2W9E"
SECRET = "PrivSecretMarker3R8T1Y6U"
CREDENTIALS = Credentials(KEY, SECRET)
T0 = 1_700_000_000_000


def client(cls: type[PrivateRest], url: str, **kwargs: Any) -> Any:
    """A client with short waits, so retries cost milliseconds."""
    options = {"timeout_s": 2.0, "max_retries": 3, "backoff_base_s": 0.01,
               "backoff_max_s": 1.0, "rng_seed": 1} | kwargs  # fmt: skip
    return cls(url, CREDENTIALS, **options)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakePrivateBybit, str]]:
    bybit = FakePrivateBybit(keys={KEY: SECRET})
    async with serving(bybit) as url:
        yield bybit, url


def market(link: str, side: str = "Buy", qty: str = "0.010", **kw: Any) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, qty, link, **kw)


# -- reads ------------------------------------------------------------------------------------
async def test_every_read_parses_and_every_signature_verifies(fake):
    bybit, url = fake
    bybit.positions = [position("BTCUSDT", "Buy", "0.5"), position("ETHUSDT", "Sell", "2")]
    bybit.executions = [fill(n, T0 + n) for n in range(5)]
    async with client(TradingRest, url) as rest:
        await rest.create_order(market("link-1"))
        info = await rest.key_info()
        wallet = await rest.wallet()
        positions = await rest.positions()
        btc = await rest.positions("BTCUSDT")
        found = await rest.order_by_link_id("BTCUSDT", "link-1")
        missing = await rest.order_by_link_id("BTCUSDT", "link-2")
        opened = await rest.open_orders()
        history = await rest.order_history(link_id="link-1")
        fills = await rest.executions(start_ms=T0, end_ms=T0 + DAY_MS)
    assert (info.read_only, info.can_withdraw, info.uta) == (False, False, True)
    assert (wallet.equity, wallet.wallet_balance, wallet.available) == (1012.5, 1000, 950.25)
    assert wallet.coin("USDT").unrealised_pnl == 12.5
    assert [(p.symbol, p.size) for p in positions] == [("BTCUSDT", 0.5), ("ETHUSDT", -2)]
    assert [p.symbol for p in btc] == ["BTCUSDT"]
    assert found.link_id == "link-1" and found.status == "New" and found.qty == 0.01
    assert missing is None and [o.link_id for o in opened] == ["link-1"] == [
        o.link_id for o in history
    ]
    assert [f.exec_id for f in fills] == ["e0", "e1", "e2", "e3", "e4"]  # oldest first
    assert bybit.counters["bad_signature"] == 0 and bybit.counters["bad_timestamp"] == 0
    assert bybit.counters["execution/list"] == 3  # two rows a page: the cursor was followed
    cursors = [s.raw_query for s in bybit.seen if s.path == "execution/list"]
    assert "cursor=at%3D2" in cursors[1] and "cursor=at%3D4" in cursors[2]  # sent as received


async def test_the_read_only_client_cannot_send_an_order(fake):
    bybit, url = fake
    assert not hasattr(PrivateRest, "create_order") and not hasattr(PrivateRest, "cancel_order")
    async with client(PrivateRest, url) as rest:
        await rest.key_info()
        await rest.wallet()
        await rest.positions()
        await rest.open_orders()
        await rest.order_by_link_id("BTCUSDT", "x")
        await rest.executions_since(T0)
        with pytest.raises(PermissionError, match="read-only"):
            await rest._signed("POST", "/v5/order/create", {"orderLinkId": "x"})
    assert bybit.seen and {s.method for s in bybit.seen} == {"GET"}


async def test_executions_since_walks_seven_day_windows_and_gaps_dedupe(fake):
    bybit, url = fake
    times = [T0, T0 + 3 * DAY_MS, T0 + 7 * DAY_MS, T0 + 7 * DAY_MS + 1, T0 + 15 * DAY_MS]
    bybit.executions = [fill(n, at) for n, at in enumerate(times)]
    seen = SeenExecutions(["e0"])  # booked before the gap
    async with client(PrivateRest, url) as rest:
        with pytest.raises(ValueError, match="7 days"):
            await rest.executions(start_ms=T0, end_ms=T0 + 8 * DAY_MS)
        missed = await fetch_missed_executions(rest, T0, seen, until_ms=T0 + 16 * DAY_MS)
        again = await fetch_missed_executions(rest, T0, seen, until_ms=T0 + 16 * DAY_MS)
    assert [e.exec_id for e in missed] == ["e1", "e2", "e3", "e4"] and again == []
    queries = [dict(parse_qsl(s.raw_query)) for s in bybit.seen if s.path == "execution/list"]
    windows = dict.fromkeys((int(q["startTime"]) - T0, int(q["endTime"]) - T0) for q in queries)
    assert list(windows) == [
        (0, 7 * DAY_MS), (7 * DAY_MS + 1, 14 * DAY_MS + 1), (14 * DAY_MS + 2, 16 * DAY_MS)
    ]  # fmt: skip
    assert len(seen) == 5
    bounded = SeenExecutions(capacity=2)
    assert [bounded.add(x) for x in ("a", "b", "a", "c", "a")] == [True, True, False, True, True]


async def test_executions_since_ends_at_the_exchanges_now_not_ours(fake):
    """Execution times are on the exchange's clock: a local exchange replays a past year."""
    bybit, url = fake
    bybit.market_time_ms = -365 * DAY_MS
    market_now = int(time.time() * 1000) - 365 * DAY_MS
    bybit.executions = [fill(1, market_now - 10 * DAY_MS), fill(2, market_now - DAY_MS)]
    async with client(PrivateRest, url) as rest:
        found = await rest.executions_since(market_now - 12 * DAY_MS)
    assert [e.exec_id for e in found] == ["e1", "e2"]
    assert bybit.counters["execution/list"] == 2  # two windows, not a year of them


async def test_rate_limit_waits_for_the_reset_header(fake):
    bybit, url = fake
    bybit.faults["account/wallet-balance"].extend(["10006", "10006"])
    began = time.monotonic()
    async with client(PrivateRest, url) as rest:
        await rest.wallet()
    assert time.monotonic() - began >= 2 * bybit.reset_ahead_ms / 1000
    assert rest.stats["retries.rate_limited"] == 2 and bybit.counters["account/wallet-balance"] == 3


@pytest.mark.parametrize("quoted", [True, False])
async def test_a_clock_out_of_the_window_is_resynchronised_then_the_call_succeeds(fake, quoted):
    bybit, url = fake
    bybit.skew_ms = 60_000  # Bybit's clock a minute ahead of ours
    bybit.quote_server_time = quoted  # else the offset comes from /v5/market/time
    async with client(TradingRest, url) as rest:
        assert (await rest.wallet()).equity == 1012.5
        assert abs(rest.offset_ms - 60_000) < 5_000
        await rest.create_order(market("after-resync"))
    assert bybit.counters["bad_timestamp"] == 1 and bybit.counters["time"] == (not quoted)
    assert rest.stats["resyncs"] == 1 and rest.stats["retries.resync"] == 1
    assert list(bybit.orders) == ["after-resync"]


def test_the_server_time_a_10002_quotes():
    live = ROOT.parent / "shared" / "bybit-messages" / "live_error_bodies.json"
    if not live.exists():
        pytest.skip(f"{live} not found")
    text = json.loads(live.read_text())["recv_window_10002"]["retMsg"]
    assert quoted_server_time(text) == 1678623606869
    assert quoted_server_time("invalid request, please check your server timestamp") is None


async def test_resyncs_are_bounded_when_the_clock_cannot_be_fixed(fake):
    bybit, url = fake
    bybit.skew_ms, bybit.quote_error_ms = 60_000, -60_000  # the server quotes a wrong time
    async with client(TradingRest, url) as rest:
        with pytest.raises(BybitAPIError, match="retCode 10002"):
            await rest.positions()
        with pytest.raises(OrderRejected) as caught:
            await rest.create_order(market("never-sent"))
    assert caught.value.code == 10002 and not bybit.orders
    assert bybit.counters["bad_timestamp"] == 2 * (1 + rest.max_resyncs)


async def test_a_replayed_market_clock_is_not_signed_against(fake):
    """The local exchange serves its (accelerated, historical) market time at
    /v5/market/time; signatures are checked against the wall clock."""
    bybit, url = fake
    bybit.market_time_ms = -2 * 365 * DAY_MS
    async with client(PrivateRest, url) as rest:
        with pytest.raises(ClockError, match="from our clock"):
            await rest.sync_time()
        assert rest.offset_ms == 0
        assert (await rest.wallet()).equity == 1012.5
    bybit.skew_ms, bybit.quote_server_time = 60_000, False  # a 10002 that quotes no time
    async with client(PrivateRest, url) as rest:
        with pytest.raises(BybitAPIError, match="retCode 10002"):
            await rest.wallet()
    assert rest.offset_ms == 0 and bybit.counters["bad_timestamp"] == 1


async def test_reads_retry_server_errors_a_bounded_number_of_times(fake):
    bybit, url = fake
    bybit.faults["position/list"].extend(["10016", "502"])
    async with client(PrivateRest, url, max_retries=2) as rest:
        assert await rest.positions() == []
        assert rest.stats["retries.retcode_10016"] == 1 and rest.stats["retries.http_502"] == 1
        bybit.faults["position/list"].extend(["502"] * 3)
        with pytest.raises(BybitHTTPError, match="HTTP 502"):
            await rest.positions()
    assert bybit.counters["position/list"] == 3 + 3


async def test_a_stalled_read_times_out_and_is_retried(fake):
    bybit, url = fake
    bybit.faults["user/query-api"].append("slow")
    async with client(PrivateRest, url, timeout_s=3.0) as rest:  # the fault stalls 30 s
        assert (await rest.key_info()).uta
    assert rest.stats["retries.transport"] == 1


async def test_stop_ends_a_rate_limit_wait_at_once(fake):
    bybit, url = fake
    bybit.reset_ahead_ms = 120_000
    bybit.faults["account/wallet-balance"].append("10006")
    stop = asyncio.Event()
    async with client(PrivateRest, url, stop=stop, backoff_max_s=300) as rest:
        call = asyncio.create_task(rest.wallet())
        while rest.stats["retries"] == 0:
            await asyncio.sleep(0.01)
        stop.set()
        with pytest.raises(Stopping):
            await asyncio.wait_for(call, 30)


# -- order create and cancel ------------------------------------------------------------------
async def test_create_sends_the_order_as_asked(fake):
    bybit, url = fake
    async with client(TradingRest, url) as rest:
        ack = await rest.create_order(market("m-1", "Sell", "0.5", reduce_only=True))
        limit = OrderRequest("ETHUSDT", "Buy", "1.25", "l-1", order_type="Limit", price="2500.5")
        await rest.create_order(limit)
    assert (ack.order_id, ack.link_id) == ("oid-1", "m-1")
    first, second = (json.loads(s.body) for s in bybit.seen if s.method == "POST")
    assert first == {"category": "linear", "symbol": "BTCUSDT", "side": "Sell",
                     "orderType": "Market", "qty": "0.5", "orderLinkId": "m-1",
                     "reduceOnly": True, "positionIdx": 0}  # fmt: skip
    assert (second["orderType"], second["price"], second["timeInForce"]) == ("Limit", "2500.5",
                                                                              "IOC")  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [dict(qty="0"), dict(qty="1e-3"), dict(qty="0.30000000000000004x"), dict(link_id="x" * 37),
     dict(link_id="has space"), dict(price="100"), dict(order_type="Limit"),
     dict(side="Long"), dict(symbol="")],
)  # fmt: skip
def test_a_malformed_order_request_is_refused_before_sending(bad: dict):
    fields = {"symbol": "BTCUSDT", "side": "Buy", "qty": "0.1", "link_id": "ok-1"} | bad
    with pytest.raises(ValueError):
        OrderRequest(**fields)


@pytest.mark.parametrize(
    "fault", ["accept_then_timeout", "accept_then_reset", "accept_then_502", "10016", "502",
              "slow"],
)  # fmt: skip
async def test_an_unknown_outcome_is_never_retried_nor_called_a_failure(fake, fault: str):
    bybit, url = fake
    bybit.faults["order/create"].append(fault)
    async with client(TradingRest, url, timeout_s=3.0) as rest:  # the faults stall 30 s
        with pytest.raises(OutcomeUnknown) as caught:
            await rest.create_order(market("u-1"))
        assert caught.value.link_id == "u-1" and not isinstance(caught.value, OrderRejected)
        assert bybit.counters["order/create"] == 1  # not retried inside the client
        assert rest.stats["outcome_unknown"] == 1
        # resolving it with the same id: a re-send proves the order exists (or places it)
        if fault.startswith("accept"):
            with pytest.raises(DuplicateOrderLinkId) as duplicate:
                await rest.create_order(market("u-1"))
            assert duplicate.value.code == 110072
        else:
            assert (await rest.create_order(market("u-1"))).link_id == "u-1"
    assert list(bybit.orders) == ["u-1"]


@pytest.mark.parametrize("code", [110007, 110094, 110017, 10001])
async def test_a_rejection_is_definite_and_named(fake, code: int):
    bybit, url = fake
    bybit.faults["order/create"].append(str(code))
    async with client(TradingRest, url) as rest:
        with pytest.raises(OrderRejected) as caught:
            await rest.create_order(market("r-1"))
    assert (caught.value.code, caught.value.link_id) == (code, "r-1")
    assert f"retCode {code}" in str(caught.value) and not bybit.orders
    assert bybit.counters["order/create"] == 1


async def test_a_rate_limited_create_is_resent_with_the_same_id_and_bytes(fake):
    bybit, url = fake
    bybit.faults["order/create"].append("10006")
    async with client(TradingRest, url) as rest:
        assert (await rest.create_order(market("rl-1"))).link_id == "rl-1"
    bodies = [s.body for s in bybit.seen if s.method == "POST"]
    assert len(bodies) == 2 and bodies[0] == bodies[1] and list(bybit.orders) == ["rl-1"]
    bybit.faults["order/create"].extend(["10006"] * 5)
    async with client(TradingRest, url, max_retries=1) as rest:
        with pytest.raises(OrderRejected) as caught:
            await rest.create_order(market("rl-2"))
    assert caught.value.code == 10006 and "rl-2" not in bybit.orders


async def test_a_create_that_cannot_connect_is_retried_then_unknown():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with client(TradingRest, f"http://127.0.0.1:{port}", max_retries=2) as rest:
        with pytest.raises(OutcomeUnknown, match="could not connect"):
            await rest.create_order(market("c-1"))
    assert rest.stats["requests.order/create"] == 3


async def test_cancel_by_link_id_and_cancel_of_nothing(fake):
    bybit, url = fake
    async with client(TradingRest, url) as rest:
        await rest.create_order(market("k-1"))
        ack = await rest.cancel_order("BTCUSDT", "k-1")
        assert ack is not None and ack.link_id == "k-1"
        assert await rest.cancel_order("BTCUSDT", "k-1") is None  # 110001: nothing open
        assert await rest.cancel_order("BTCUSDT", "never-placed") is None
    assert bybit.orders["k-1"].status == "Cancelled"


async def test_a_bad_signature_fails_at_once_with_the_message_withheld(fake):
    bybit, url = fake
    wrong = Credentials(KEY, "not-the-secret-at-all")
    async with TradingRest(url, wrong, max_retries=3, backoff_base_s=0.01) as rest:
        with pytest.raises(BybitAPIError) as read:
            await rest.wallet()
        with pytest.raises(OrderRejected) as order:
            await rest.create_order(market("s-1"))
    assert read.value.code == 10004 and "withheld" in str(read.value)
    assert order.value.code == 10004 and "signature refused" in str(order.value)
    assert bybit.counters["bad_signature"] == 2  # neither was retried
    for text in (str(read.value), str(order.value), repr(order.value)):
        assert KEY not in text and "origin" not in text


async def test_rate_limited_errors_keep_their_type_for_the_retry_policy(fake):
    bybit, url = fake
    bybit.faults["position/list"].extend(["10006"] * 3)
    bybit.reset_ahead_ms = 20
    async with client(PrivateRest, url, max_retries=2) as rest:
        with pytest.raises(RateLimited):
            await rest.positions()


async def test_stop_never_abandons_a_create_in_flight(fake):
    """A create already sent is awaited to its outcome; Stopping means "not placed"."""
    bybit, url = fake
    stop = asyncio.Event()
    bybit.faults["order/create"].append("accept_then_timeout")
    async with client(TradingRest, url, stop=stop, timeout_s=3.0) as rest:
        call = asyncio.create_task(rest.create_order(market("f-1")))
        while bybit.counters["order/create"] == 0:  # the request reached the exchange
            await asyncio.sleep(0.01)
        stop.set()
        with pytest.raises(OutcomeUnknown):
            await asyncio.wait_for(call, 30)
        with pytest.raises(Stopping):
            await rest.create_order(market("f-2"))  # stop already set: not sent
    assert list(bybit.orders) == ["f-1"] and bybit.counters["order/create"] == 1

    stop = asyncio.Event()
    bybit.reset_ahead_ms = 120_000
    bybit.faults["order/create"].append("10006")
    async with client(TradingRest, url, stop=stop, backoff_max_s=300) as rest:
        call = asyncio.create_task(rest.create_order(market("f-3")))
        while rest.stats["retries"] == 0:  # refused, now waiting for the reset
            await asyncio.sleep(0.01)
        stop.set()
        with pytest.raises(Stopping):
            await asyncio.wait_for(call, 30)
    assert "f-3" not in bybit.orders
