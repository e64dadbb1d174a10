"""Shared frames: each book and message is computed once however many connections stream it,
and every connection still receives exactly what the market functions make."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from bot.exchange import ExchangeServer
from bot.exchange.frames import Frames, Lru, dumps
from bot.exchange.market import Market
from bot.exchange.state import Stats
from tests.exchange.harness import (
    HOUR,
    SYNTH_FIRST,
    FakeWall,
    data_frames,
    make_settings,
    request_reply,
)
from tests.exchange.test_book import market

SPEED = 3600.0
K = 4
START = SYNTH_FIRST + 20 * HOUR + HOUR // 2 + 1  # just after update 2 of bar 20
CONNECTIONS = 12
TOPICS = ["orderbook.50.BTCUSDT", "kline.60.ETHUSDT", "orderbook.1.ETHUSDT"]


def uncached_book(m: Market, symbol: str, depth: int, g: int, base: int | None) -> str:
    book = m.book(symbol, depth, g)
    previous = None if base is None else m.book(symbol, depth, base)
    return dumps(m.book_message(symbol, depth, g, book, previous))


def test_book_messages_are_the_market_s_and_computed_once():
    m, stats = market(k=K), Stats()
    frames = Frames(m, stats)
    for _ in range(3):  # three connections asking for the same updates
        previous = None
        for g in range(5, 12):
            book, text = frames.book_update("BTCUSDT", 50, g, previous)
            assert text == uncached_book(m, "BTCUSDT", 50, g, None if previous is None else g - 1)
            assert book == m.book("BTCUSDT", 50, g)
            previous = (g, book)
    assert stats.books_computed == 7 and stats.frames_encoded == 1 + 6


def test_a_delta_is_keyed_by_its_base_update():
    m = market(k=K)
    frames = Frames(m, Stats())
    from_last = frames.book_update("BTCUSDT", 50, 9, (8, m.book("BTCUSDT", 50, 8)))[1]
    from_older = frames.book_update("BTCUSDT", 50, 9, (6, m.book("BTCUSDT", 50, 6)))[1]
    assert from_last == uncached_book(m, "BTCUSDT", 50, 9, 8)
    assert from_older == uncached_book(m, "BTCUSDT", 50, 9, 6) != from_last
    snapshot = frames.book_update("BTCUSDT", 50, 9, None)[1]
    assert snapshot == uncached_book(m, "BTCUSDT", 50, 9, None)


def test_kline_frames_are_the_market_s_and_encoded_once():
    m, stats = market(k=K), Stats()
    frames = Frames(m, stats)
    for _ in range(3):
        for g in range(0, 13):
            got = frames.klines("ETHUSDT", g)
            messages = m.kline_messages("ETHUSDT", g)
            assert [f.text for f in got] == [dumps(x) for x in messages]
            assert [f.confirm for f in got] == [x["data"][0]["confirm"] for x in messages]
    assert stats.frames_encoded == sum(len(m.kline_messages("ETHUSDT", g)) for g in range(13))


def test_capacity_zero_shares_nothing():
    m, stats = market(k=K), Stats()
    frames = Frames(m, stats, capacity=0)
    for _ in range(3):
        frames.book_update("BTCUSDT", 50, 5, None)
    assert stats.books_computed == 3 and stats.frames_encoded == 3


def test_lru_drops_the_least_recently_used():
    lru: Lru[int, str] = Lru(2)
    lru.put(1, "a")
    lru.put(2, "b")
    assert lru.get(1) == "a"
    lru.put(3, "c")
    assert lru.get(2) is None and lru.get(1) == "a" and lru.get(3) == "c"


def expected_stream(server: ExchangeServer, g0: int, last: int) -> list[str]:
    """What a connection subscribed to :data:`TOPICS` at update ``g0`` received before books
    were shared: each book and message made afresh by the market functions."""
    m = server.state.market
    out = [uncached_book(m, "BTCUSDT", 50, g0, None), uncached_book(m, "ETHUSDT", 1, g0, None)]
    for g in range(g0 + 1, last + 1):
        out += [dumps(x) for x in m.kline_messages("ETHUSDT", g)]
        out.append(uncached_book(m, "BTCUSDT", 50, g, g - 1))
        out.append(uncached_book(m, "ETHUSDT", 1, g, None))
    return out


async def test_many_connections_cost_one_book_per_update_and_get_identical_bytes():
    wall = FakeWall()
    settings = make_settings(speed=SPEED, start=str(START), bar_updates=K)
    async with ExchangeServer(settings, wall) as server, aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(server.ws_url) for _ in range(CONNECTIONS)]
        try:
            for ws in sockets:
                await request_reply(ws, op="subscribe", args=TOPICS)
            wall.t += 2.0  # two market hours: 2·K updates
            m = server.state.market
            g0, last = m.update_at(START), m.update_at(START + 2 * HOUR)
            assert last - g0 == 2 * K
            expected = expected_stream(server, g0, last)
            received = await asyncio.gather(*(data_frames(ws, len(expected)) for ws in sockets))
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
    assert all(frames == expected for frames in received)
    assert json.loads(expected[-2])["type"] == "delta"
    stats = server.state.stats
    assert stats.books_computed == 2 * (1 + 2 * K)  # two books, at g0 and each update
    assert stats.frames_encoded == len(expected)
    assert stats.book_messages == CONNECTIONS * 2 * (1 + 2 * K)
