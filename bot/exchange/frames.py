"""Data messages encoded once and shared by every connection that streams them.

Hundreds of connections subscribed to one order book would otherwise each compute the same
book, diff it and JSON-encode the same delta at every update — enough work to starve REST.
Here each book (symbol, depth, update) is computed once, each message (the snapshot at ``g``, or
the delta from the book a connection last had at update ``base`` to ``g``) is encoded once, and
the kline pushes of (symbol, update) likewise. Keying deltas by their base, not by ``g`` alone,
keeps them right for a connection whose last book is not ``g - 1``. The caches are small LRUs:
a connection far behind the others misses them and recomputes, with identical results, because
the market is a pure function of the update. Faults still apply per connection, later, in each
one's :class:`~bot.exchange.outbox.Outbox`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import orjson

from bot.exchange.book import Book
from bot.exchange.market import Market

#: Entries kept per cache: a few updates of every (symbol, depth) in use, with room for
#: connections a burst or two behind the others.
CAPACITY = 512

K = TypeVar("K")
V = TypeVar("V")


class Counters(Protocol):
    """Where the work done is counted (the exchange's traffic stats)."""

    books_computed: int
    frames_encoded: int


@dataclass(frozen=True, slots=True)
class KlineFrame:
    text: str
    confirm: bool


def dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


class Lru(Generic[K, V]):
    """At most ``capacity`` entries, the least recently used dropped first (0: keeps none)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


class Frames:
    """Order-book and kline messages of a :class:`Market`, each computed and encoded once.

    ``capacity`` 0 shares nothing: every connection computes its own, as each did before
    (kept for measuring what sharing saves)."""

    def __init__(self, market: Market, counters: Counters, capacity: int = CAPACITY) -> None:
        self.market = market
        self.counters = counters
        self._books: Lru[tuple[str, int, int], Book] = Lru(capacity)
        self._books_text: Lru[tuple[str, int, int, int | None], str] = Lru(capacity)
        self._klines: Lru[tuple[str, int], tuple[KlineFrame, ...]] = Lru(capacity)

    def book(self, symbol: str, depth: int, g: int) -> Book:
        key = (symbol, depth, g)
        book = self._books.get(key)
        if book is None:
            book = self.market.book(symbol, depth, g)
            self.counters.books_computed += 1
            self._books.put(key, book)
        return book

    def book_update(
        self, symbol: str, depth: int, g: int, previous: tuple[int, Book] | None
    ) -> tuple[Book, str]:
        """The book at ``g`` and its message: a snapshot (``previous`` None) or the delta from
        ``previous`` = (its update, the book a connection last had then)."""
        book = self.book(symbol, depth, g)
        key = (symbol, depth, g, None if previous is None else previous[0])
        text = self._books_text.get(key)
        if text is None:
            base = None if previous is None else previous[1]
            text = dumps(self.market.book_message(symbol, depth, g, book, base))
            self.counters.frames_encoded += 1
            self._books_text.put(key, text)
        return book, text

    def klines(self, symbol: str, g: int) -> tuple[KlineFrame, ...]:
        """The kline pushes of ``symbol`` at update ``g`` (:meth:`Market.kline_messages`)."""
        frames = self._klines.get((symbol, g))
        if frames is None:
            messages = self.market.kline_messages(symbol, g)
            frames = tuple(KlineFrame(dumps(m), m["data"][0]["confirm"]) for m in messages)
            self.counters.frames_encoded += len(frames)
            self._klines.put((symbol, g), frames)
        return frames
