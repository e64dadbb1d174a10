"""Bybit v5 public websocket messages, as pure functions (no sockets).

Parsing is strict where it matters (a kline whose numbers do not parse, whose ``end`` does not
match its interval, or that breaks :mod:`bot.core.bar_rules` — a price of 0 or ``inf``, high
below low, a negative volume — is *malformed* and must never reach the engine) and tolerant where
Bybit varies (key order, ``req_id`` present or not, extra fields). Building requests respects
Bybit's limits: at most 10 args per subscribe on spot, under 21,000 characters of args per
connection elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from bot.core.bar_rules import bar_problem
from bot.core.timeutil import interval_ms
from bot.venues.bybit.intervals import NAMES, bybit_interval

SPOT_MAX_ARGS = 10
MAX_ARGS_CHARS = 21_000


class MalformedMessageError(ValueError):
    """A message that is not valid JSON or not a valid Bybit message."""


@dataclass(frozen=True, slots=True)
class KlineUpdate:
    """One element of a kline message's ``data`` array."""

    symbol: str
    interval: str  # canonical, e.g. "1h"
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float
    confirm: bool
    timestamp: int


@dataclass(frozen=True, slots=True)
class Ack:
    """Reply to an operation (subscribe, unsubscribe, ping, auth)."""

    op: str
    success: bool
    ret_msg: str
    req_id: str


@dataclass(frozen=True, slots=True)
class TopicMessage:
    """A data message of a topic this module does not decode itself (order book, tickers)."""

    topic: str
    payload: dict[str, Any]


def kline_topic(interval: str, symbol: str) -> str:
    return f"kline.{bybit_interval(interval)}.{symbol}"


def connection_groups(topics: Iterable[str]) -> list[list[str]]:
    """Split topics over connections so each connection's args stay under Bybit's 21,000
    characters (as a JSON array of strings)."""
    groups: list[list[str]] = [[]]
    size = 2  # the brackets
    for topic in topics:
        cost = len(topic) + 3  # quotes and a comma
        if groups[-1] and size + cost >= MAX_ARGS_CHARS:
            groups.append([])
            size = 2
        groups[-1].append(topic)
        size += cost
    return groups if groups[0] else []


def subscribe_requests(
    topics: Iterable[str], category: str, req_prefix: str = "sub"
) -> list[dict[str, Any]]:
    """Subscribe requests for one connection's topics (spot: at most 10 args a request)."""
    topics = list(topics)
    per_request = SPOT_MAX_ARGS if category == "spot" else max(1, len(topics))
    return [
        {"req_id": f"{req_prefix}-{k}", "op": "subscribe", "args": topics[lo : lo + per_request]}
        for k, lo in enumerate(range(0, len(topics), per_request), start=1)
    ]


def ping_request(req_id: str) -> dict[str, Any]:
    return {"req_id": req_id, "op": "ping"}


def encode(request: dict[str, Any]) -> str:
    return orjson.dumps(request).decode()


def parse_message(raw: str | bytes) -> Ack | list[KlineUpdate] | TopicMessage:
    """Decode one text frame. Raises :class:`MalformedMessageError` for anything unusable."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessageError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedMessageError(f"not a JSON object: {type(message).__name__}")
    topic = message.get("topic")
    if topic is None:
        op = message.get("op")
        if not isinstance(op, str):
            raise MalformedMessageError("neither a topic nor an op")
        return Ack(
            op=op,
            success=bool(message.get("success", op == "pong")),
            ret_msg=str(message.get("ret_msg", "")),
            req_id=str(message.get("req_id") or ""),
        )
    if not isinstance(topic, str):
        raise MalformedMessageError("topic is not a string")
    if topic.startswith("kline."):
        return parse_klines(topic, message)
    return TopicMessage(topic, message)


def parse_klines(topic: str, message: dict[str, Any]) -> list[KlineUpdate]:
    """The updates of a ``kline.{code}.{symbol}`` message (``data`` is an array)."""
    parts = topic.split(".")
    if len(parts) != 3 or parts[1] not in NAMES:
        raise MalformedMessageError(f"bad kline topic {topic!r}")
    interval, symbol = NAMES[parts[1]], parts[2]
    step = interval_ms(interval)
    data = message.get("data")
    if not isinstance(data, list) or not data:
        raise MalformedMessageError(f"{topic}: data is not a non-empty array")
    updates = []
    for item in data:
        try:
            start = int(item["start"])
            end = int(item["end"])
            o, h, lo, c = (float(item[k]) for k in ("open", "high", "low", "close"))
            volume = float(item["volume"])
            turnover = float(item.get("turnover", "nan"))
            confirm = item["confirm"]
            stamp = int(item.get("timestamp", message.get("ts", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessageError(f"{topic}: bad kline field ({exc})") from None
        if not isinstance(confirm, bool):
            raise MalformedMessageError(f"{topic}: confirm is not a boolean")
        if end != start + step - 1 or (start % step and step <= 86_400_000):
            raise MalformedMessageError(f"{topic}: start {start} / end {end} do not fit {interval}")
        problem = bar_problem(start, o, h, lo, c, volume, step, turnover=turnover)
        if problem is not None:
            raise MalformedMessageError(f"{topic}: refused bar at {start}: {problem}")
        updates.append(
            KlineUpdate(symbol, interval, start, o, h, lo, c, volume, turnover, confirm, stamp)
        )
    return updates
