"""The public stream against the local exchange, in process: under faults it delivers every
symbol's closed bars complete, in order and exactly as the exchange's REST history has them,
keeps order books equal to the exchange's, and refuses to start on a bad symbol."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest

from bot.config import parse_settings
from bot.core.timeutil import HOUR_MS
from bot.exchange.server import ExchangeServer
from bot.venues.bybit.klines import Closed, Opened
from bot.venues.bybit.rest import BybitRest
from bot.venues.bybit.stream import PublicStream, SubscriptionError

SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
START = 1_706_745_600_000  # 2024-02-01


def settings(faults: dict, depth: int = 0, speed: float = 3600 / 0.02):
    venue = {"target": "local", "orderbook_depth": depth, "reconnect_initial_s": 0.05,
             "reconnect_max_s": 0.3, "request_timeout_s": 3.0}  # fmt: skip
    exchange = {"port": 0, "speed": speed, "start": str(START + 48 * HOUR_MS), "seed": 5,
                "bar_updates": 3, "source": "synthetic", "faults": faults}  # fmt: skip
    return parse_settings(
        {
            "engine": {"symbols": SYMBOLS, "interval": "1h"},
            "data": {"source": "synthetic", "synthetic_bars": 24 * 60, "synthetic_seed": 3},
            "strategies": [{"name": "equal_weight"}],
            "instruments": {s: {"qty_step": 0.01, "tick_size": 0.01} for s in SYMBOLS},
            "venue": venue,
            "exchange": exchange,
        },
        "test",
    )


async def stream_for(config, done, timeout: float = 180.0):
    """Run a stream against a fresh exchange until ``done(stream, closed, faults)`` holds (a
    generous deadline: a busy machine is slow); return it and what it emitted."""
    closed: dict[str, list] = {s: [] for s in SYMBOLS}
    opened: list[Opened] = []

    async def sink(event):
        if isinstance(event, Closed):
            closed[event.bar.symbol].append(event.bar)
        else:
            opened.append(event)

    last = START + 47 * HOUR_MS  # the stream starts after the bar before the market opens
    async with (
        ExchangeServer(config) as server,
        BybitRest(server.rest_url, max_retries=8, backoff_base_s=0.05) as rest,
    ):
        stream = PublicStream(
            ws_url=server.ws_url, rest=rest, symbols=SYMBOLS, interval="1h",
            last_closed=dict.fromkeys(SYMBOLS, last), sink=sink, venue=config.venue,
            catchup_s=1.0, seed=1,
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(stream.run(stop))
        deadline = time.monotonic() + timeout
        while not done(stream, closed, server.state.counters):
            assert time.monotonic() < deadline, "the stream did not get there in time"
            assert not task.done(), task
            await asyncio.sleep(0.05)
        stop.set()
        await task
        truth = {
            s: await rest.klines(s, "1h", last + HOUR_MS, closed[s][-1].start + HOUR_MS)
            for s in SYMBOLS
        }
        depth = config.venue.orderbook_depth
        books = {
            book.symbol: server.state.market.book(book.symbol, depth, book.update_id - 1)
            for book in stream.books.values()
        }
        faults = server.state.status()["faults"]
    return stream, closed, opened, truth, books, faults


async def test_complete_ordered_bars_through_faults():
    faults = {"drop_probability": 0.004, "duplicate_probability": 0.03, "reorder_window": 3,
              "malformed_probability": 0.01, "rate_limit_every": 7,
              "rate_limit_reset_ms": 50}  # fmt: skip

    def done(stream, closed, injected) -> bool:
        return (
            min(len(bars) for bars in closed.values()) > 120
            and injected.drops > 0 and injected.malformed > 0 and injected.duplicates > 0
            and stream.stats["reconnects"] > 0
        )  # fmt: skip

    stream, closed, opened, truth, _, injected = await stream_for(settings(faults), done)
    for symbol in SYMBOLS:
        bars = closed[symbol]
        assert len(bars) > 100
        expected = truth[symbol]
        assert [b.start for b in bars] == expected["start"].tolist()  # complete, in order, once
        np.testing.assert_array_equal([b.close for b in bars], expected["close"].to_numpy())
        np.testing.assert_array_equal([b.high for b in bars], expected["high"].to_numpy())
        starts = [o.start for o in opened if o.symbol == symbol]
        assert starts == sorted(set(starts))  # each candle's open announced at most once
    assert injected["drops"] > 0 and injected["malformed"] > 0 and injected["duplicates"] > 0
    assert stream.stats["malformed"] > 0 and stream.stats["reconnects"] > 0
    assert stream.tracker.counters["duplicate"] + stream.tracker.counters["out_of_order"] > 0


async def test_order_books_stay_equal_to_the_exchanges_and_resync_after_gaps(caplog):
    caplog.set_level(logging.INFO)
    faults = {"duplicate_probability": 0.02, "reorder_window": 2}

    def done(stream, closed, injected) -> bool:
        return stream.stats["book_resubscribes"] > 0 and min(map(len, closed.values())) > 60

    stream, _, _, _, expected, _ = await stream_for(settings(faults, depth=50), done)
    assert stream.stats["book_resubscribes"] > 0  # duplicates and reordering broke u
    for book in stream.books.values():
        symbol = book.symbol
        ours_bids = book.bids()
        assert len(ours_bids) == 50 and len(book.asks()) == 50
        theirs = expected[symbol]
        assert ours_bids == sorted(((float(p), float(q)) for p, q in theirs.bids.items()),
                                   reverse=True)  # fmt: skip
        assert book.asks() == sorted((float(p), float(q)) for p, q in theirs.asks.items())
        assert book.best_bid()[0] < book.best_ask()[0]


async def test_a_symbol_the_venue_does_not_serve_stops_the_stream_at_start():
    config = settings({})
    async with ExchangeServer(config) as server, BybitRest(server.rest_url) as rest:
        stream = PublicStream(
            ws_url=server.ws_url, rest=rest, symbols=["AAAUSDT", "NOPEUSDT"], interval="1h",
            last_closed={}, sink=lambda e: asyncio.sleep(0), venue=config.venue,
        )  # fmt: skip
        with pytest.raises(SubscriptionError, match=r"refused: error:handler not found"):
            await stream.run(asyncio.Event())


async def test_unexpected_topics_and_refused_acks_are_counted_not_fatal(caplog):
    config = settings({})
    stream = PublicStream(
        ws_url="ws://unused", rest=None, symbols=SYMBOLS, interval="1h",
        last_closed=dict.fromkeys(SYMBOLS), sink=lambda e: asyncio.sleep(0), venue=config.venue,
    )  # fmt: skip
    await stream._handle('{"topic": "tickers.AAAUSDT", "type": "snapshot", "data": {}}')
    await stream._handle('{"success": false, "ret_msg": "error:handler not found,topic:x",'
                         ' "op": "subscribe", "req_id": "9"}')  # fmt: skip
    await stream._handle("{not json")
    assert stream.stats["unknown_topic"] == 1
    assert stream.stats["failed_acks"] == 1
    assert stream.stats["malformed"] == 1
    assert "unexpected topic tickers.AAAUSDT" in caplog.text
