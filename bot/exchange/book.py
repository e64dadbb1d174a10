"""A synthetic order book around the replayed price, and its Bybit messages.

The book at grid update ``g`` is a pure function of (seed, symbol, g, price): levels are whole
ticks around the price, one empty tick between best bid and ask; each level's size is redrawn
every 1–4 updates (a per-level period), so consecutive books differ a little, like a real one.
A depth-N stream is the top N levels of that book, so every depth agrees with the others.

Deltas are computed as the difference of two such books: they delete only prices present in
the previous book, written exactly as the snapshot wrote them — pybit deletes by string
equality and drops its connection for good on an unknown price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.exchange.mix import mix_array
from bot.exchange.numfmt import Step

DEPTHS = (1, 50, 200, 500, 1000)
_BID, _ASK = 1, 2
_PERIOD, _PHASE, _SIZE = 11, 12, 13  # salts
MAX_UNITS = 1000  # sizes are 1..MAX_UNITS quantity steps


@dataclass(frozen=True, slots=True)
class Book:
    """Price → size strings, each side best first."""

    bids: dict[str, str]
    asks: dict[str, str]


def book_at(price: float, depth: int, g: int, key: tuple[int, ...], tick: Step, qty: Step) -> Book:
    """``depth`` levels a side around ``price`` at update ``g``. When the price is too close to
    zero for ``depth`` bids, the book sits just above zero instead of around the price."""
    mid = max(tick.count(price), depth + 1)
    bid_ticks = mid - 1 - np.arange(depth, dtype=np.int64)
    ask_ticks = mid + 1 + np.arange(depth, dtype=np.int64)
    return Book(
        _side(bid_ticks, _BID, g, key, tick, qty), _side(ask_ticks, _ASK, g, key, tick, qty)
    )


def _side(
    ticks: np.ndarray, side: int, g: int, key: tuple[int, ...], tick: Step, qty: Step
) -> dict[str, str]:
    period = 1 + mix_array(*key, side, ticks, _PERIOD) % np.uint64(4)
    phase = mix_array(*key, side, ticks, _PHASE) % period
    epoch = (np.uint64(g) + phase) // period
    units = 1 + mix_array(*key, side, ticks, _SIZE, epoch) % np.uint64(MAX_UNITS)
    return {
        tick.format(t): qty.format(u) for t, u in zip(ticks.tolist(), units.tolist(), strict=True)
    }


def diff_side(old: dict[str, str], new: dict[str, str], descending: bool) -> list[list[str]]:
    """Entries turning ``old`` into ``new``: size ``"0"`` deletes, others insert or replace;
    sorted best first like Bybit's."""
    out = [[p, "0"] for p in old if p not in new]
    out += [[p, s] for p, s in new.items() if old.get(p) != s]
    out.sort(key=lambda e: float(e[0]), reverse=descending)
    return out


def book_message(
    topic: str, symbol: str, book: Book, previous: Book | None, u: int, ts: int
) -> dict[str, Any]:
    """A snapshot (``previous`` None) or the delta from ``previous`` to ``book``."""
    if previous is None:
        kind = "snapshot"
        bids = [[p, s] for p, s in book.bids.items()]
        asks = [[p, s] for p, s in book.asks.items()]
    else:
        kind = "delta"
        bids = diff_side(previous.bids, book.bids, descending=True)
        asks = diff_side(previous.asks, book.asks, descending=False)
    return {
        "topic": topic,
        "type": kind,
        "ts": ts,
        "data": {"s": symbol, "b": bids, "a": asks, "u": u, "seq": u},
        "cts": ts,
    }
