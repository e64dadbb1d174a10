"""Every private fault really happens, is counted on /_local/status, and repeats under a seed."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from bot.config import PrivateFaultsConfig
from bot.exchange.private_faults import KINDS, PrivateFaults
from tests.exchange.harness import request_reply
from tests.exchange.signed import Reply, Venue, venue
from tests.exchange.test_private_ws import auth_args, connect, pushes

REALTIME = "/v5/order/realtime"


async def status(v: Venue) -> dict[str, Any]:
    async with v.http.get(v.server.rest_url + "/_local/status") as r:
        return (await r.json())["private"]


async def counts(v: Venue) -> dict[str, int]:
    return (await status(v))["faults"]


async def lookup(v: Venue, link: str, symbol: str = "BTCUSDT") -> list[dict[str, Any]]:
    reply = await v.client.get(REALTIME, f"category=linear&symbol={symbol}&orderLinkId={link}")
    return reply.result["list"]


async def cut(v: Venue, link: str) -> None:
    """Place an order whose answer never comes: the connection is cut."""
    with pytest.raises(aiohttp.ClientError):
        await v.client.order("BTCUSDT", "Buy", "1", link)


def only(fired: dict[str, int], **expected: int) -> bool:
    return all(fired[k] == expected.get(k, 0) for k in KINDS)


async def test_faults_are_off_by_default():
    async with venue() as v:
        for n in range(12):
            assert (await v.client.order("BTCUSDT", "Buy" if n % 2 else "Sell", "1")).code == 0
            v.wall.t += 0.2
        ws = await connect(v)
        await v.client.order("BTCUSDT", "Buy", "1")
        assert len(await pushes(ws, 5)) == 5
        await ws.close()
        assert only(await counts(v))


async def test_a_lost_response_leaves_the_order_placed():
    async with venue(private_faults={"lost_response_probability": 1.0}) as v:
        await cut(v, "lost-1")
        [row] = await lookup(v, "lost-1")
        assert row["orderStatus"] == "Filled"
        assert (await v.client.order("BTCUSDT", "Buy", "1", "lost-1")).code == 110072
        assert only(await counts(v), lost_response=1)


async def test_late_acceptance_an_empty_lookup_a_duplicate_then_the_order():
    faults = {"late_acceptance_probability": 1.0, "late_acceptance_ms": 1_000}
    async with venue(private_faults=faults) as v:
        await cut(v, "late-1")
        assert await lookup(v, "late-1") == []
        history = await v.client.get("/v5/order/history", "category=linear&orderLinkId=late-1")
        assert history.result["list"] == []
        assert (await v.client.order("BTCUSDT", "Buy", "1", "late-1")).code == 110072
        v.wall.t += 1.0
        [row] = await lookup(v, "late-1")
        assert row["orderStatus"] == "Filled" and row["createdTime"] == str(
            v.server.state.clock.now()
        )
        assert only(await counts(v), late_acceptance=1)


async def test_rate_limit_bursts_follow_the_seed_and_reset_ahead():
    config = {"rate_limit_burst_probability": 0.2, "rate_limit_burst_requests": 3}
    plan = PrivateFaults(PrivateFaultsConfig(**config), seed=7)
    expected, left = [], 0
    for n in range(1, 31):
        if left == 0 and plan.fires("rate_limit_burst", 1, n):
            left = 3
        expected.append(10006 if left else 0)
        left = max(0, left - 1)
    assert 0 < expected.count(10006) < 30
    async with venue(private_faults=config) as v:
        got: list[Reply] = []
        for _ in range(30):
            got.append(await v.client.get("/v5/account/wallet-balance", "accountType=UNIFIED"))
        assert [r.code for r in got] == expected
        wall_ms = int(v.wall.t * 1000)
        resets = [int(r.headers["X-Bapi-Limit-Reset-Timestamp"]) for r in got if r.code]
        assert all(reset == wall_ms + 300 for reset in resets)
        assert only(await counts(v), rate_limit_burst=expected.count(10006))


async def test_clock_skew_refuses_a_narrow_window_and_names_the_skewed_server_time():
    faults = {"clock_skew_probability": 1.0, "clock_skew_ms": 6_000}
    async with venue(private_faults=faults) as v:
        reply = await v.client.get("/v5/account/wallet-balance", "accountType=UNIFIED")
        assert reply.code == 10002
        assert f"server_timestamp[{int(v.wall.t * 1000) + 6000}]" in reply.body["retMsg"]
        v.client.recv_window = 10_000
        ok = await v.client.get("/v5/account/wallet-balance", "accountType=UNIFIED")
        assert ok.code == 0
        assert only(await counts(v), clock_skew=1)


async def test_server_errors_before_acceptance_place_nothing():
    async with venue(private_faults={"error_before_probability": 1.0}) as v:
        replies = [await v.client.order("BTCUSDT", "Buy", "1", f"b{n}") for n in range(8)]
        assert {r.status for r in replies} <= {200, 500, 502, 503}
        assert len({r.status for r in replies}) > 1  # both forms occur
        assert all(r.code == 10016 for r in replies if r.status == 200)
        assert v.private.members["main"].account.orders == {}
        cancel = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "b0"}
        assert (await v.client.post("/v5/order/cancel", cancel)).status in (200, 500, 502, 503)
        assert only(await counts(v), error_before=9)


async def test_server_errors_after_acceptance_leave_the_order_placed():
    async with venue(private_faults={"error_after_probability": 1.0}) as v:
        reply = await v.client.order("BTCUSDT", "Buy", "1", "after-1")
        assert reply.status != 200 or reply.code == 10016
        [row] = await lookup(v, "after-1")
        assert row["orderStatus"] == "Filled"
        assert only(await counts(v), error_after=1)


async def test_an_acknowledged_order_can_be_rejected_on_the_stream():
    async with venue(private_faults={"async_reject_probability": 1.0}) as v:
        ws = await connect(v)
        assert (await v.client.order("BTCUSDT", "Buy", "1", "rej-1")).code == 0
        got = await pushes(ws, 2)
        assert [m["data"][0]["orderStatus"] for m in got] == ["New", "Rejected"]
        [row] = await lookup(v, "rej-1")
        assert row["orderStatus"] == "Rejected" and row["rejectReason"] != "EC_NoError"
        assert v.private.members["main"].account.executions == []
        await ws.close()
        assert only(await counts(v), async_reject=1)


async def test_ioc_partly_filled_then_cancelled():
    async with venue(private_faults={"ioc_partial_probability": 1.0}) as v:
        assert (await v.client.order("BTCUSDT", "Buy", "1", "part-1")).code == 0
        [row] = await lookup(v, "part-1")
        assert row["orderStatus"] == "Cancelled" and row["cumExecQty"] == "0.500"
        position = await v.client.get("/v5/position/list", "category=linear&symbol=BTCUSDT")
        assert position.result["list"][0]["size"] == "0.500"
        assert (await v.client.order("BTCUSDT", "Buy", "0.051", "small")).code == 0
        assert only(await counts(v), ioc_partial=2)


async def test_a_delayed_fill_comes_later_at_the_price_of_then():
    faults = {"delayed_fill_probability": 1.0, "fill_delay_ms": 500}
    async with venue(private_faults=faults) as v:
        ws = await connect(v)
        assert (await v.client.order("BTCUSDT", "Buy", "1", "slow")).code == 0
        [row] = await lookup(v, "slow")
        assert row["orderStatus"] == "New"
        v.wall.t += 0.5  # the server's ticker fills it: no request needed
        got = await pushes(ws, 5)
        assert got[-1]["data"][0]["orderStatus"] == "Filled"
        execution = got[1]["data"][0]
        assert execution["execTime"] == str(v.server.state.clock.now())
        await ws.close()
        assert only(await counts(v), delayed_fill=1)


async def stream(v: Venue) -> tuple[list[dict[str, Any]], dict]:
    """The messages one order produces on a connection (a pong marks their end)."""
    ws = await connect(v)
    await v.client.order("BTCUSDT", "Buy", "1", "s-1")
    await ws.send_str('{"op":"ping","req_id":"end"}')
    got = []
    while True:
        message = await ws.receive_json(timeout=10)
        if message.get("op") == "pong":
            break
        got.append(message)
    await ws.close()
    return got, await counts(v)


async def test_stream_messages_dropped_duplicated_reordered_and_filled_twice():
    async with venue(private_faults={"ws_drop_probability": 1.0}) as v:
        got, fired = await stream(v)
        assert got == [] and only(fired, ws_drop=5)
    async with venue(private_faults={"ws_duplicate_probability": 1.0}) as v:
        got, fired = await stream(v)
        assert len(got) == 10 and got[0] == got[1] and only(fired, ws_duplicate=5)
    async with venue(private_faults={"ws_reorder_probability": 1.0}) as v:
        got, fired = await stream(v)
        topics = [m["topic"] for m in got]
        assert topics == ["execution", "order", "wallet", "position", "order"]
        assert only(fired, ws_reorder=2)  # an execution before its order
    async with venue(private_faults={"ws_double_filled_probability": 1.0}) as v:
        got, fired = await stream(v)
        statuses = [m["data"][0].get("orderStatus") for m in got if m["topic"] == "order"]
        assert statuses == ["New", "Filled", "Filled"] and got[-1]["id"] != got[-2]["id"]
        assert only(fired, ws_double_filled=1)


async def test_auth_failure_despite_a_good_signature():
    async with venue(private_faults={"auth_failure_probability": 1.0}) as v:
        ws = await v.http.ws_connect(v.server.private_ws_url)
        reply = await request_reply(ws, op="auth", args=auth_args(v))
        assert reply["success"] is False and reply["ret_msg"] == "Params Error"
        await ws.close()
        state = await status(v)
        assert state["accounts"]["main"]["ws_auth_failures"] == 1
        assert only(state["faults"], auth_failure=1)


async def test_a_manual_order_opens_what_the_client_never_ordered():
    async with venue(private_faults={"manual_order_probability": 1.0}) as v:
        assert (await v.client.order("ETHUSDT", "Buy", "1", "mine")).code == 0
        v.wall.t += 1.0  # a bar starts: someone trades on the website
        await v.client.get("/v5/account/wallet-balance", "accountType=UNIFIED")
        history = await v.client.get("/v5/order/history", "category=linear&symbol=ETHUSDT")
        links = [o["orderLinkId"] for o in history.result["list"]]
        assert links == ["", "mine"]
        assert only(await counts(v), manual_order=1)


@pytest.mark.parametrize(
    ("kind", "code"),
    [("insufficient_balance", 110007), ("below_min_notional", 110094), ("qty_to_zero", 110017)],
)
async def test_forced_refusals_take_no_link_id(kind: str, code: int):
    async with venue(private_faults={f"{kind}_probability": 1.0}) as v:
        assert (await v.client.order("BTCUSDT", "Buy", "1", "f-1")).code == code
        assert (await v.client.order("BTCUSDT", "Buy", "1", "f-1")).code == code  # not 110072
        assert v.private.members["main"].account.orders == {}
        assert only(await counts(v), **{kind: 2})


async def run_mixed(seed: int) -> tuple[list[tuple[int, int]], dict[str, int]]:
    faults = {
        "lost_response_probability": 0.1,
        "error_before_probability": 0.1,
        "error_after_probability": 0.1,
        "async_reject_probability": 0.1,
        "ioc_partial_probability": 0.2,
        "insufficient_balance_probability": 0.05,
    }
    outcomes = []
    async with venue(private_faults=faults, seed=seed, order_rate_limit=1000) as v:
        for n in range(40):
            try:
                reply = await v.client.order("ETHUSDT", "Buy" if n % 2 else "Sell", "1", f"x{n}")
                outcomes.append((reply.status, reply.code))
            except aiohttp.ClientError:
                outcomes.append((0, 0))
        return outcomes, await counts(v)


async def test_the_same_seed_gives_the_same_faults_in_the_same_places():
    first, fired = await run_mixed(7)
    again, fired_again = await run_mixed(7)
    other, _ = await run_mixed(8)
    assert first == again and fired == fired_again
    assert first != other
    assert sum(fired.values()) >= 10


async def test_a_cut_connection_loses_what_was_queued_and_a_new_one_hears_on():
    async with venue(private_faults={"ws_disconnect_probability": 1.0}) as v:
        ws = await connect(v)
        await v.client.order("BTCUSDT", "Buy", "1", "cut-1")
        first = await ws.receive(timeout=10)
        assert json.loads(first.data)["topic"] == "order"
        closed = await ws.receive(timeout=10)
        assert closed.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        again = await connect(v)
        await v.client.order("BTCUSDT", "Buy", "1", "cut-2")
        [heard] = await pushes(again, 1)
        assert heard["data"][0]["orderLinkId"] == "cut-2"
        await again.close()
        fired = await counts(v)
        assert only(fired, ws_disconnect=2)
        assert v.private.status()["accounts"]["main"]["ws_connections"] == 2
