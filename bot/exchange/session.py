"""One public websocket connection: Bybit's ops in, the replayed market out.

Three tasks per connection: a reader (subscribe / unsubscribe / ping), a producer walking the
market's update grid as market time passes, and a sender draining the :class:`Outbox`. The
first of them to finish decides how the connection ends: the client left, the service went
into an outage (close 1001), or a drop fault cut the TCP connection without a close frame, the
way a network failure does.

A subscription starts a market clock still held for its first subscriber. The producer takes
its messages ready-encoded from the shared :class:`~bot.exchange.frames.Frames`, so a
connection costs little more than its sends; while market time stands still (held, paused) it
naps :data:`POLL_S` at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import orjson
from aiohttp import WSMsgType, web

from bot.exchange.book import Book
from bot.exchange.faults import ConnectionFaults
from bot.exchange.frames import dumps
from bot.exchange.outbox import Outbox
from bot.exchange.state import ExchangeState
from bot.exchange.topics import Topic, parse_topic

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 600.0  # Bybit cuts connections silent for 10 minutes
POLL_S = 0.05  # longest nap of the producer: it re-reads the (possibly fake) wall clock
MAX_BACKLOG = 10_000  # the producer waits while a slow client has this many messages queued
YIELD_EVERY = 32  # updates emitted in a burst before letting other tasks run
#: Replies leave this late (wall s), as if crossing a network, and what follows them waits.
#: pybit needs it: it records a subscription and its callback only *after* sending the request,
#: so an ack or first message processed before that kills it (KeyError on the req_id / topic).
REPLY_LATENCY_S = 0.025
_ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


class Session:
    def __init__(
        self,
        state: ExchangeState,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        number: int,
        faults: ConnectionFaults,
    ) -> None:
        self.state = state
        self.market = state.market
        self.ws = ws
        self.transport = transport
        self.number = number
        self.conn_id = str(uuid.uuid4())
        self.outbox = Outbox(faults, state.counters, REPLY_LATENCY_S)
        self.faults = faults
        self.topics: set[str] = set()
        self.klines: set[str] = set()
        # per (symbol, depth): the update of the last book sent, and that book
        self.books: dict[tuple[str, int], tuple[int, Book]] = {}
        self.cursor = self.market.update_at(state.clock.now())  # last update streamed

    async def run(self) -> None:
        tasks = {
            asyncio.create_task(self._read(), name="read"),
            asyncio.create_task(self._produce(), name="produce"),
            asyncio.create_task(self._send(), name="send"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        reason = next(
            (r for r, t in zip(results, tasks, strict=True) if t in done and isinstance(r, str)),
            "closed",
        )
        log.debug("connection %d ends: %s", self.number, reason)
        if reason == "outage":
            await self.ws.close(code=1001, message=b"service outage")
        elif reason == "idle":
            await self.ws.close(code=1000, message=b"idle")

    # -- reading ---------------------------------------------------------------------------------
    async def _read(self) -> str:
        while True:
            try:
                msg = await self.ws.receive(timeout=IDLE_TIMEOUT_S)
            except TimeoutError:
                return "idle"
            if msg.type == WSMsgType.TEXT:
                self.handle(msg.data)
            elif msg.type in _ENDED:
                return "client"

    def handle(self, text: str) -> None:
        """Answer one client request (synchronously: nothing is streamed in between)."""
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict):
            self._reply("", "", False, "error:invalid request, not a JSON object")
            return
        op = request.get("op")
        req_id = request.get("req_id", "")
        if op == "ping":
            self._reply("ping", req_id, True, "pong")
        elif op in ("subscribe", "unsubscribe"):
            args = request.get("args")
            problem = self._check(op, args)
            if problem:
                self._reply(op, req_id, False, problem)
                return
            self._reply(op, req_id, True, "")
            for name in args:
                if op == "subscribe":
                    self._subscribe(parse_topic(name, self.market.code, self.market.symbols))
                else:
                    self._unsubscribe(parse_topic(name, self.market.code, self.market.symbols))
        else:
            self._reply(str(op), req_id, False, f"error:unknown op {op}")

    def _check(self, op: str, args: object) -> str:
        """Why the request cannot be honoured ("" if it can); requests are all or nothing."""
        if not isinstance(args, list) or not args:
            return "error:args must be a non-empty list of topics"
        seen: set[str] = set()
        for name in args:
            if parse_topic(name, self.market.code, self.market.symbols) is None:
                return f"error:handler not found,topic:{name}"
            if op == "subscribe" and (name in self.topics or name in seen):
                return f"error:already subscribed,topic:{name}"
            if op == "unsubscribe" and name not in self.topics:
                return f"error:not subscribed,topic:{name}"
            seen.add(name)
        return ""

    def _reply(self, op: str, req_id: object, success: bool, ret_msg: str) -> None:
        self.outbox.control(
            dumps(
                {
                    "success": success,
                    "ret_msg": ret_msg,
                    "conn_id": self.conn_id,
                    "req_id": req_id,
                    "op": op,
                }
            )
        )

    def _subscribe(self, topic: Topic | None) -> None:
        assert topic is not None  # checked before
        self.state.subscribed()
        self.topics.add(topic.name)
        if topic.kind == "kline":
            self.klines.add(topic.symbol)
            return
        g = max(self.cursor, 0)
        book, text = self.state.frames.book_update(topic.symbol, topic.depth, g, None)
        self.books[(topic.symbol, topic.depth)] = (g, book)
        self._book_data(text)

    def _unsubscribe(self, topic: Topic | None) -> None:
        assert topic is not None
        self.topics.discard(topic.name)
        if topic.kind == "kline":
            self.klines.discard(topic.symbol)
        else:
            self.books.pop((topic.symbol, topic.depth), None)

    # -- streaming -------------------------------------------------------------------------------
    async def _produce(self) -> str:
        clock, market = self.state.clock, self.market
        burst = 0
        while True:
            now = clock.now()
            if self.state.in_outage(now):
                self.state.counters.outage_closes += 1
                return "outage"
            g = self.cursor + 1
            if g > market.last_update:
                self.outbox.flush()  # the tape is over: release held messages
                await asyncio.sleep(self._nap(None, now))
                continue
            due = market.update_time(g)
            if due > now:
                await asyncio.sleep(self._nap(due, now))
                continue
            if self.outbox.backlog > MAX_BACKLOG:
                await asyncio.sleep(POLL_S)
                continue
            self._emit(g)
            burst += 1
            if burst % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    def _nap(self, due: int | None, now: int) -> float:
        """Wall seconds to sleep before the next update or outage, at most :data:`POLL_S`."""
        targets = [] if due is None else [due]
        outage = self.state.outage
        if outage is not None and now < outage[0]:
            targets.append(outage[0])
        waits = [self.state.clock.wall_seconds_until(t) for t in targets]
        return min(max(min(waits, default=POLL_S), 0.001), POLL_S)

    def _emit(self, g: int) -> None:
        stats, frames = self.state.stats, self.state.frames
        for symbol in self.market.symbols:
            if symbol in self.klines:
                for kline in frames.klines(symbol, g):
                    stats.klines_pushed += 1
                    stats.bars_confirmed += kline.confirm
                    self.outbox.data(kline.text)
        for (symbol, depth), previous in self.books.items():
            base = None if depth == 1 else previous  # depth 1: snapshots only
            book, text = frames.book_update(symbol, depth, g, base)
            self._book_data(text)
            self.books[(symbol, depth)] = (g, book)
        self.cursor = g

    def _book_data(self, text: str) -> None:
        self.state.stats.book_messages += 1
        self.outbox.data(text)

    # -- sending ---------------------------------------------------------------------------------
    async def _send(self) -> str:
        loop = asyncio.get_running_loop()
        while True:
            item = await self.outbox.get()
            wait = item.send_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self.ws.send_str(item.text)
            except ConnectionError:
                return "gone"
            if item.index is not None and self.faults.drop_after(item.index):
                self.state.counters.drops += 1
                if self.transport is not None:
                    with contextlib.suppress(Exception):
                        self.transport.abort()
                return "drop"
