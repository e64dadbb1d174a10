"""The private websocket: the sans-I/O connection protocol edge by edge, then the stream
against a fake that checks the auth signature — it authenticates, subscribes, delivers parsed
records, survives malformed rows, reconnects after a server-side close with a fresh auth and
subscription, and calls the gap hook so missed executions are fetched once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.gap_fill import fetch_missed_executions
from bot.venues.bybit.private_records import Execution, OrderUpdate, Position, Wallet
from bot.venues.bybit.private_rest import PrivateRest
from bot.venues.bybit.private_stream import AuthenticationError, PrivateStream
from bot.venues.bybit.private_ws_protocol import (
    Close,
    Deliver,
    Dropped,
    PrivateConnection,
    Ready,
)
from tests.venues.private_fake import FakePrivateBybit, fill, position, serving

KEY = "WsKeyMarker5H3J8K1L"
SECRET = "WsSecretMarker2Z7X4C9V"
CREDENTIALS = Credentials(KEY, SECRET)
WALL = 1_700_000_000_000
DAY = 86_400_000


def order_row(link: str, status: str = "Filled") -> dict[str, Any]:
    return {"orderId": f"o-{link}", "orderLinkId": link, "symbol": "BTCUSDT", "side": "Buy",
            "orderType": "Market", "price": "44000", "qty": "0.01", "avgPrice": "43000.5",
            "cumExecQty": "0.01", "cumExecValue": "430.005", "cumExecFee": "0.2365",
            "leavesQty": "0", "orderStatus": status, "rejectReason": "EC_NoError",
            "reduceOnly": False, "timeInForce": "IOC", "positionIdx": 0, "category": "linear",
            "createdTime": str(WALL), "updatedTime": str(WALL + 5)}  # fmt: skip


WALLET_ROW = {"accountType": "UNIFIED", "totalEquity": "1000.5", "totalWalletBalance": "1000",
              "totalAvailableBalance": "900", "totalMarginBalance": "1000.5",
              "coin": [{"coin": "USDT", "equity": "1000.5", "walletBalance": "1000",
                        "unrealisedPnl": "0.5", "cumRealisedPnl": "0"}]}  # fmt: skip


def frame(topic: str, rows: list[Any]) -> dict[str, Any]:
    return {"id": "x", "topic": topic, "creationTime": WALL, "data": rows}


def text(message: dict[str, Any]) -> str:
    return json.dumps(message)


# -- the protocol, without sockets -------------------------------------------------------------
def live_connection(**kwargs: Any) -> PrivateConnection:
    connection = PrivateConnection(CREDENTIALS, **kwargs)
    connection.start(0.0, WALL)
    connection.receive(text({"success": True, "ret_msg": "", "op": "auth"}), 0.1)
    assert connection.receive(text({"success": True, "op": "subscribe"}), 0.2) == [Ready()]
    return connection


def test_auth_is_signed_then_all_topics_subscribed_once_auth_succeeds():
    connection = PrivateConnection(CREDENTIALS)
    (auth,) = connection.start(0.0, WALL)
    request = json.loads(auth.text)
    key, expires, signature = request["args"]
    assert (request["op"], key, expires) == ("auth", KEY, WALL + 5_000)
    expected = hmac.new(SECRET.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256)
    assert signature == expected.hexdigest()
    assert SECRET not in auth.text and KEY not in repr(auth)  # a Send's repr shows no frame
    assert connection.receive(text({"op": "subscribe", "success": True}), 0.1) == []  # too soon
    (subscribe,) = connection.receive(text({"success": True, "ret_msg": "", "op": "auth",
                                            "conn_id": "c"}), 0.1)  # fmt: skip
    assert json.loads(subscribe.text)["args"] == ["order", "execution", "position", "wallet"]
    assert connection.receive(text({"success": True, "ret_msg": "", "op": "subscribe",
                                    "conn_id": "c"}), 0.2) == [Ready()]  # fmt: skip
    assert connection.state == "live"


def test_a_refused_or_unanswered_handshake_closes_the_connection():
    connection = PrivateConnection(CREDENTIALS)
    connection.start(0.0, WALL)
    reply = {"success": False, "ret_msg": f"Params Error {KEY}", "op": "auth"}
    (close,) = connection.receive(text(reply), 0.1)
    assert close == Close("authentication refused", auth_failed=True)
    assert connection.stats["auth_failures"] == 1 and connection.receive(text(reply), 0.2) == []

    silent = PrivateConnection(CREDENTIALS, handshake_timeout_s=5)
    silent.start(0.0, WALL)
    assert silent.tick(4.9) == [] and silent.next_wakeup() == 5.0
    assert silent.tick(5.0) == [Close("no auth reply in time")]

    refused = PrivateConnection(CREDENTIALS)
    refused.start(0.0, WALL)
    refused.receive(text({"success": True, "op": "auth"}), 0.1)
    (close,) = refused.receive(text({"success": False, "op": "subscribe",
                                     "ret_msg": "error:handler not found"}), 0.2)  # fmt: skip
    assert isinstance(close, Close) and "subscription refused" in close.reason


def test_pings_every_interval_and_an_overdue_pong_closes():
    connection = live_connection(ping_interval_s=20, pong_timeout_s=10)
    assert connection.tick(20.1) == [] and connection.next_wakeup() == pytest.approx(20.2)
    (ping,) = connection.tick(20.2)
    assert json.loads(ping.text)["op"] == "ping"
    connection.receive(text({"req_id": "p", "op": "pong", "args": ["1"]}), 20.3)  # private form
    assert connection.tick(40.2)[0].what == "ping"
    connection.receive(text({"success": True, "ret_msg": "pong", "op": "ping"}), 40.3)  # public
    assert connection.tick(60.2)[0].what == "ping"
    assert connection.tick(70.1) == []
    assert connection.tick(70.2) == [Close("no pong in time")]
    assert connection.stats["pings"] == 3 and connection.stats["pongs"] == 2
    assert connection.stats["pong_timeouts"] == 1


def test_rows_are_parsed_and_bad_or_foreign_ones_dropped_and_counted():
    connection = live_connection()
    spot = {**fill(2, WALL), "category": "spot"}
    actions = connection.receive(
        text(frame("execution", [fill(1, WALL), {**fill(3, WALL), "execPrice": "-5"}, spot])), 1
    )
    dropped, deliver = actions
    assert isinstance(dropped, Dropped) and "negative" in dropped.reasons[0]
    assert isinstance(deliver, Deliver) and [r.exec_id for r in deliver.records] == ["e1"]
    assert connection.stats["malformed"] == 1 and connection.stats["other_category"] == 1
    (deliver,) = connection.receive(text(frame("wallet", [WALLET_ROW])), 2)
    assert isinstance(deliver.records[0], Wallet) and deliver.records[0].equity == 1000.5
    for raw in ("{not json", "[1, 2]", text({"topic": 5}), text({"data": []})):
        assert isinstance(connection.receive(raw, 3)[0], Dropped)
    assert connection.stats["malformed"] == 5
    assert connection.receive(text(frame("greeks", [{}])), 4)[0].reasons == (
        "a topic not subscribed to",
    )
    assert connection.receive(text(frame("order.linear", "oops")), 5)[0].reasons == (
        "data is a str, not an array",
    )


# -- the stream against the fake ------------------------------------------------------------------
async def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for ``condition`` (generous deadline: a loaded machine is slow)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakePrivateBybit, str]]:
    bybit = FakePrivateBybit(keys={KEY: SECRET})
    async with serving(bybit) as url:
        yield bybit, url


def stream_for(url: str, received: list[Any], **kwargs: Any) -> PrivateStream:
    async def sink(record: Any) -> None:
        received.append(record)

    options = {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2, "seed": 1,
               "handshake_timeout_s": 30.0} | kwargs  # fmt: skip
    return PrivateStream(url.replace("http", "ws") + "/v5/private", CREDENTIALS, sink, **options)


async def test_stream_delivers_reconnects_reauthenticates_and_fills_gaps(fake):
    bybit, url = fake
    bybit.executions = [fill(1, WALL), fill(2, WALL + 10)]
    received: list[Any] = []
    gap_fills: list[list[Execution]] = []
    async with PrivateRest(url, CREDENTIALS, backoff_base_s=0.01) as rest:

        async def on_gap() -> None:
            since = max((r.time_ms for r in received if isinstance(r, Execution)), default=WALL)
            missed = await fetch_missed_executions(rest, since, stream.seen, until_ms=WALL + DAY)
            gap_fills.append(missed)
            received.extend(missed)

        stream = stream_for(url, received, on_gap=on_gap)
        stop = asyncio.Event()
        task = asyncio.create_task(stream.run(stop))
        await until(lambda: stream.stats["gaps"] == 1, "the first gap fill")
        assert [e.exec_id for e in gap_fills[0]] == ["e1", "e2"]

        await bybit.push(frame("order", [order_row("L1")]))
        await bybit.push(frame("execution", [fill(2, WALL + 10), fill(3, WALL + 20)]))
        await bybit.push(frame("position", [position("BTCUSDT", "Buy", "0.03")]))
        await bybit.push(frame("wallet", [WALLET_ROW]))
        await until(lambda: len(received) == 6, "the pushed records")
        assert stream.stats["duplicates"] == 1  # e2 came by REST first

        bybit.executions.append(fill(4, WALL + 30))  # filled while the stream is down
        await bybit.drop_connection()
        await until(lambda: stream.stats["gaps"] == 2, "the gap fill after the reconnect")
        await bybit.push(frame("execution", [fill(4, WALL + 30), fill(5, WALL + 40)]))
        await until(lambda: stream.stats["delivered.execution"] == 2, "e5")
        stop.set()
        await asyncio.wait_for(task, 30)

    kinds = [type(r).__name__ for r in received]
    assert kinds == ["Execution", "Execution", "OrderUpdate", "Execution", "Position", "Wallet",
                     "Execution", "Execution"]  # fmt: skip
    assert [r.exec_id for r in received if isinstance(r, Execution)] == [
        "e1",
        "e2",
        "e3",
        "e4",
        "e5",
    ]  # each once: e4 from REST, its stream copy dropped
    order = next(r for r in received if isinstance(r, OrderUpdate))
    assert (order.link_id, order.avg_price, order.cum_exec_fee) == ("L1", 43000.5, 0.2365)
    assert next(r for r in received if isinstance(r, Position)).size == 0.03
    assert [[e.exec_id for e in found] for found in gap_fills] == [["e1", "e2"], ["e4"]]
    assert bybit.counters["ws_auth_ok"] == 2 and len(bybit.ws_subscriptions) == 2
    assert bybit.ws_subscriptions[1] == ["order", "execution", "position", "wallet"]
    assert stream.stats["reconnects"] >= 1 and stream.stats["duplicates"] == 2
    assert not stream.connected


async def test_malformed_rows_are_counted_and_dropped_and_the_stream_goes_on(fake, caplog):
    bybit, url = fake
    received: list[Any] = []
    stream = stream_for(url, received)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    await bybit.push("{this is not json")
    await bybit.push(frame("execution", [{**fill(1, WALL), "execQty": "NaN"}, fill(2, WALL)]))
    await bybit.push(frame("order", [order_row("L9", status="")]))
    await bybit.push(frame("order", [order_row("L10")]))
    await until(lambda: len(received) == 2, "the good rows")
    stop.set()
    await asyncio.wait_for(task, 30)
    assert [getattr(r, "exec_id", None) or r.link_id for r in received] == ["e2", "L10"]
    assert stream.stats["malformed"] == 3 and stream.stats["connects"] == 1
    assert sum("dropped" in r.getMessage() for r in caplog.records) == 3


async def test_a_refused_auth_is_retried_and_repeated_refusals_end_the_stream(fake):
    bybit, url = fake
    bybit.ws_auth_fail.extend([True])
    stream = stream_for(url, [])
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    await until(lambda: stream.connected, "a successful auth after a refused one")
    assert stream.stats["auth_failures"] == 1 and bybit.counters["ws_auth_ok"] == 1
    stop.set()
    await asyncio.wait_for(task, 30)

    bybit.ws_auth_fail.extend([True] * 10)
    stubborn = stream_for(url, [], max_auth_failures=3)
    with pytest.raises(AuthenticationError, match="3 times in a row"):
        await asyncio.wait_for(stubborn.run(asyncio.Event()), 60)
    assert stubborn.stats["auth_failures"] == 3


async def test_pings_keep_the_connection_and_a_missing_pong_replaces_it(fake):
    bybit, url = fake
    stream = stream_for(url, [], ping_interval_s=0.1, pong_timeout_s=3.0)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    await until(lambda: bybit.counters["ws_pings"] >= 3, "three pings answered")
    assert stream.stats["connects"] == 1 and stream.stats["pong_timeouts"] == 0
    bybit.ws_pong = False
    await until(lambda: stream.stats["pong_timeouts"] >= 1, "an overdue pong")
    bybit.ws_pong = True
    await until(lambda: stream.connected and stream.stats["connects"] >= 2, "a new connection")
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_a_failing_gap_hook_is_retried_on_the_next_connection(fake):
    bybit, url = fake
    calls: list[int] = []

    async def on_gap() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("REST is down")

    stream = stream_for(url, [], on_gap=on_gap)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    await until(lambda: len(calls) == 2 and stream.connected, "the second gap call")
    assert stream.stats["gap_failures"] == 1 and bybit.counters["ws_auth_ok"] == 2
    stop.set()
    await asyncio.wait_for(task, 30)


async def test_stop_ends_the_stream_promptly_even_while_reconnecting():
    stream = stream_for("http://127.0.0.1:9", [], reconnect_initial_s=60, reconnect_max_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    await until(lambda: stream.stats["reconnects"] >= 1, "a failed connection")
    began = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 30)
    assert time.monotonic() - began < 10
