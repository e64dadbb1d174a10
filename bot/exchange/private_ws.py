"""One private websocket connection (``/v5/private``): auth, subscriptions, the account's pushes.

Ops in: ``auth`` (api key, expires, signature of ``GET/realtime`` + expires, checked against
the wall clock), ``subscribe``/``unsubscribe`` to ``order``, ``execution``, ``position``,
``wallet`` (or ``order.linear``…, each name getting its own messages), text ``ping``
(answered ``op: pong``; protocol pings are answered by aiohttp). Out: replies, and for every
change of the authenticated account one message per row and subscribed topic, in Bybit's
envelope ``{"id","topic","creationTime","data":[row]}``.

Stream faults strike data messages by (seed, connection number, message index): lost,
duplicated, swapped with the next one (an execution before its order), a second ``Filled``
for a filled order, and the connection cut right after a message (what was still queued is
lost with it, as in a network failure; the client reconnects and must look up what it
missed). Replies leave after :data:`REPLY_LATENCY_S`, like the public
side's: pybit records a subscription only after sending it, so an instant ack kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from bot.exchange.account import Push, stable_uuid
from bot.exchange.auth import AuthError, Signed, check_ws
from bot.exchange.private import Member, PrivateExchange
from bot.exchange.session import IDLE_TIMEOUT_S, REPLY_LATENCY_S

log = logging.getLogger(__name__)

#: Topic names served, and the kind of change each carries.
TOPICS = {
    "order": "order",
    "order.linear": "order",
    "execution": "execution",
    "execution.linear": "execution",
    "position": "position",
    "position.linear": "position",
    "wallet": "wallet",
}
_MESSAGE_ID = 3
_ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class PrivateSession:
    """A connection's state: its account once authenticated, its topics, its send queue."""

    def __init__(
        self,
        private: PrivateExchange,
        ws: web.WebSocketResponse,
        number: int,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        self.private = private
        self.faults = private.faults
        self.ws = ws
        self.transport = transport
        self.number = number
        self.conn_id = str(uuid.uuid4())
        self.member: Member | None = None
        self.topics: list[str] = []
        self.produced = 0  # data messages made so far: the index faults are decided by
        # (send at loop time, text, cut the connection after it)
        self._queue: asyncio.Queue[tuple[float, str, bool]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._read(), name="private-read"),
            asyncio.create_task(self._send(), name="private-send"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.private.subscribers.discard(self)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- reading ---------------------------------------------------------------------------------
    async def _read(self) -> None:
        while True:
            try:
                msg = await self.ws.receive(timeout=IDLE_TIMEOUT_S)
            except TimeoutError:
                await self.ws.close(code=1000, message=b"idle")
                return
            if msg.type == WSMsgType.TEXT:
                self.handle(msg.data)
            elif msg.type in _ENDED:
                return

    def handle(self, text: str) -> None:
        """Answer one client request."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict):
            self._reply({"success": False, "ret_msg": "error:request is not a JSON object"})
            return
        op, req_id = request.get("op"), request.get("req_id")
        base: dict[str, Any] = {} if req_id is None else {"req_id": req_id}
        if op == "ping":
            wall = self.private.clock.wall_ms()
            self._reply({**base, "op": "pong", "args": [str(wall)]})
        elif op == "auth":
            self._auth(request.get("args"), base)
        elif op in ("subscribe", "unsubscribe"):
            problem = self._check(op, request.get("args"))
            if not problem:
                for name in request["args"]:
                    if op == "subscribe":
                        self.topics.append(name)
                    else:
                        self.topics.remove(name)
            self._reply({**base, "success": not problem, "ret_msg": problem, "op": op})
        else:
            self._reply({**base, "success": False, "ret_msg": f"error:unknown op {op}", "op": op})

    def _auth(self, args: object, base: dict[str, Any]) -> None:
        if self.member is not None:
            self._reply({**base, "success": False, "ret_msg": "Repeat auth", "op": "auth"})
            return
        result = check_ws(args, self.private.secrets, self.private.clock.wall_ms())
        if isinstance(result, AuthError):
            self.private.ws_auth_refused += 1
            self._reply({**base, "success": False, "ret_msg": result.message, "op": "auth"})
            return
        assert isinstance(result, Signed)
        member = result.account
        if self.faults.hit("auth_failure", member.number, self.number):
            member.stats.ws_auth_failures += 1
            self._reply({**base, "success": False, "ret_msg": "Params Error", "op": "auth"})
            return
        self.member = member
        member.stats.ws_connections += 1
        self.private.subscribers.add(self)
        self._reply({**base, "success": True, "ret_msg": "", "op": "auth"})

    def _check(self, op: str, args: object) -> str:
        """Why the request cannot be honoured ("" if it can): all or nothing."""
        if self.member is None:
            return "Request not authorized"
        if not isinstance(args, list) or not args:
            return "error:args must be a non-empty list of topics"
        seen: set[str] = set()
        for name in args:
            if not isinstance(name, str) or name not in TOPICS:
                return f"error:handler not found,topic:{name}"
            if op == "subscribe" and (name in self.topics or name in seen):
                return f"error:already subscribed,topic:{name}"
            if op == "unsubscribe" and name not in self.topics:
                return f"error:not subscribed,topic:{name}"
            seen.add(name)
        return ""

    def _reply(self, body: dict[str, Any]) -> None:
        body["conn_id"] = self.conn_id
        send_at = self._loop.time() + REPLY_LATENCY_S
        self._queue.put_nowait((send_at, orjson.dumps(body).decode(), False))

    # -- pushes ----------------------------------------------------------------------------------
    def deliver(self, pushes: list[Push], now: int) -> None:
        """Queue the messages of one change of the account, after the stream faults."""
        made: list[tuple[str, bool]] = []  # (text, whether it reports a filled order)
        cuts: set[str] = set()  # messages after which the connection is cut
        doubles: list[str] = []
        for kind, row in pushes:
            for name in self.topics:
                if TOPICS[name] != kind:
                    continue
                i = self.produced
                self.produced += 1
                text = self._message(name, row, now, i)
                if self.faults.hit("ws_drop", self.number, i):
                    continue
                filled = kind == "order" and row.get("orderStatus") == "Filled"
                made.append((text, filled))
                if self.faults.fires("ws_disconnect", self.number, i):
                    cuts.add(text)
                if self.faults.hit("ws_duplicate", self.number, i):
                    made.append((text, False))
                if filled and self.faults.hit("ws_double_filled", self.number, i):
                    doubles.append(self._message(name, row, now, -i - 1))
        texts = [text for text, _ in made]
        k = 0
        while k + 1 < len(texts):
            if self.faults.hit("ws_reorder", self.number, self.produced, k):
                texts[k], texts[k + 1] = texts[k + 1], texts[k]
                k += 2
            else:
                k += 1
        now_loop = self._loop.time()
        for text in texts + doubles:
            self._queue.put_nowait((now_loop, text, text in cuts))

    def _message(self, topic: str, row: dict[str, Any], now: int, i: int) -> str:
        if TOPICS[topic] == "position":
            row = {k: v for k, v in row.items() if k != "avgPrice"}  # the stream's entryPrice
        message = {
            "id": stable_uuid(self.private.seed, _MESSAGE_ID, self.number, i),
            "topic": topic,
            "creationTime": now,
            "data": [row],
        }
        return orjson.dumps(message).decode()

    # -- sending ---------------------------------------------------------------------------------
    async def _send(self) -> None:
        while True:
            send_at, text, cut = await self._queue.get()
            wait = send_at - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self.ws.send_str(text)
            except ConnectionError:
                return
            if cut:
                self.faults.count("ws_disconnect")
                if self.transport is not None:
                    with contextlib.suppress(Exception):
                        self.transport.abort()
                return


async def run_private(
    request: web.Request, private: PrivateExchange, number: int
) -> web.WebSocketResponse:
    """Upgrade to a private connection and serve it until it ends."""
    ws = web.WebSocketResponse(autoping=True, timeout=2.0)
    await ws.prepare(request)
    session = PrivateSession(private, ws, number, request.transport)
    private.sessions.add(session)
    try:
        await session.run()
    finally:
        private.sessions.discard(session)
    return ws
