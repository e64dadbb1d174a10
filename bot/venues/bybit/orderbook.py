"""A local copy of one Bybit ``orderbook.{depth}.{symbol}`` stream, sans I/O.

The websocket client hands every decoded message of the topic to :meth:`OrderBook.apply`; the
book never touches a socket, so every edge case of the protocol is a plain unit test.

Protocol (Bybit v5): a ``snapshot`` replaces the whole book (``u == 1`` means the service
restarted, which is handled like any other snapshot); a ``delta`` deletes a level when its size
is zero, inserts an unknown price and replaces a known one. Depth 1 sends only snapshots.

Representation. A level's identity is its price *string* exactly as Bybit sent it: Bybit formats
a price the same way throughout a stream, and a string cannot be rounded into colliding with a
neighbour, so no level is ever lost to float rounding. Each side is a ``dict`` from price string
to float size plus a list of ``(sort key, price string)`` kept sorted best first with
:mod:`bisect` (the sort key is the float price, negated on the bid side). Including the string
in the sorted entry means even two spellings of one value ("1.5" and "1.50") stay two distinct,
removable entries. A delta costs O(log N) comparisons per level it carries plus a pointer
``memmove`` when a level appears or disappears (at most 1000 pointers here, far cheaper than
any tree in pure Python, and the standard library has no sorted container); reading the top
``n`` levels is a slice, never a sort. A snapshot is sorted once, not inserted level by level.

Sequencing. ``u`` rises by exactly 1 per message within a subscription (true of the real
recording in ``data/lob``). A delta that cannot be placed on the current book — one before any
snapshot, or one whose ``u`` is not above the book's — is ignored, counted and sets
:attr:`OrderBook.needs_snapshot`: applying it would overwrite newer levels with older ones, and
a stream that goes backwards is not the stream this book was built from. A delta that skips
``u`` values (a gap) also sets the flag, but *is* applied: every level it carries is the
exchange's current truth for that price, so applying it can only make those levels right,
whereas dropping it would leave them wrong as well; ``u`` then moves on, so the deltas after it
are not each reported as another gap; and the resubscribe the flag asks for brings a snapshot
that repairs whatever the missed messages changed. Any snapshot clears the flag.

Hostile input. A message is read completely before it touches the book: a missing ``type``,
a ``u`` that is not an integer, a level that is not a ``[price, size]`` pair of finite numbers
(positive price, non-negative size) raises :class:`BookMessageError` and leaves the book as it
was. The caller cannot know what the venue meant to send, so it treats the book as
untrustworthy: :meth:`OrderBook.reset` empties it and flags a resubscribe.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

_NAN = float("nan")


class BookMessageError(ValueError):
    """A message this book cannot apply: malformed, or another topic's."""


_COUNTERS = (
    "snapshots",  # snapshots applied (each one resets the book)
    "restarts",  # of those, snapshots with u == 1: Bybit's order book service restarted
    "deltas",  # deltas applied
    "before_snapshot",  # deltas ignored because no snapshot had been applied yet
    "stale",  # deltas ignored because their u was not above the book's
    "gaps",  # deltas applied although u skipped values (a message was missed)
    "missing_deletes",  # levels a delta deleted that were not in the book
    "resets",  # times the book was emptied because it could no longer be trusted
)

Level = tuple[str, float]  # (price exactly as sent, size)


def _levels(raw: Any, side: str) -> list[Level]:
    """A side's levels, checked: ``[[price, size], ...]`` of finite numbers."""
    if not isinstance(raw, list):
        raise BookMessageError(f"{side} levels are a {type(raw).__name__}, not an array")
    out = []
    for level in raw:
        if not (isinstance(level, list | tuple) and len(level) == 2):
            raise BookMessageError(f"{side} level {str(level)[:40]} is not a [price, size] pair")
        price, size_text = level
        try:
            value, size = float(price), float(size_text)
        except (TypeError, ValueError):
            raise BookMessageError(f"{side} level {str(level)[:40]} is not numeric") from None
        if not isinstance(price, str) or not (math.isfinite(value) and value > 0):
            raise BookMessageError(f"{side} level price {price!r} is not a positive number")
        if not (math.isfinite(size) and size >= 0):
            raise BookMessageError(f"{side} level size {size_text!r} is not a size")
        out.append((price, size))
    return out


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BookMessageError(f"{name} {value!r} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise BookMessageError(f"{name} {value!r} is not an integer") from None


class _Side:
    """One side of the book: exact price strings to sizes, and the prices sorted best first."""

    __slots__ = ("_order", "_sign", "_sizes")

    def __init__(self, *, descending: bool) -> None:
        # Bids are kept best (highest) first by sorting on the negated price, so both sides
        # share one ascending list and one bisect.
        self._sign = -1.0 if descending else 1.0
        self._sizes: dict[str, float] = {}
        self._order: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._sizes)

    def load(self, levels: Iterable[Level]) -> None:
        """Replace the side with a snapshot's levels (zero sizes, if any, are not levels)."""
        sizes = dict(levels)
        self._sizes = {price: size for price, size in sizes.items() if size != 0.0}
        self._order = sorted((self._sign * float(price), price) for price in self._sizes)

    def clear(self) -> None:
        self._sizes = {}
        self._order = []

    def update(self, levels: Iterable[Level]) -> int:
        """Apply a delta's levels; return how many deletes named a price not in the side."""
        missing = 0
        sizes = self._sizes
        for price, size in levels:
            if size == 0.0:
                if sizes.pop(price, None) is None:
                    missing += 1
                else:
                    entry = (self._sign * float(price), price)
                    del self._order[bisect_left(self._order, entry)]
            else:
                if price not in sizes:
                    insort(self._order, (self._sign * float(price), price))
                sizes[price] = size
        return missing

    def top(self, n: int | None) -> list[tuple[float, float]]:
        """The best ``n`` levels (all when ``n`` is None) as ``(price, size)``, best first."""
        order = self._order if n is None else self._order[:n]
        sign, sizes = self._sign, self._sizes
        return [(sign * key, sizes[price]) for key, price in order]

    def best(self) -> tuple[float, float] | None:
        if not self._order:
            return None
        key, price = self._order[0]
        return self._sign * key, self._sizes[price]


@dataclass(frozen=True, slots=True)
class BookFeatures:
    """Top-of-book features at one moment, the same whether live or replayed.

    ``mid``, ``spread``, ``spread_bp`` and ``imbalance`` are NaN when either side is empty: a
    one-sided book is a broken or halted market, and reporting its imbalance as ±1 would make it
    indistinguishable from a real, extreme imbalance. Price and size tuples always have exactly
    ``levels`` entries, NaN-padded, so every snapshot of features has the same shape.
    """

    ts: int  # epoch ms of the last message applied to the book
    mid: float
    spread: float
    spread_bp: float  # spread / mid * 1e4
    imbalance: float  # (Σ bid size − Σ ask size) / (Σ bid size + Σ ask size) over the levels
    bid_prices: tuple[float, ...]  # best first
    bid_sizes: tuple[float, ...]
    ask_prices: tuple[float, ...]  # best first
    ask_sizes: tuple[float, ...]

    @staticmethod
    def array_names(levels: int) -> tuple[str, ...]:
        """Names of :meth:`as_array`'s entries, in order (level numbers start at 1)."""
        per_level = ("ask_price", "ask_size", "bid_price", "bid_size")
        names = tuple(f"{name}_{i}" for i in range(1, levels + 1) for name in per_level)
        return (*names, "mid", "spread", "imbalance")

    def as_array(self) -> np.ndarray:
        """A float64 vector for models, in the order of :meth:`array_names`.

        Per level the order is FI-2010's (ask price, ask size, bid price, bid size, level 1
        first), so models and datasets built on that benchmark's layout read it unchanged;
        ``mid``, ``spread`` and ``imbalance`` follow.
        """
        per_level = np.column_stack(
            (self.ask_prices, self.ask_sizes, self.bid_prices, self.bid_sizes)
        )
        return np.concatenate((per_level.ravel(), (self.mid, self.spread, self.imbalance)))


def _padded(values: Iterable[float], length: int) -> tuple[float, ...]:
    values = tuple(values)
    return values + (_NAN,) * (length - len(values))


class OrderBook:
    """The book of one ``orderbook.{depth}.{symbol}`` subscription.

    ``update_id`` (Bybit's ``u``), ``seq`` and ``ts`` are those of the last applied message and
    are None until the first snapshot. ``needs_snapshot`` tells the client to resubscribe (see
    the module docstring for when and why); ``counters`` says what happened to every message.
    """

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.topic = f"orderbook.{depth}.{symbol}"
        self.update_id: int | None = None
        self.seq: int | None = None
        self.ts: int | None = None
        self.needs_snapshot = False
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._bids = _Side(descending=True)
        self._asks = _Side(descending=False)

    def apply(self, message: Mapping[str, Any]) -> bool:
        """Apply one decoded message; False when it was ignored (and counted) instead.

        Raises :class:`BookMessageError`, leaving the book untouched, for a message of another
        topic or one that is malformed (see the module docstring): the caller decides what
        the book is worth after that (the stream resets it and resubscribes).
        """
        topic = message.get("topic")
        if topic != self.topic:
            raise BookMessageError(f"{self.topic} book got a message of {topic!r}")
        kind = message.get("type")
        if kind not in ("snapshot", "delta"):
            raise BookMessageError(f"{self.topic}: unknown orderbook message type {kind!r}")
        data = message.get("data")
        if not isinstance(data, Mapping):
            raise BookMessageError(f"{self.topic}: data is not an object")
        update_id = _integer(data.get("u"), "u")
        seq = _integer(data.get("seq", update_id), "seq")
        ts = _integer(message.get("ts"), "ts")
        bids, asks = _levels(data.get("b"), "bid"), _levels(data.get("a"), "ask")
        if kind == "snapshot":
            self._bids.load(bids)
            self._asks.load(asks)
            self.needs_snapshot = False
            self.counters["snapshots"] += 1
            if update_id == 1:
                self.counters["restarts"] += 1
        else:
            if self.update_id is None or update_id <= self.update_id:
                self.counters["before_snapshot" if self.update_id is None else "stale"] += 1
                self.needs_snapshot = True
                return False
            if update_id != self.update_id + 1:
                self.counters["gaps"] += 1
                self.needs_snapshot = True
            missing = self._bids.update(bids) + self._asks.update(asks)
            self.counters["missing_deletes"] += missing
            self.counters["deltas"] += 1
        self.update_id = update_id
        self.seq = seq
        self.ts = ts
        return True

    def reset(self) -> None:
        """Forget every level (the book can no longer be trusted) until the next snapshot."""
        self._bids.clear()
        self._asks.clear()
        self.update_id = self.seq = self.ts = None
        self.needs_snapshot = True
        self.counters["resets"] += 1

    def bids(self, n: int | None = None) -> list[tuple[float, float]]:
        """The best ``n`` bids (all when None) as ``(price, size)``, highest price first."""
        return self._bids.top(n)

    def asks(self, n: int | None = None) -> list[tuple[float, float]]:
        """The best ``n`` asks (all when None) as ``(price, size)``, lowest price first."""
        return self._asks.top(n)

    def best_bid(self) -> tuple[float, float] | None:
        return self._bids.best()

    def best_ask(self) -> tuple[float, float] | None:
        return self._asks.best()

    def features(self, levels: int = 5) -> BookFeatures:
        """Top-``levels`` features of the current book.

        Raises RuntimeError before the first snapshot: an empty book that never had data has no
        time to stamp the features with, and a model must not mistake it for a real market.
        """
        if levels < 1:
            raise ValueError(f"levels must be at least 1, got {levels}")
        if self.ts is None:
            raise RuntimeError(f"{self.topic}: no snapshot applied yet")
        bids = self._bids.top(levels)
        asks = self._asks.top(levels)
        mid = spread = spread_bp = imbalance = _NAN
        if bids and asks:
            best_bid, best_ask = bids[0][0], asks[0][0]
            mid = (best_bid + best_ask) / 2.0
            spread = best_ask - best_bid
            spread_bp = spread / mid * 1e4
            bid_volume = math.fsum(size for _, size in bids)
            ask_volume = math.fsum(size for _, size in asks)
            imbalance = (bid_volume - ask_volume) / (bid_volume + ask_volume)
        return BookFeatures(
            ts=self.ts,
            mid=mid,
            spread=spread,
            spread_bp=spread_bp,
            imbalance=imbalance,
            bid_prices=_padded((price for price, _ in bids), levels),
            bid_sizes=_padded((size for _, size in bids), levels),
            ask_prices=_padded((price for price, _ in asks), levels),
            ask_sizes=_padded((size for _, size in asks), levels),
        )
