"""The public websocket feed: klines (and optionally order books) from Bybit or the local
exchange, delivered complete and in order per symbol.

This is the thin I/O shell around :mod:`bot.venues.bybit.ws_protocol` (parsing) and
:mod:`bot.venues.bybit.klines` (ordering, gaps). It connects, subscribes (checking every ack),
sends Bybit's JSON ping every ``ping_interval_s`` and reconnects — with exponential backoff and
jitter — when the connection drops or a pong is overdue. Candles a disconnect or a lost message
made it miss are fetched over REST *before* any later bar of that symbol is passed on, and a
REST catch-up runs after every (re)connect and whenever the stream has been quiet for a while,
so an outage, or a lost final close, cannot leave a symbol behind.

Malformed, duplicate and out-of-order messages are counted and logged, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import websockets

from bot.config import VenueConfig
from bot.core.events import Bar
from bot.core.timeutil import interval_ms
from bot.venues.bybit.klines import Closed, KlineTracker, Missing, Opened
from bot.venues.bybit.orderbook import OrderBook
from bot.venues.bybit.rest import BybitRest
from bot.venues.bybit.rest_protocol import BybitError
from bot.venues.bybit.ws_protocol import (
    Ack,
    KlineUpdate,
    MalformedMessageError,
    TopicMessage,
    encode,
    kline_topic,
    parse_message,
    ping_request,
    subscribe_requests,
)

log = logging.getLogger(__name__)

Sink = Callable[[Closed | Opened], Awaitable[None]]
#: After a backfill found fewer candles than missing, retry this often before accepting a gap
#: (the REST view of a candle that closed a moment ago may lag the websocket slightly).
BACKFILL_RETRIES = 3
BACKFILL_RETRY_S = 0.5
#: How long a symbol's later updates wait for a missing close before it is fetched over REST:
#: a close that arrives a few messages late (reordered) then costs no request.
REORDER_GRACE_S = 0.25


class SubscriptionError(RuntimeError):
    """The venue refused a subscription (e.g. an unknown symbol)."""


class Backoff:
    """Exponential backoff with equal jitter: delays grow 2× up to a cap, each drawn from
    [d/2, d], so many clients dropped together do not reconnect together."""

    def __init__(self, initial_s: float, maximum_s: float, rng: random.Random) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self._rng = rng
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * 2**self.attempt)
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def frame_bars(symbol: str, interval: str, frame) -> list[Bar]:
    """Bars from a REST kline frame (ascending)."""
    turnover = frame["turnover"].tolist() if "turnover" in frame else [None] * len(frame)
    return [
        Bar(symbol, interval, int(s), o, h, lo, c, v, t)
        for s, o, h, lo, c, v, t in zip(
            frame["start"].tolist(), frame["open"].tolist(), frame["high"].tolist(),
            frame["low"].tolist(), frame["close"].tolist(), frame["volume"].tolist(), turnover,
            strict=True,
        )
    ]  # fmt: skip


class PublicStream:
    def __init__(
        self,
        *,
        ws_url: str,
        rest: BybitRest,
        symbols: Sequence[str],
        interval: str,
        last_closed: dict[str, int | None],
        sink: Sink,
        venue: VenueConfig,
        catchup_s: float = 30.0,
        seed: int | None = None,
    ) -> None:
        self.ws_url = ws_url
        self.rest = rest
        self.symbols = tuple(symbols)
        self.interval = interval
        self.step = interval_ms(interval)
        self.tracker = KlineTracker(interval, {s: last_closed.get(s) for s in self.symbols})
        self.sink = sink
        self.venue = venue
        self.catchup_s = catchup_s
        self.books = {
            s: OrderBook(s, venue.orderbook_depth) for s in self.symbols if venue.orderbook_depth
        }
        self.stats: Counter[str] = Counter()
        self.connected = False
        self.last_receipt_ns = 0  # when the message being handled arrived (latency metrics)
        self._rng = random.Random(seed)
        self._last_pong = 0.0
        self._last_catchup = 0.0
        self._resnapshot: set[str] = set()  # order-book topics that need a fresh snapshot
        # per symbol: updates held behind a missing close, and since when
        self._held: dict[str, list[KlineUpdate]] = {}
        self._held_since: dict[str, float] = {}

    @property
    def topics(self) -> list[str]:
        topics = [kline_topic(self.interval, s) for s in self.symbols]
        depth = self.venue.orderbook_depth
        return topics + [f"orderbook.{depth}.{s}" for s in self.symbols] if depth else topics

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set, reconnecting as needed."""
        backoff = Backoff(self.venue.reconnect_initial_s, self.venue.reconnect_max_s, self._rng)
        while not stop.is_set():
            try:
                await self._session(stop, backoff)
            except SubscriptionError:
                raise
            except (OSError, websockets.WebSocketException, TimeoutError, BybitError) as exc:
                # REST failures during a backfill end the session too: the reconnect's
                # catch-up fetches from the last delivered bar, so nothing is skipped
                self.stats["disconnects"] += 1
                log.warning("websocket %s: %s", self.ws_url, exc or type(exc).__name__)
            finally:
                self.connected = False
            if stop.is_set():
                break
            delay = backoff.next()
            self.stats["reconnects"] += 1
            log.info("reconnecting in %.2fs (attempt %d)", delay, backoff.attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        timeout = self.venue.request_timeout_s
        async with websockets.connect(
            self.ws_url, ping_interval=None, open_timeout=timeout, close_timeout=2, max_size=2**24
        ) as ws:
            await self._subscribe(ws, first=self.stats["subscribed"] == 0)
            backoff.reset()
            self.connected = True
            self._last_pong = time.monotonic()
            await self.catch_up()
            closer = asyncio.create_task(self._close_on(stop, ws))
            pinger = asyncio.create_task(self._ping(ws))
            try:
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), self._receive_timeout())
                    except TimeoutError:
                        raw = None
                    if raw is not None:
                        self.last_receipt_ns = time.perf_counter_ns()
                        await self._handle(raw)
                    if self._resnapshot:
                        await self._resubscribe_books(ws)
                    await self._backfill_expired_holds()
                    if time.monotonic() - self._last_catchup >= self.catchup_s:
                        await self.catch_up()
            except websockets.ConnectionClosedOK:
                if not stop.is_set():
                    raise
            finally:
                closer.cancel()
                pinger.cancel()

    async def _subscribe(self, ws, first: bool) -> None:
        """Send the subscriptions and wait for every ack; a refused topic is fatal at start-up
        (a bad symbol in the config) and logged and retried on later connections."""
        requests = subscribe_requests(self.topics, self.venue.category)
        waiting = {r["req_id"]: r["args"] for r in requests}
        for request in requests:
            await ws.send(encode(request))
        deadline = time.monotonic() + self.venue.request_timeout_s
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no subscribe ack for {sorted(waiting)}")
            raw = await asyncio.wait_for(ws.recv(), remaining)
            try:
                message = parse_message(raw)
            except MalformedMessageError as exc:
                self.stats["malformed"] += 1
                log.warning("malformed message while subscribing: %s", exc)
                continue
            if isinstance(message, Ack) and message.op == "subscribe":
                args = waiting.pop(message.req_id, None) or waiting.pop(next(iter(waiting)))
                if not message.success:
                    self.stats["subscribe_failed"] += 1
                    text = f"subscription to {', '.join(args)} refused: {message.ret_msg}"
                    if first:
                        raise SubscriptionError(text)
                    log.error(text)
            elif isinstance(message, list):
                for update in message:  # data may race the acks
                    await self._apply(update)
        self.stats["subscribed"] += 1
        log.info("subscribed to %d topics on %s", len(self.topics), self.ws_url)

    async def _ping(self, ws) -> None:
        interval = self.venue.ping_interval_s
        counter = 0
        while True:
            await asyncio.sleep(interval)
            silent = time.monotonic() - self._last_pong
            if silent > interval + self.venue.pong_timeout_s:
                self.stats["pong_timeouts"] += 1
                log.warning("no pong for %.0fs: dropping the connection", silent)
                await ws.close()
                return
            counter += 1
            await ws.send(encode(ping_request(f"ping-{counter}")))

    @staticmethod
    async def _close_on(stop: asyncio.Event, ws) -> None:
        await stop.wait()
        await ws.close()

    async def _handle(self, raw: str | bytes) -> None:
        self.stats["messages"] += 1
        try:
            message = parse_message(raw)
        except MalformedMessageError as exc:
            self.stats["malformed"] += 1
            log.warning("dropped a malformed message: %s", exc)
            return
        if isinstance(message, Ack):
            if message.op in ("ping", "pong"):
                self._last_pong = time.monotonic()
            elif not message.success:
                self.stats["failed_acks"] += 1
                log.error("%s refused: %s", message.op, message.ret_msg)
            return
        if isinstance(message, TopicMessage):
            self._on_topic(message)
            return
        for update in message:
            await self._apply(update)

    def _on_topic(self, message: TopicMessage) -> None:
        symbol = message.topic.rsplit(".", 1)[-1]
        book = self.books.get(symbol) if message.topic.startswith("orderbook.") else None
        if book is None:
            self.stats["unknown_topic"] += 1
            log.warning("message for unexpected topic %s", message.topic)
            return
        if not book.apply(message.payload):
            self.stats["book_ignored"] += 1
        if book.needs_snapshot:
            self._resnapshot.add(book.topic)

    async def _resubscribe_books(self, ws) -> None:
        """Ask again for the books that lost track (a gap in ``u``): the venue answers a new
        subscription with a snapshot, which resets the book."""
        for topic in sorted(self._resnapshot):
            self.stats["book_resubscribes"] += 1
            log.info("%s: order book out of sync, asking for a new snapshot", topic)
            for op in ("unsubscribe", "subscribe"):
                await ws.send(encode({"req_id": f"{op}-{topic}", "op": op, "args": [topic]}))
        self._resnapshot.clear()

    def _receive_timeout(self) -> float:
        waits = [self.catchup_s]
        if self._held_since:
            oldest = min(self._held_since.values())
            waits.append(max(0.0, oldest + REORDER_GRACE_S - time.monotonic()))
        return max(min(waits), 0.001)

    async def _apply(self, update: KlineUpdate) -> None:
        symbol = update.symbol
        held = self._held.get(symbol)
        last = self.tracker.last_closed(symbol)
        if held is not None and last is not None and update.start > last + self.step:
            held.append(update)  # still waiting for the missing close: keep arrival order
            return
        closed = False
        for action in self.tracker.update(update):
            if isinstance(action, Missing):
                self._held.setdefault(symbol, []).append(action.held)
                self._held_since.setdefault(symbol, time.monotonic())
            else:
                closed |= isinstance(action, Closed)
                await self.sink(action)
        if closed and symbol in self._held:
            await self._release(symbol)  # the late close came: replay what waited for it

    async def _release(self, symbol: str) -> None:
        held = self._held.pop(symbol, [])
        self._held_since.pop(symbol, None)
        for update in held:
            await self._apply(update)

    async def _backfill_expired_holds(self) -> None:
        """Fetch over REST the closes that did not turn up within the reorder grace (holds
        outlive a reconnect; if its catch-up already filled the gap, they are just released)."""
        now = time.monotonic()
        for symbol, since in list(self._held_since.items()):
            if now - since < REORDER_GRACE_S:
                continue
            first = self.tracker.last_closed(symbol) + self.step
            last = self._held[symbol][0].start - self.step
            if first <= last:
                log.info(
                    "%s: %d candle(s) missing before %d: backfilling over REST",
                    symbol, (last - first) // self.step + 1, last + self.step,
                )  # fmt: skip
                await self._backfill(symbol, first, last)
            await self._release(symbol)

    async def _backfill(self, symbol: str, first: int, last: int) -> None:
        """Fetch closed candles ``first..last`` and pass them on; everything up to ``last``
        counts as delivered afterwards (candles the venue itself lacks are counted)."""
        wanted = (last - first) // self.step + 1
        bars: list[Bar] = []
        for attempt in range(BACKFILL_RETRIES + 1):
            frame = await self.rest.klines(symbol, self.interval, first, last + self.step)
            bars = frame_bars(symbol, self.interval, frame)
            if len(bars) >= wanted or attempt == BACKFILL_RETRIES:
                break
            await asyncio.sleep(BACKFILL_RETRY_S)
        self.stats["backfilled"] += len(bars)
        for closed in self.tracker.fill(symbol, bars, last):
            await self.sink(closed)

    async def catch_up(self) -> None:
        """Fetch, over REST, closed candles newer than the last delivered one of each symbol."""
        self._last_catchup = time.monotonic()
        now = await self.rest.server_time()
        newest_closed = (now // self.step) * self.step - self.step
        for symbol in self.symbols:
            last = self.tracker.last_closed(symbol)
            if last is None or newest_closed <= last:
                continue
            frame = await self.rest.klines(symbol, self.interval, last + self.step, now)
            bars = frame_bars(symbol, self.interval, frame)
            if bars:
                self.stats["caught_up"] += len(bars)
                for closed in self.tracker.fill(symbol, bars, bars[-1].start):
                    await self.sink(closed)
