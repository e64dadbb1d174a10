"""The synthetic order book: exact depth, Bybit's message shape, and deltas a strict client
(deletes must hit a present level, by string) can apply forever."""

from __future__ import annotations

import json

import pytest

from bot.exchange.book import book_at, diff_side
from bot.exchange.market import Market
from bot.exchange.numfmt import Step
from bot.exchange.tape import Tape
from bot.feeds.synthetic import synthetic_panel
from tests.exchange.harness import make_settings, sample_text

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def market(k: int = 4, bars: int = 30) -> Market:
    panel = synthetic_panel(SYMBOLS, "1h", bars, seed=5)
    return Market(Tape(panel, "1h"), make_settings(SYMBOLS).instruments, seed=7, bar_updates=k)


def apply_strictly(book: dict[str, dict[str, str]], message: dict) -> None:
    """Apply a snapshot or delta the way pybit does, failing where pybit would crash."""
    data = message["data"]
    if message["type"] == "snapshot":
        book["b"] = dict(data["b"])
        book["a"] = dict(data["a"])
        return
    for side in ("b", "a"):
        for price, size in data[side]:
            if float(size) == 0:
                assert price in book[side], f"delete of absent level {price}"
                del book[side][price]
            else:
                book[side][price] = size


@pytest.mark.parametrize("depth", [50, 200, 1000])
def test_deltas_rebuild_every_book_exactly(depth: int):
    m = market()
    g0 = 5
    first = m.book_message("ETHUSDT", depth, g0, m.book("ETHUSDT", depth, g0), None)
    book: dict[str, dict[str, str]] = {}
    apply_strictly(book, first)
    previous, u = m.book("ETHUSDT", depth, g0), first["data"]["u"]
    for g in range(g0 + 1, m.last_update + 1):
        current = m.book("ETHUSDT", depth, g)
        message = m.book_message("ETHUSDT", depth, g, current, previous)
        assert message["type"] == "delta" and message["data"]["u"] == u + 1
        u = message["data"]["u"]
        apply_strictly(book, message)
        assert book["b"] == current.bids and book["a"] == current.asks
        assert len(book["b"]) == len(book["a"]) == depth
        previous = current


def test_book_has_depth_levels_a_side_around_the_price():
    m = market()
    for g in range(0, m.last_update, 7):
        price = m.price("BTCUSDT", g)
        book = m.book("BTCUSDT", 50, g)
        bids = [float(p) for p in book.bids]
        asks = [float(p) for p in book.asks]
        assert len(bids) == len(asks) == 50
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert bids[0] < asks[0] and bids[0] <= price + 0.05 and asks[0] >= price - 0.05
        assert all(p.count(".") == 1 and len(p.split(".")[1]) == 1 for p in book.bids)
        assert all(float(s) > 0 and len(s.split(".")[1]) == 3 for s in book.asks.values())


def test_deeper_books_extend_shallower_ones():
    m = market()
    deep, shallow = m.book("BTCUSDT", 200, 9), m.book("BTCUSDT", 50, 9)
    assert list(deep.bids.items())[:50] == list(shallow.bids.items())
    assert list(deep.asks.items())[:50] == list(shallow.asks.items())


def test_books_are_deterministic_and_keep_changing():
    m = market()
    assert m.book("BTCUSDT", 50, 10) == m.book("BTCUSDT", 50, 10)
    assert m.book("BTCUSDT", 50, 10) != m.book("BTCUSDT", 50, 11)
    other = Market(m.tape, make_settings(SYMBOLS).instruments, seed=8, bar_updates=4)
    assert other.book("BTCUSDT", 50, 10) != m.book("BTCUSDT", 50, 10)


def test_a_price_near_zero_keeps_full_depth():
    book = book_at(0.3, 50, 0, (1,), Step.of(0.1), Step.of(1.0))
    assert len(book.bids) == len(book.asks) == 50 and min(map(float, book.bids)) > 0


def test_diff_deletes_only_present_prices_best_first():
    old = {"10.0": "1", "9.9": "2", "9.8": "3"}
    new = {"10.1": "5", "10.0": "1", "9.9": "4"}
    assert diff_side(old, new, descending=True) == [["10.1", "5"], ["9.9", "4"], ["9.8", "0"]]


def test_messages_have_bybit_s_shape():
    sample = json.loads(sample_text("ws_public_orderbook_2.jsonc"))
    m = market()
    delta = m.book_message("BTCUSDT", 50, 3, m.book("BTCUSDT", 50, 3), m.book("BTCUSDT", 50, 2))
    snapshot = m.book_message("BTCUSDT", 50, 3, m.book("BTCUSDT", 50, 3), None)
    for msg in (delta, snapshot):
        assert set(msg) == set(sample) and set(msg["data"]) == set(sample["data"])
        assert msg["topic"] == "orderbook.50.BTCUSDT" and msg["data"]["s"] == "BTCUSDT"
        assert msg["ts"] == msg["cts"] == m.update_time(3) and msg["data"]["u"] == 4
        assert all(isinstance(x, str) for level in msg["data"]["b"] for x in level)
    assert snapshot["type"] == "snapshot" and delta["type"] == sample["type"] == "delta"
