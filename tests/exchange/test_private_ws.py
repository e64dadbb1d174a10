"""The private websocket: auth, subscriptions, ping, and a push for every change of the account."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.exchange.harness import request_reply
from tests.exchange.signed import ACCOUNTS, KEY, SECRET, Venue, hmac_hex, venue
from tests.exchange.test_private_rest import funded_tape

FOUR = ["order", "execution", "position", "wallet"]


def auth_args(v: Venue, ahead_ms: int = 10_000, key: str = KEY, secret: str = SECRET) -> list:
    expires = int(v.wall.t * 1000) + ahead_ms
    return [key, expires, hmac_hex(secret, f"GET/realtime{expires}")]


async def connect(v: Venue, topics: list[str] = FOUR, account: dict | None = None) -> Any:
    account = account or ACCOUNTS[0]
    ws = await v.http.ws_connect(v.server.private_ws_url)
    args = auth_args(v, key=account["api_key"], secret=account["api_secret"])
    reply = await request_reply(ws, op="auth", args=args, req_id="a1")
    assert reply["success"] is True and reply["op"] == "auth" and reply["req_id"] == "a1"
    reply = await request_reply(ws, op="subscribe", args=topics, req_id="s1")
    assert reply["success"] is True and reply["req_id"] == "s1"
    return ws


async def pushes(ws: Any, n: int) -> list[dict[str, Any]]:
    """The next ``n`` data messages (replies skipped), each within a generous deadline."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        message = json.loads(await ws.receive_str(timeout=10))
        if "topic" in message:
            out.append(message)
    return out


async def test_an_order_is_pushed_on_all_four_topics_in_bybit_s_envelope():
    async with venue() as v:
        ws = await connect(v)
        reply = await v.client.order("BTCUSDT", "Buy", "1", "ws-1")
        got = await pushes(ws, 5)
        assert [m["topic"] for m in got] == ["order", "execution", "position", "wallet", "order"]
        for m in got:
            assert set(m) == {"id", "topic", "creationTime", "data"} and len(m["data"]) == 1
            assert m["creationTime"] == v.server.state.clock.now()
        new, execution, position, wallet, filled = (m["data"][0] for m in got)
        assert new["orderStatus"] == "New" and filled["orderStatus"] == "Filled"
        assert new["orderId"] == filled["orderId"] == reply.result["orderId"]
        assert execution["orderLinkId"] == "ws-1" and execution["execType"] == "Trade"
        assert (
            position["size"] == "1.000" and "entryPrice" in position and "avgPrice" not in position
        )
        assert wallet["accountType"] == "UNIFIED" and wallet["coin"][0]["coin"] == "USDT"
        assert len({m["id"] for m in got}) == 5
        await ws.close()


async def test_linear_topic_names_get_their_own_messages_and_unsubscribe_stops_them():
    async with venue() as v:
        ws = await connect(v, ["order.linear", "execution"])
        await v.client.order("BTCUSDT", "Buy", "1")
        got = await pushes(ws, 3)
        assert [m["topic"] for m in got] == ["order.linear", "execution", "order.linear"]
        reply = await request_reply(ws, op="unsubscribe", args=["order.linear"], req_id="u")
        assert reply["success"] is True
        await v.client.order("BTCUSDT", "Buy", "1")
        assert [m["topic"] for m in await pushes(ws, 1)] == ["execution"]
        await ws.close()


async def test_auth_and_subscription_failures_are_answered_not_fatal():
    async with venue() as v:
        ws = await v.http.ws_connect(v.server.private_ws_url)
        early = await request_reply(ws, op="subscribe", args=["order"], req_id="x")
        assert early["success"] is False and early["ret_msg"] == "Request not authorized"
        expired = await request_reply(ws, op="auth", args=auth_args(v, ahead_ms=0))
        assert expired == {**expired, "success": False, "ret_msg": "Params Error", "op": "auth"}
        bad = await request_reply(ws, op="auth", args=auth_args(v, secret="nope"))
        assert bad["success"] is False
        good = await request_reply(ws, op="auth", args=auth_args(v))
        assert good["success"] is True
        again = await request_reply(ws, op="auth", args=auth_args(v))
        assert again["success"] is False
        unknown = await request_reply(ws, op="subscribe", args=["kline.60.BTCUSDT"])
        assert unknown["ret_msg"] == "error:handler not found,topic:kline.60.BTCUSDT"
        await ws.send_str(json.dumps({"op": "ping", "req_id": "p"}))
        pong = json.loads(await ws.receive_str(timeout=10))
        assert pong["op"] == "pong" and pong["req_id"] == "p"
        assert pong["args"] == [str(int(v.wall.t * 1000))]
        await ws.close()
        status = v.private.status()
        assert status["ws_auth_refused"] == 2 and status["accounts"]["main"]["ws_connections"] == 1


async def test_an_account_hears_only_its_own_changes():
    accounts = [ACCOUNTS[0], {**ACCOUNTS[1], "read_only": False}]
    async with venue(accounts=accounts) as v:
        mine = await connect(v)
        theirs = await connect(v, account=accounts[1])
        await v.as_(accounts[1]).order("ETHUSDT", "Sell", "1")
        await v.client.order("BTCUSDT", "Buy", "1", "only-mine")
        got = await pushes(mine, 5)
        assert {m["data"][0]["symbol"] for m in got if m["topic"] != "wallet"} == {"BTCUSDT"}
        other = await pushes(theirs, 5)
        assert {m["data"][0]["symbol"] for m in other if m["topic"] != "wallet"} == {"ETHUSDT"}
        await mine.close()
        await theirs.close()


async def test_funding_is_pushed_when_market_time_passes_without_any_request():
    async with venue(tape=funded_tape()) as v:
        await v.client.order("BTCUSDT", "Buy", "1")
        ws = await connect(v, ["execution", "wallet"])
        v.wall.t += 8.0  # a funding time passes; only the server's own ticker notices
        got = await pushes(ws, 2)
        assert [m["topic"] for m in got] == ["execution", "wallet"]
        assert got[0]["data"][0]["execType"] == "Funding"
        await ws.close()


async def test_protocol_pings_are_answered():
    async with venue() as v:
        ws = await v.http.ws_connect(v.server.private_ws_url, autoping=False)
        await ws.ping(b"hi")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = await ws.receive(timeout=10)
            if msg.type.name == "PONG":
                assert msg.data == b"hi"
                break
        else:
            raise AssertionError("no pong")
        await ws.close()
