"""The public websocket: Bybit's ops and replies, and the streams they start (fake wall clock,
so every update is placed by the test)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from bot.exchange import ExchangeServer, session
from tests.exchange.harness import HOUR, SYNTH_FIRST, FakeWall, collect, make_settings, sample_text
from tests.exchange.test_book import apply_strictly

SPEED = 3600.0
K = 4
START = SYNTH_FIRST + 100 * HOUR + HOUR // 2 + 1  # just after update 2 of bar 100


@asynccontextmanager
async def exchange(**options: Any) -> AsyncIterator[tuple[ExchangeServer, FakeWall]]:
    wall = FakeWall()
    settings = make_settings(speed=SPEED, start=str(START), bar_updates=K, **options)
    async with ExchangeServer(settings, wall) as server:
        yield server, wall


@pytest.fixture
async def server() -> AsyncIterator[tuple[ExchangeServer, FakeWall]]:
    async with exchange() as pair:
        yield pair


async def request(ws: aiohttp.ClientWebSocketResponse, **body: Any) -> dict[str, Any]:
    await ws.send_str(json.dumps(body))
    return json.loads(await ws.receive_str(timeout=5))


async def test_replies_have_bybit_s_shape(server):
    srv, _ = server
    async with aiohttp.ClientSession() as http, http.ws_connect(srv.ws_url) as ws:
        ack = await request(ws, op="subscribe", req_id="x1", args=["kline.60.BTCUSDT"])
        sample = json.loads(sample_text("ws_connect_12.jsonc"))
        assert list(ack) == list(sample)
        assert ack == {**ack, "success": True, "ret_msg": "", "req_id": "x1", "op": "subscribe"}
        conn_id = ack["conn_id"]
        ack = await request(ws, op="subscribe", args=["kline.60.ETHUSDT"])
        assert ack["success"] and ack["req_id"] == "" and ack["conn_id"] == conn_id
        pong = await request(ws, op="ping")
        assert pong == {
            "success": True,
            "ret_msg": "pong",
            "conn_id": conn_id,
            "req_id": "",
            "op": "ping",
        }
        assert (await request(ws, op="ping", req_id="p"))["req_id"] == "p"
        failed = await request(ws, op="subscribe", req_id="bad", args=["kline.5.BTCUSDT"])
        live = json.loads(sample_text("live_error_bodies.json"))["ws_subscribe_unknown_topic"]
        assert list(failed) == list(live["body"])
        assert failed == {
            **failed,
            "success": False,
            "req_id": "bad",
            "op": "subscribe",
            "ret_msg": "error:handler not found,topic:kline.5.BTCUSDT",
        }
        for topic in ("orderbook.7.BTCUSDT", "kline.60.XRPUSDT", "publicTrade.BTCUSDT", 5):
            failed = await request(ws, op="subscribe", args=["orderbook.50.BTCUSDT", topic])
            assert not failed["success"] and f"topic:{topic}" in failed["ret_msg"]
        (sess,) = srv.state.sessions
        assert sess.topics == {"kline.60.BTCUSDT", "kline.60.ETHUSDT"}  # all or nothing
        again = await request(ws, op="subscribe", args=["kline.60.BTCUSDT"])
        assert again["ret_msg"] == "error:already subscribed,topic:kline.60.BTCUSDT"
        gone = await request(ws, op="unsubscribe", req_id="u", args=["kline.60.BTCUSDT"])
        assert gone["success"] and gone["op"] == "unsubscribe" and gone["req_id"] == "u"
        assert not (await request(ws, op="unsubscribe", args=["kline.60.BTCUSDT"]))["success"]
        assert not (await request(ws, op="subscribe", args=[]))["success"]
        assert not (await request(ws, op="dance"))["success"]
        await ws.send_str("not json")
        assert json.loads(await ws.receive_str(timeout=5))["success"] is False


async def test_only_linear_is_served(server):
    srv, _ = server
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(srv.ws_url.replace("linear", "spot"))
        assert info.value.status == 404


async def test_kline_stream_starts_at_the_subscription_and_confirms_exact_bars(server):
    srv, wall = server
    market = srv.state.market
    async with aiohttp.ClientSession() as http, http.ws_connect(srv.ws_url) as ws:
        await request(ws, op="subscribe", args=["kline.60.BTCUSDT"])
        assert (await collect(ws, quiet=0.2))[0] == []  # market time stands still: nothing
        wall.t += 3.0  # three market hours
        frames, closed = await collect(ws)
    assert closed is None
    data = [json.loads(f)["data"][0] for f in frames]
    assert all(json.loads(f)["topic"] == "kline.60.BTCUSDT" for f in frames)
    assert data[0]["timestamp"] > START  # no history: the next update after subscribing
    bar100 = SYNTH_FIRST + 100 * HOUR
    assert [(d["start"], d["confirm"]) for d in data] == [
        (bar100, False),
        (bar100, True),
        *[(bar100 + n * HOUR, c) for n in (1, 2) for c in [False] * K + [True]],
        *[(bar100 + 3 * HOUR, False)] * 3,  # updates 0, 1, 2 of the bar forming at the end
    ]
    for d in data:
        slot = (d["start"] - SYNTH_FIRST) // HOUR
        bar = market.tape.bar(0, slot)
        values = [float(d[f]) for f in ("open", "high", "low", "close", "volume")]
        if d["confirm"]:
            assert values == list(bar[:5]) and d["timestamp"] == d["end"] + 1
        else:
            assert values[0] == bar.open and bar.low <= values[2] <= values[1] <= bar.high
    times = [d["timestamp"] for d in data]
    assert times == sorted(times) and times[-1] == bar100 + 3 * HOUR + HOUR // 2


async def test_order_book_snapshot_then_deltas_track_the_server_book(server):
    srv, wall = server
    market = srv.state.market
    async with aiohttp.ClientSession() as http, http.ws_connect(srv.ws_url) as ws:
        await request(ws, op="subscribe", args=["orderbook.50.ETHUSDT", "orderbook.1.BTCUSDT"])
        first, _ = await collect(ws, quiet=0.2)
        wall.t += 2.0
        later, _ = await collect(ws)
    messages = [json.loads(f) for f in first + later]
    eth = [m for m in messages if m["topic"] == "orderbook.50.ETHUSDT"]
    btc = [m for m in messages if m["topic"] == "orderbook.1.BTCUSDT"]
    assert [m["type"] for m in eth] == ["snapshot"] + ["delta"] * (len(eth) - 1)
    assert len(eth) == 1 + 2 * K and all(m["type"] == "snapshot" for m in btc)
    us = [m["data"]["u"] for m in eth]
    assert us == list(range(us[0], us[0] + len(us)))
    assert eth[0]["data"]["u"] == market.update_at(START) + 1
    book: dict[str, dict[str, str]] = {}
    for m in eth:
        apply_strictly(book, m)
    final = market.book("ETHUSDT", 50, market.update_at(START + 2 * HOUR))
    assert book == {"b": final.bids, "a": final.asks}
    assert all(len(m["data"]["b"]) == len(m["data"]["a"]) == 1 for m in btc)


async def test_two_connections_see_the_same_market(server):
    srv, wall = server
    topics = ["kline.60.ETHUSDT", "orderbook.50.BTCUSDT"]
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(srv.ws_url) as a,
        http.ws_connect(srv.ws_url) as b,
    ):
        for ws in (a, b):
            await request(ws, op="subscribe", args=topics)
        wall.t += 1.0
        frames_a, _ = await collect(a)
        frames_b, _ = await collect(b)
    assert frames_a == frames_b and len(frames_a) > 5


async def test_idle_connections_are_cut(monkeypatch, server):
    monkeypatch.setattr(session, "IDLE_TIMEOUT_S", 0.2)
    srv, _ = server
    async with aiohttp.ClientSession() as http, http.ws_connect(srv.ws_url) as ws:
        _, closed = await collect(ws, quiet=2.0)
    assert closed is not None and closed.type == aiohttp.WSMsgType.CLOSE
