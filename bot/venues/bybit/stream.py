"""The public websocket feed: klines (and optionally order books) from Bybit or the local
exchange, delivered complete and in order per symbol.

This is the thin I/O shell around :mod:`bot.venues.bybit.ws_protocol` (parsing),
:mod:`bot.venues.bybit.klines` (ordering, gaps) and :mod:`bot.venues.bybit.kline_holds` (what
to hold behind a missing close, when to fetch it): those decide, given the time; this reads
the clocks and carries out what they return. It connects, subscribes (checking every ack),
sends Bybit's JSON ping every ``ping_interval_s`` and reconnects — with exponential backoff and
jitter — when the connection drops or a pong is overdue. Candles a disconnect or a lost message
made it miss are fetched over REST *before* any later bar of that symbol is passed on, and a
REST catch-up runs after every (re)connect and whenever the stream has been quiet for a while,
so an outage, or a lost final close, cannot leave a symbol behind.

Hostile or broken input is counted and logged, never fatal: a message that does not parse, a
kline that breaks the bar rules, one of another interval or symbol, a duplicate or out-of-order
update, an order-book frame the book cannot apply (the book is then reset and resubscribed).
An update dated after the venue's clock is dropped before it can mark a symbol delivered up to
that date, and no backfill treats candles that have not closed as delivered. Every close the
websocket delivers is later compared with the venue's REST history; a bar REST reports
differently is passed on as :class:`~bot.venues.bybit.klines.Corrected`.
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
from bot.core.backoff import Backoff
from bot.core.events import Bar
from bot.core.timeutil import interval_ms
from bot.logs import USER_EVENT
from bot.redact import redact_url
from bot.venues.bybit.kline_holds import KlineHolds, Released
from bot.venues.bybit.klines import CloseAudit, Closed, Corrected, KlineTracker, Opened
from bot.venues.bybit.orderbook import BookMessageError, OrderBook
from bot.venues.bybit.rest import BybitRest
from bot.venues.bybit.rest_protocol import CLOSE_MARGIN_MS, BybitError
from bot.venues.bybit.stopping import Stopping, until_stopped
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

Event = Closed | Opened | Corrected
Sink = Callable[[Event], Awaitable[None]]
#: After a backfill found fewer candles than missing, retry this often before accepting a gap
#: (the REST view of a candle that closed a moment ago may lag the websocket slightly).
BACKFILL_RETRIES = 3
BACKFILL_RETRY_S = 0.5
#: How long to wait for the snapshot a resubscription asked for before asking again.
RESNAPSHOT_WAIT_S = 5.0
#: What handling a message can raise on input no parser foresaw; caught, counted, dropped.
INPUT_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError)


class SubscriptionError(RuntimeError):
    """The venue refused a subscription (e.g. an unknown symbol)."""


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
        self.shown_url = redact_url(ws_url)  # for log lines: no credential ever
        self.rest = rest
        self.symbols = tuple(symbols)
        self.interval = interval
        self.step = interval_ms(interval)
        self.tracker = KlineTracker(interval, {s: last_closed.get(s) for s in self.symbols})
        self.sink = sink
        self.venue = venue
        self.catchup_s = catchup_s
        books = [OrderBook(s, venue.orderbook_depth) for s in self.symbols]
        self.books = {b.topic: b for b in books} if venue.orderbook_depth else {}
        self.audit = CloseAudit()
        self.stats: Counter[str] = Counter()
        self.connected = False
        self.last_receipt_ns = 0  # when the message being handled arrived (latency metrics)
        self._rng = random.Random(seed)
        self._last_pong = 0.0
        self._last_catchup = 0.0
        self._resnapshot: set[str] = set()  # order-book topics that need a fresh snapshot
        # topic → (when its snapshot was asked for, snapshots the book had applied by then)
        self._resubscribed: dict[str, tuple[float, int]] = {}
        # per symbol: updates held behind a missing close (the decisions; this class does I/O)
        self.holds = KlineHolds(self.tracker, self.step)

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
                await until_stopped(self._session(stop, backoff), stop)
            except Stopping:
                break  # stopped while connecting, or while a REST call waited
            except SubscriptionError:
                raise
            except (OSError, websockets.WebSocketException, TimeoutError, BybitError) as exc:
                # REST failures during a backfill end the session too: the reconnect's
                # catch-up fetches from the last delivered bar, so nothing is skipped
                self.stats["disconnects"] += 1
                log.warning("websocket %s: %s", self.shown_url, exc or type(exc).__name__)
            finally:
                self.connected = False
            if stop.is_set():
                break
            delay = backoff.next()
            self.stats["reconnects"] += 1
            log.info("reconnecting in %.2fs (attempt %d)", delay, backoff.attempt,
                     extra=USER_EVENT)  # fmt: skip
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
        log.info("subscribed to %d topics on %s", len(self.topics), self.shown_url,
                 extra=USER_EVENT)  # fmt: skip

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
            self._drop("malformed message", exc)
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

    def _drop(self, what: str, exc: BaseException) -> None:
        self.stats["malformed"] += 1
        log.warning("dropped a %s: %s", what, str(exc)[:300] or type(exc).__name__)

    def _on_topic(self, message: TopicMessage) -> None:
        book = self.books.get(message.topic)
        if book is None:
            self.stats["unknown_topic"] += 1
            log.warning("message for unexpected topic %s", message.topic[:100])
            return
        try:
            applied = book.apply(message.payload)
        except (BookMessageError, *INPUT_ERRORS) as exc:
            self._drop(f"{book.topic} frame", exc)
            book.reset()  # what the venue meant to send is unknown: start again from a snapshot
            self._resnapshot.add(book.topic)
            return
        if not applied:
            self.stats["book_ignored"] += 1
        if book.needs_snapshot:
            self._resnapshot.add(book.topic)

    async def _resubscribe_books(self, ws) -> None:
        """Ask again for the books that lost track (a gap in ``u``, a malformed frame): the
        venue answers a new subscription with a snapshot, which resets the book. Deltas still
        in flight before that snapshot flag the book again; they must not trigger another
        round, so a topic is asked for at most once per :data:`RESNAPSHOT_WAIT_S` unless its
        snapshot came."""
        now = time.monotonic()
        for topic in sorted(self._resnapshot):
            book = self.books[topic]
            asked, snapshots = self._resubscribed.get(topic, (-RESNAPSHOT_WAIT_S, -1))
            if book.counters["snapshots"] == snapshots and now - asked < RESNAPSHOT_WAIT_S:
                continue  # the snapshot asked for is on its way
            self.stats["book_resubscribes"] += 1
            log.info("%s: order book out of sync, asking for a new snapshot", topic,
                     extra=USER_EVENT)  # fmt: skip
            for op in ("unsubscribe", "subscribe"):
                await ws.send(encode({"req_id": f"{op}-{topic}", "op": op, "args": [topic]}))
            self._resubscribed[topic] = (now, book.counters["snapshots"])
        self._resnapshot.clear()

    def _receive_timeout(self) -> float:
        return self.holds.receive_timeout(time.monotonic(), self.catchup_s)

    async def _apply(self, update: KlineUpdate) -> None:
        await self._pass_on(self.holds.apply(update, time.monotonic()))

    async def _pass_on(self, events: list[Released]) -> None:
        for event in events:
            if isinstance(event, Closed):
                self.audit.note(event.bar)  # checked against REST at the next catch-up
            await self.sink(event)

    async def _backfill_expired_holds(self) -> None:
        """Fetch over REST the closes that did not turn up within the reorder grace (holds
        outlive a reconnect; if its catch-up already filled the gap, they are just released).

        The venue's clock decides first: an update dated after it cannot be real (a forged
        or corrupted frame) and is dropped, so it can neither mark the candles before it
        delivered nor hold back the real ones; and no candle that has not closed yet counts
        as delivered."""
        expired = self.holds.expired(time.monotonic())
        server_now = await self.rest.server_time() if expired else 0
        for symbol in expired:
            plan = self.holds.plan_backfill(symbol, server_now)
            if plan.dropped:
                self.stats["future_updates"] += plan.dropped
                log.warning("%s: dropped %d update(s) dated after the venue's clock (%d)",
                            symbol, plan.dropped, server_now)  # fmt: skip
            if plan.first is not None:
                log.info(
                    "%s: %d candle(s) missing before %d: backfilling over REST",
                    symbol, (plan.last - plan.first) // self.step + 1, plan.last + self.step,
                    extra=USER_EVENT,
                )  # fmt: skip
                await self._backfill(symbol, plan.first, plan.last)
            await self._pass_on(self.holds.release(symbol, time.monotonic()))

    async def _backfill(self, symbol: str, first: int, last: int) -> None:
        """Fetch closed candles ``first..last`` and pass them on; everything up to ``last``
        counts as delivered afterwards (candles the venue itself lacks are counted). Callers
        pass a ``last`` that has closed by the venue's clock."""
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
        """Fetch, over REST, closed candles newer than the last delivered one of each symbol,
        and compare the websocket's closes since the last catch-up with REST's record."""
        self._last_catchup = time.monotonic()
        now = await self.rest.server_time()
        newest_closed = (now // self.step) * self.step - self.step
        # what REST must report as closed by now (it holds back candles that just closed)
        settled = ((now - CLOSE_MARGIN_MS) // self.step) * self.step - self.step
        for symbol in self.symbols:
            last = self.tracker.last_closed(symbol)
            audit_from = self.audit.first_pending(symbol)
            if audit_from is not None and audit_from > settled:
                audit_from = None  # nothing REST can confirm yet
            new = last is not None and newest_closed > last
            if not new and audit_from is None:
                continue
            lo = min(t for t in (audit_from, last + self.step if new else None) if t is not None)
            frame = await self.rest.klines(symbol, self.interval, lo, now)
            bars = frame_bars(symbol, self.interval, frame)
            if audit_from is not None:
                for corrected in self.audit.check(symbol, bars, settled):
                    self.stats["corrected"] += 1
                    log.warning(
                        "%s bar %d: the websocket's close differs from the venue's record; "
                        "correcting it", symbol, corrected.bar.start,
                    )  # fmt: skip
                    await self.sink(corrected)
            fresh = [b for b in bars if last is not None and b.start > last]
            if fresh:
                self.stats["caught_up"] += len(fresh)
                for closed in self.tracker.fill(symbol, fresh, fresh[-1].start):
                    await self.sink(closed)
