"""Public websocket topics the local exchange serves, parsed from their Bybit names."""

from __future__ import annotations

from dataclasses import dataclass

from bot.exchange.book import DEPTHS


@dataclass(frozen=True, slots=True)
class Topic:
    """``kline.{code}.{symbol}`` (depth 0) or ``orderbook.{depth}.{symbol}``."""

    name: str
    kind: str
    symbol: str
    depth: int = 0


def parse_topic(name: object, code: str, symbols: tuple[str, ...]) -> Topic | None:
    """The topic named ``name``, or None when this exchange has no such stream (another
    interval, an untraded symbol, an unknown kind or depth)."""
    if not isinstance(name, str):
        return None
    parts = name.split(".")
    if len(parts) != 3 or parts[2] not in symbols:
        return None
    kind, arg, symbol = parts
    if kind == "kline" and arg == code:
        return Topic(name, kind, symbol)
    if kind == "orderbook" and arg.isdigit() and int(arg) in DEPTHS:
        return Topic(name, kind, symbol, int(arg))
    return None
