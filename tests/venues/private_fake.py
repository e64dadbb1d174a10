"""A small fake of Bybit's private side for the private client's tests (127.0.0.1, port 0).

It checks every signature on the raw bytes it received — the raw query string of a GET, the
raw body of a POST — against its own clock (``skew_ms`` ahead of the wall clock), answers
10002 outside the receive window and 10004 to a bad signature, echoing the origin string
(with the key) as Bybit can. Scripted faults are consumed one per request of an endpoint.
The private websocket checks the auth signature, acks subscriptions in the private form and
answers JSON pings with the private pong; tests push frames to the live connection and can
close it from the server side.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import WSMsgType, test_utils, web

RESET_HEADER = "X-Bapi-Limit-Reset-Timestamp"
T0 = 1_700_000_000_000


def fill(n: int, at: int, link: str = "", exec_type: str = "Trade") -> dict[str, Any]:
    return {"execId": f"e{n}", "orderId": f"o{n}", "orderLinkId": link, "symbol": "BTCUSDT",
            "side": "Buy", "execQty": "0.01", "execPrice": str(40_000 + n), "execValue": "400",
            "execFee": "0.22", "feeRate": "0.00055", "execType": exec_type, "isMaker": False,
            "execTime": str(at), "seq": n, "closedSize": "", "leavesQty": "0",
            "category": "linear"}  # fmt: skip


def position(symbol: str, side: str, size: str) -> dict[str, Any]:
    return {"symbol": symbol, "side": side, "size": size, "avgPrice": "100.5",
            "markPrice": "101", "unrealisedPnl": "0.5", "cumRealisedPnl": "0", "seq": 9,
            "positionIdx": 0, "updatedTime": str(T0), "category": "linear"}  # fmt: skip


def sign(secret: str, text: bytes) -> str:
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


@dataclass
class Seen:
    """One request as received."""

    method: str
    path: str
    raw_query: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeOrder:
    order_id: str
    link_id: str
    body: dict[str, Any]
    status: str = "New"


@dataclass
class FakePrivateBybit:
    keys: dict[str, str]
    skew_ms: int = 0  # the signature clock's lead over the wall clock
    market_time_ms: int = 0  # the lead of /v5/market/time and replies' `time` (a replay)
    quote_server_time: bool = True  # whether a 10002 quotes server_timestamp[...]
    quote_error_ms: int = 0  # how far that quote is off (a lying server)
    faults: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    seen: list[Seen] = field(default_factory=list)
    orders: dict[str, FakeOrder] = field(default_factory=dict)
    executions: list[dict[str, Any]] = field(default_factory=list)
    execution_page: int = 2
    positions: list[dict[str, Any]] = field(default_factory=list)
    reset_ahead_ms: int = 300
    counters: Counter[str] = field(default_factory=Counter)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    # websocket
    ws_auth_fail: deque[bool] = field(default_factory=deque)
    ws_pong: bool = True
    ws_subscriptions: list[list[str]] = field(default_factory=list)
    ws_signatures: list[str] = field(default_factory=list)
    ws_live: list[web.WebSocketResponse] = field(default_factory=list)
    ws_connected: asyncio.Event = field(default_factory=asyncio.Event)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v5/market/time", self.market_time)
        app.router.add_get("/v5/private", self.websocket)
        app.router.add_route("*", "/v5/{path:.+}", self.private)
        return app

    # -- REST --------------------------------------------------------------------------------------
    def envelope(self, result: Any, code: int = 0, msg: str = "OK", **headers: str) -> web.Response:
        body = {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {},
                "time": self.now_ms() + self.market_time_ms}  # fmt: skip
        return web.json_response(body, headers=headers or None)

    async def market_time(self, request: web.Request) -> web.Response:
        self.counters["time"] += 1
        now = self.now_ms() + self.market_time_ms
        return self.envelope({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})

    async def private(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.match_info["path"]
        body = await request.read()
        raw_query = request.rel_url.raw_query_string
        self.seen.append(Seen(request.method, endpoint, raw_query, body, dict(request.headers)))
        self.counters[endpoint] += 1
        problem = self.check_signature(request, raw_query, body)
        if problem is not None:
            return problem
        fault = self.faults[endpoint].popleft() if self.faults[endpoint] else None
        if fault == "10006":
            reset = str(int(time.time() * 1000) + self.reset_ahead_ms)
            return self.envelope({}, 10006, "Too many visits", **{RESET_HEADER: reset})
        if fault == "10016":
            return self.envelope({}, 10016, "Internal server error")
        if fault == "502":
            return web.Response(status=502, text="<html>502 Bad Gateway</html>")
        if fault == "slow":  # answer after the client gave up, having done nothing
            await self.wait_released()
            return self.envelope({}, 10016, "too late")
        if fault is not None and fault.startswith("echo:"):  # a message quoting the key
            key = request.headers.get("X-BAPI-API-KEY", "")
            shown = f"key {key} ({quote(key)}, {base64.b64encode(key.encode()).decode()})"
            return self.envelope({}, int(fault.removeprefix("echo:")), f"refused: {shown}")
        if fault is not None and fault.isdigit():
            return self.envelope({}, int(fault), f"refused with {fault}")
        params = dict(parse_qsl(raw_query)) if request.method == "GET" else json.loads(body)
        handler = getattr(self, "handle_" + endpoint.replace("/", "_").replace("-", "_"))
        response = handler(params)
        if fault == "accept_then_timeout":  # the order is taken, the answer never comes
            await self.wait_released()
        elif fault == "accept_then_reset":  # the order is taken, the connection drops
            assert request.transport is not None
            request.transport.abort()
        elif fault == "accept_then_502":
            return web.Response(status=502, text="<html>502 Bad Gateway</html>")
        return response

    async def wait_released(self) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 30)

    def check_signature(self, request: web.Request, raw_query: str, body: bytes):
        key = request.headers.get("X-BAPI-API-KEY", "")
        stamp = request.headers.get("X-BAPI-TIMESTAMP", "")
        window = request.headers.get("X-BAPI-RECV-WINDOW", "")
        signature = request.headers.get("X-BAPI-SIGN", "")
        if key not in self.keys:
            self.counters["bad_key"] += 1
            return self.envelope({}, 10003, f"API key is invalid. {key}")
        payload = raw_query.encode() if request.method == "GET" else body
        origin = f"{stamp}{key}{window}".encode() + payload
        if not hmac.compare_digest(sign(self.keys[key], origin), signature):
            self.counters["bad_signature"] += 1
            echo = origin.decode(errors="replace")
            return self.envelope({}, 10004, f"error sign! origin_string[{echo}]")
        now = self.now_ms()
        if not now - int(window) <= int(stamp) < now + 1000:
            self.counters["bad_timestamp"] += 1
            msg = "invalid request, please check your server timestamp or recv_window param."
            if self.quote_server_time:
                quoted = now + self.quote_error_ms
                msg += f" req_timestamp[{stamp}],server_timestamp[{quoted}],recv_window[{window}]"
            return self.envelope({}, 10002, msg)
        return None

    def handle_order_create(self, params: dict[str, Any]) -> web.Response:
        link = params["orderLinkId"]
        if link in self.orders:
            return self.envelope({}, 110072, "OrderLinkedID is duplicate")
        order = FakeOrder(f"oid-{len(self.orders) + 1}", link, params)
        self.orders[link] = order
        return self.envelope({"orderId": order.order_id, "orderLinkId": link})

    def handle_order_cancel(self, params: dict[str, Any]) -> web.Response:
        order = self.orders.get(params["orderLinkId"])
        if order is None or order.status != "New":
            return self.envelope({}, 110001, "order not exists or too late to cancel")
        order.status = "Cancelled"
        return self.envelope({"orderId": order.order_id, "orderLinkId": order.link_id})

    def order_row(self, order: FakeOrder) -> dict[str, Any]:
        b = order.body
        return {"orderId": order.order_id, "orderLinkId": order.link_id, "symbol": b["symbol"],
                "side": b["side"], "orderType": b["orderType"], "price": b.get("price", "0"),
                "qty": b["qty"], "avgPrice": "", "cumExecQty": "0", "cumExecValue": "0",
                "cumExecFee": "0", "leavesQty": b["qty"], "orderStatus": order.status,
                "rejectReason": "EC_NoError", "reduceOnly": b["reduceOnly"],
                "timeInForce": b.get("timeInForce", "IOC"), "positionIdx": 0,
                "createdTime": "1700000000000", "updatedTime": "1700000000001"}  # fmt: skip

    def handle_order_realtime(self, params: dict[str, str]) -> web.Response:
        orders = list(self.orders.values())
        if "orderLinkId" in params:
            orders = [o for o in orders if o.link_id == params["orderLinkId"]]
        rows = [self.order_row(o) for o in orders]
        return self.envelope({"category": "linear", "list": rows, "nextPageCursor": ""})

    def handle_order_history(self, params: dict[str, str]) -> web.Response:
        return self.handle_order_realtime(params)

    def handle_execution_list(self, params: dict[str, str]) -> web.Response:
        lo, hi = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
        assert hi - lo <= 7 * 86_400_000, "window over 7 days"
        rows = [e for e in self.executions if lo <= int(e["execTime"]) <= hi][::-1]  # newest 1st
        at = int(params["cursor"].removeprefix("at=")) if "cursor" in params else 0
        chunk = rows[at : at + self.execution_page]
        more = at + len(chunk) < len(rows)
        cursor = f"at%3D{at + len(chunk)}" if more else ""  # percent-encoded, as Bybit's are
        return self.envelope({"category": "linear", "list": chunk, "nextPageCursor": cursor})

    def handle_position_list(self, params: dict[str, str]) -> web.Response:
        rows = [p for p in self.positions if params.get("symbol") in (None, p["symbol"])]
        return self.envelope({"category": "linear", "list": rows, "nextPageCursor": ""})

    def handle_account_wallet_balance(self, params: dict[str, str]) -> web.Response:
        assert params["accountType"] == "UNIFIED"
        row = {"accountType": "UNIFIED", "totalEquity": "1012.5", "totalWalletBalance": "1000",
               "totalAvailableBalance": "950.25", "totalMarginBalance": "1012.5",
               "coin": [{"coin": "USDT", "equity": "1012.5", "walletBalance": "1000",
                         "unrealisedPnl": "12.5", "cumRealisedPnl": "-3"}]}  # fmt: skip
        return self.envelope({"list": [row]})

    def handle_user_query_api(self, params: dict[str, str]) -> web.Response:
        key = next(iter(self.keys))
        return self.envelope({"id": "1", "apiKey": key, "readOnly": 0, "secret": "",
                              "permissions": {"ContractTrade": ["Order", "Position"],
                                              "Wallet": ["AccountTransfer"]},
                              "uta": 1, "unified": 0})  # fmt: skip

    # -- websocket ---------------------------------------------------------------------------------
    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.counters["ws_connections"] += 1
        authed = False
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(message.data)
                op = frame.get("op")
                if op == "auth":
                    authed = await self.ws_auth(ws, frame)
                    if not authed:
                        break
                elif op == "subscribe" and authed:
                    self.ws_subscriptions.append(frame["args"])
                    await ws.send_json({"success": True, "ret_msg": "", "op": "subscribe",
                                        "conn_id": "fake"})  # fmt: skip
                    self.ws_live.append(ws)
                    self.ws_connected.set()
                elif op == "ping":
                    self.counters["ws_pings"] += 1
                    if self.ws_pong:
                        pong = {"req_id": frame.get("req_id", ""), "op": "pong",
                                "args": [str(self.now_ms())], "conn_id": "fake"}  # fmt: skip
                        await ws.send_json(pong)
        finally:
            if ws in self.ws_live:
                self.ws_live.remove(ws)
        return ws

    async def ws_auth(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> bool:
        key, expires, signature = frame["args"]
        self.ws_signatures.append(signature)
        fail = self.ws_auth_fail.popleft() if self.ws_auth_fail else False
        good = (
            not fail
            and key in self.keys
            and isinstance(expires, int)
            and expires > self.now_ms()
            and hmac.compare_digest(sign(self.keys[key], f"GET/realtime{expires}".encode()),
                                    signature)
        )  # fmt: skip
        self.counters["ws_auth_ok" if good else "ws_auth_failed"] += 1
        reply = {"success": good, "ret_msg": "" if good else "Params Error", "op": "auth",
                 "conn_id": "fake"}  # fmt: skip
        await ws.send_json(reply)
        return good

    async def push(self, frame: dict[str, Any] | str) -> None:
        """Send ``frame`` to the live connection (waits for one)."""
        await asyncio.wait_for(self.ws_connected.wait(), 30)
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await self.ws_live[-1].send_str(text)

    async def drop_connection(self) -> None:
        """Close the live connection from the server side."""
        await asyncio.wait_for(self.ws_connected.wait(), 30)
        self.ws_connected.clear()
        ws = self.ws_live.pop()
        await ws.close()


@asynccontextmanager
async def serving(fake: FakePrivateBybit) -> AsyncIterator[str]:
    """Run ``fake`` on 127.0.0.1 (a free port); yields its base URL."""
    server = test_utils.TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        fake.release.set()
        for ws in list(fake.ws_live):
            await ws.close()
        await server.close()
