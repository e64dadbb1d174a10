"""One connection to Bybit's private websocket, as a state machine without sockets.

:class:`PrivateConnection` is told what happened — the socket opened, a frame arrived, time
passed — with ``now`` (monotonic seconds) passed in, and answers with actions for the I/O
layer (:mod:`bot.venues.bybit.private_stream`) to perform: :class:`Send` a frame,
:class:`Deliver` parsed records, :class:`Ready` (authenticated and subscribed: the moment
to fill the gap since the last connection over REST), :class:`Dropped` rows, :class:`Close`.
Every protocol edge case — an auth refused or never answered, a subscription refused, a pong
overdue, a malformed row among good ones, a row of another category — is a unit test here.

The handshake: ``op: auth`` with a signature of ``"GET/realtime" + expires`` (expires a few
seconds ahead: pybit's one second is known to fail), then one ``subscribe`` for all topics
once auth succeeded, then a JSON ping every ``ping_interval_s`` (Bybit's private pong is
``{"op": "pong", ...}``; the public form ``{"op": "ping", "ret_msg": "pong"}`` is accepted too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.private_records import ROW_PARSERS, Record, parse_rows
from bot.venues.bybit.signing import ws_auth_request

DEFAULT_TOPICS = ("order", "execution", "position", "wallet")
#: How far ahead of now an auth request's ``expires`` is set.
EXPIRES_AHEAD_MS = 5_000


@dataclass(frozen=True, slots=True)
class Send:
    """A frame to send. ``what`` names it for logs; ``text`` may hold a signature and the
    key (the auth request): never log it."""

    what: str
    text: str = ""

    def __repr__(self) -> str:
        return f"Send({self.what!r})"


@dataclass(frozen=True, slots=True)
class Deliver:
    topic: str
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class Ready:
    """Authenticated and subscribed: whatever happened while not connected can be fetched."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """Rows or frames refused, and why (the reasons quote no more than field names and short
    excerpts of values)."""

    topic: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Close:
    """End this connection (the I/O layer reconnects with backoff)."""

    reason: str
    auth_failed: bool = False


Action = Send | Deliver | Ready | Dropped | Close


class PrivateConnection:
    """Protocol state of one connection: ``new`` → ``auth`` → ``subscribe`` → ``live`` →
    ``closed``. ``stats`` (shared across connections by the caller) counts ``auth_failures``,
    ``subscribe_failures``, ``malformed`` (frames and rows), ``other_category``,
    ``unknown_topic``, ``pings``, ``pongs`` and ``pong_timeouts``."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        topics: Sequence[str] = DEFAULT_TOPICS,
        category: str = "linear",
        ping_interval_s: float = 20.0,
        pong_timeout_s: float = 10.0,
        handshake_timeout_s: float = 10.0,
        expires_ahead_ms: int = EXPIRES_AHEAD_MS,
        stats: Counter[str] | None = None,
        connection_id: int = 1,
    ) -> None:
        self.credentials = credentials
        self.topics = tuple(topics)
        self.category = category
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self.expires_ahead_ms = expires_ahead_ms
        self.stats: Counter[str] = Counter() if stats is None else stats
        self.state = "new"
        self._prefix = f"c{connection_id}"
        self._deadline = float("inf")  # handshake step or pong due by then
        self._next_ping = float("inf")
        self._pings = 0

    # -- events ----------------------------------------------------------------------------------
    def start(self, now: float, wall_ms: int) -> list[Action]:
        """The socket is open: authenticate (``wall_ms`` is the epoch-ms clock ``expires``
        is measured on; Bybit's, when its offset is known)."""
        self.state = "auth"
        self._deadline = now + self.handshake_timeout_s
        request = ws_auth_request(
            self.credentials, wall_ms + self.expires_ahead_ms, f"{self._prefix}-auth"
        )
        return [Send("auth", _encode(request))]

    def receive(self, raw: str | bytes, now: float) -> list[Action]:
        """A text frame arrived."""
        if self.state == "closed":
            return []
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._malformed("frame", "not JSON")
        if not isinstance(message, dict):
            return self._malformed("frame", f"a JSON {type(message).__name__}, not an object")
        topic = message.get("topic")
        if topic is not None:
            if not isinstance(topic, str):
                return self._malformed("frame", "topic is not a string")
            return self._data(topic, message)
        op = message.get("op")
        if not isinstance(op, str):
            return self._malformed("frame", "neither a topic nor an op")
        return self._reply(op, message, now)

    def tick(self, now: float) -> list[Action]:
        """Time passed: send a ping when one is due; give up on an overdue reply."""
        if self.state == "closed":
            return []
        if now >= self._deadline:
            if self.state == "live":
                self.stats["pong_timeouts"] += 1
                return self._close("no pong in time")
            return self._close(f"no {self.state} reply in time")
        if self.state == "live" and now >= self._next_ping:
            self._pings += 1
            self.stats["pings"] += 1
            self._next_ping = now + self.ping_interval_s
            if self._deadline == float("inf"):
                self._deadline = now + self.pong_timeout_s
            request = {"req_id": f"{self._prefix}-ping-{self._pings}", "op": "ping"}
            return [Send("ping", _encode(request))]
        return []

    def next_wakeup(self) -> float:
        """When :meth:`tick` next has something to do (monotonic seconds)."""
        return min(self._deadline, self._next_ping)

    # -- replies and data ------------------------------------------------------------------------
    def _reply(self, op: str, message: dict[str, Any], now: float) -> list[Action]:
        success = message.get("success")
        if op == "pong" or (op == "ping" and message.get("ret_msg") == "pong"):
            self.stats["pongs"] += 1
            if self.state == "live":
                self._deadline = float("inf")
            return []
        if op == "auth" and self.state == "auth":
            if success is not True:
                # the reply's ret_msg is not repeated: keep whatever Bybit echoes out of logs
                self.stats["auth_failures"] += 1
                return self._close("authentication refused", auth_failed=True)
            self.state = "subscribe"
            self._deadline = now + self.handshake_timeout_s
            request = {
                "req_id": f"{self._prefix}-sub",
                "op": "subscribe",
                "args": list(self.topics),
            }
            return [Send("subscribe", _encode(request))]
        if op == "subscribe" and self.state == "subscribe":
            if success is not True:
                self.stats["subscribe_failures"] += 1
                shown = str(message.get("ret_msg", ""))[:120]
                return self._close(f"subscription refused: {shown}")
            self.state = "live"
            self._deadline = float("inf")
            self._next_ping = now + self.ping_interval_s
            return [Ready()]
        self.stats["unexpected_replies"] += 1
        return []

    def _data(self, topic: str, message: dict[str, Any]) -> list[Action]:
        parser = ROW_PARSERS.get(topic.split(".", 1)[0])
        if parser is None:
            self.stats["unknown_topic"] += 1
            return [Dropped(topic[:60], ("a topic not subscribed to",))]
        records, refused = parse_rows(parser, message.get("data"))
        actions: list[Action] = []
        if refused:
            self.stats["malformed"] += len(refused)
            actions.append(Dropped(topic, tuple(refused)))
        mine = [r for r in records if getattr(r, "category", "") in ("", self.category)]
        if len(mine) < len(records):
            self.stats["other_category"] += len(records) - len(mine)
        if mine:
            actions.append(Deliver(topic, tuple(mine)))
        return actions

    def _malformed(self, topic: str, reason: str) -> list[Action]:
        self.stats["malformed"] += 1
        return [Dropped(topic, (reason,))]

    def _close(self, reason: str, auth_failed: bool = False) -> list[Action]:
        self.state = "closed"
        return [Close(reason, auth_failed)]


def _encode(request: dict[str, Any]) -> str:
    return orjson.dumps(request).decode()
