"""The private websocket feed: order, execution, position and wallet records as they happen.

The thin aiohttp shell around :class:`~bot.venues.bybit.private_ws_protocol.PrivateConnection`:
it connects to ``/v5/private``, performs the actions the protocol returns, and on any
disconnect, refused auth or overdue pong reconnects with backoff and jitter, authenticates and
subscribes again. Records go to the caller's ``sink`` (``queue.put`` works) in arrival order;
executions whose ``execId`` was seen before are dropped (``stats["duplicates"]``).

After every (re)subscription — the first one too: a start is a gap since the last run — the
caller's ``on_gap`` hook runs before any further frame is read, so the executor can fetch over
REST the executions it missed (:func:`bot.venues.bybit.gap_fill.fetch_missed_executions`,
sharing this stream's :class:`~bot.venues.bybit.gap_fill.SeenExecutions`). A hook that fails
ends the connection; the next one calls it again.

A malformed or implausible row is logged, counted (``stats["malformed"]``) and dropped; it
never ends the stream. Frames are never logged: the auth request holds the key and a
signature. ``stats`` also counts ``connects``, ``reconnects``, ``disconnects``,
``auth_failures``, ``gaps``, ``gap_failures`` and ``delivered.<topic>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from bot.logs import USER_EVENT
from bot.redact import redact_url
from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.gap_fill import SeenExecutions
from bot.venues.bybit.private_records import Execution, Record
from bot.venues.bybit.private_ws_protocol import (
    DEFAULT_TOPICS,
    EXPIRES_AHEAD_MS,
    Action,
    Close,
    Deliver,
    Dropped,
    PrivateConnection,
    Ready,
    Send,
)
from bot.venues.bybit.stopping import Stopping, until_stopped
from bot.venues.bybit.stream import Backoff  # the public stream's reconnect policy

log = logging.getLogger(__name__)

Sink = Callable[[Record], Awaitable[None]]
GapHook = Callable[[], Awaitable[None]]


class AuthenticationError(RuntimeError):
    """The private stream was refused authentication too many times in a row."""


class _ConnectionEnded(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PrivateStream:
    """Streams the account's private topics until stopped; see the module docstring."""

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        sink: Sink,
        *,
        on_gap: GapHook | None = None,
        seen: SeenExecutions | None = None,
        topics: Sequence[str] = DEFAULT_TOPICS,
        category: str = "linear",
        ping_interval_s: float = 20.0,
        pong_timeout_s: float = 10.0,
        handshake_timeout_s: float = 10.0,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        expires_ahead_ms: int = EXPIRES_AHEAD_MS,
        max_auth_failures: int | None = None,
        epoch_ms: Callable[[], int] | None = None,
        seed: int | None = None,
    ) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.credentials = credentials
        self.sink = sink
        self.on_gap = on_gap
        self.seen = SeenExecutions() if seen is None else seen
        self.topics = tuple(topics)
        self.category = category
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = reconnect_max_s
        self.expires_ahead_ms = expires_ahead_ms
        self.max_auth_failures = max_auth_failures  # None: keep trying (the executor decides)
        # the clock auth ``expires`` is measured on: pass the REST client's ``now_ms`` to use
        # Bybit's clock once its offset is known
        self.epoch_ms = epoch_ms or (lambda: int(time.time() * 1000))
        self.stats: Counter[str] = Counter()
        self.connected = False  # authenticated and subscribed
        self._rng = random.Random(seed)
        self._auth_failures_in_a_row = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set, reconnecting as needed. Raises
        :class:`AuthenticationError` after ``max_auth_failures`` refusals in a row."""
        backoff = Backoff(self.reconnect_initial_s, self.reconnect_max_s, self._rng)
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    await until_stopped(self._connection(session, backoff), stop)
                except Stopping:
                    break
                except _ConnectionEnded as ended:
                    self._ended(ended.reason)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self._ended(type(exc).__name__)
                finally:
                    self.connected = False
                if self._auth_refused_too_often():
                    raise AuthenticationError(
                        f"authentication refused {self._auth_failures_in_a_row} times in a row"
                    )
                if stop.is_set():
                    break
                delay = backoff.next()
                self.stats["reconnects"] += 1
                log.info("private stream: reconnecting in %.2f s (attempt %d)", delay,
                         backoff.attempt, extra=USER_EVENT)  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _connection(self, session: aiohttp.ClientSession, backoff: Backoff) -> None:
        self.stats["connects"] += 1
        connection = PrivateConnection(
            self.credentials, topics=self.topics, category=self.category,
            ping_interval_s=self.ping_interval_s, pong_timeout_s=self.pong_timeout_s,
            handshake_timeout_s=self.handshake_timeout_s,
            expires_ahead_ms=self.expires_ahead_ms, stats=self.stats,
            connection_id=self.stats["connects"],
        )  # fmt: skip
        timeout = aiohttp.ClientWSTimeout(ws_close=2.0)
        async with session.ws_connect(
            self.url, timeout=timeout, heartbeat=None, max_msg_size=2**24
        ) as ws:
            await self._perform(ws, connection.start(time.monotonic(), self.epoch_ms()), backoff)
            while True:
                wait = max(0.001, connection.next_wakeup() - time.monotonic())
                try:
                    message = await asyncio.wait_for(ws.receive(), min(wait, 3600.0))
                except TimeoutError:
                    await self._perform(ws, connection.tick(time.monotonic()), backoff)
                    continue
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self.stats["messages"] += 1
                    actions = connection.receive(message.data, time.monotonic())
                    await self._perform(ws, actions, backoff)
                    await self._perform(ws, connection.tick(time.monotonic()), backoff)
                elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                      aiohttp.WSMsgType.CLOSED):  # fmt: skip
                    raise _ConnectionEnded("closed by the server")
                elif message.type == aiohttp.WSMsgType.ERROR:
                    raise _ConnectionEnded(f"websocket error ({type(ws.exception()).__name__})")

    async def _perform(
        self, ws: aiohttp.ClientWebSocketResponse, actions: list[Action], backoff: Backoff
    ) -> None:
        for action in actions:
            if isinstance(action, Send):
                await ws.send_str(action.text)  # never logged: the auth frame holds secrets
            elif isinstance(action, Deliver):
                await self._deliver(action)
            elif isinstance(action, Dropped):
                log.warning("private stream: dropped %d from %s: %s", len(action.reasons),
                            action.topic, "; ".join(action.reasons[:3]))  # fmt: skip
            elif isinstance(action, Ready):
                await self._ready(backoff)
            elif isinstance(action, Close):
                if action.auth_failed:
                    self._auth_failures_in_a_row += 1
                raise _ConnectionEnded(action.reason)

    async def _deliver(self, action: Deliver) -> None:
        for record in action.records:
            if isinstance(record, Execution) and record.exec_id in self.seen:
                self.stats["duplicates"] += 1
                continue
            await self.sink(record)
            if isinstance(record, Execution):
                self.seen.add(record.exec_id)
            self.stats["delivered"] += 1
            self.stats[f"delivered.{action.topic}"] += 1

    async def _ready(self, backoff: Backoff) -> None:
        self.connected = True
        self._auth_failures_in_a_row = 0
        backoff.reset()
        log.info("private stream: authenticated and subscribed to %s on %s",
                 ", ".join(self.topics), self.shown_url)  # fmt: skip
        if self.on_gap is None:
            return
        self.stats["gaps"] += 1
        try:
            await self.on_gap()
        except (Stopping, asyncio.CancelledError):
            raise
        except Exception as exc:
            self.stats["gap_failures"] += 1
            log.warning("private stream: the gap hook failed (%s: %s): reconnecting to retry it",
                        type(exc).__name__, str(exc)[:200])  # fmt: skip
            raise _ConnectionEnded("gap hook failed") from exc

    def _ended(self, reason: str) -> None:
        self.stats["disconnects"] += 1
        log.warning("private stream %s: %s", self.shown_url, reason)

    def _auth_refused_too_often(self) -> bool:
        limit = self.max_auth_failures
        return limit is not None and self._auth_failures_in_a_row >= limit
