"""Market time: held until the first subscriber, paused and resumed by hand, never running away
from a client that is slow to start (fake wall clock: the test places every instant)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from bot.exchange import ExchangeServer
from bot.exchange.clock import MarketClock
from bot.exchange.frames import dumps
from tests.exchange.harness import (
    HOUR,
    SYNTH_FIRST,
    FakeWall,
    data_frames,
    make_settings,
    request_reply,
)

SPEED = 3600.0  # a market hour per wall second
K = 4
START = SYNTH_FIRST + 100 * HOUR + HOUR // 3  # between updates 1 and 2 of bar 100


def test_a_new_clock_is_held_at_its_start_until_started():
    wall = FakeWall()
    clock = MarketClock(START, SPEED, wall)
    wall.t += 10.0
    assert clock.held and not clock.running and clock.now() == START
    assert clock.wall_seconds_until(START + 1) == math.inf  # a producer naps, never spins
    assert clock.wall_seconds_until(START) == 0.0
    clock.start()
    assert clock.now() == START  # the wait before starting costs no market time
    wall.t += 2.5
    assert clock.now() == START + 2.5 * HOUR
    assert clock.wall_seconds_until(START + 3 * HOUR) == pytest.approx(0.5)


def test_starting_a_running_clock_changes_nothing():
    wall = FakeWall()
    clock = MarketClock(START, SPEED, wall)
    clock.start()
    wall.t += 1.0
    clock.start()
    clock.resume()
    wall.t += 1.0
    assert clock.now() == START + 2 * HOUR


def test_pause_freezes_market_time_and_resume_continues_from_there():
    wall = FakeWall()
    clock = MarketClock(START, SPEED, wall)
    clock.start()
    wall.t += 1.0
    clock.pause()
    clock.pause()
    wall.t += 100.0
    assert clock.paused and clock.now() == START + HOUR
    assert clock.wall_seconds_until(START + 2 * HOUR) == math.inf
    clock.resume()
    assert clock.now() == START + HOUR
    wall.t += 0.5
    assert clock.now() == START + HOUR + HOUR // 2


def test_hold_and_pause_are_independent():
    wall = FakeWall()
    clock = MarketClock(START, SPEED, wall)
    clock.pause()
    clock.start()  # started, but still paused
    wall.t += 5.0
    assert not clock.held and clock.paused and clock.now() == START
    clock.resume()
    wall.t += 1.0
    assert clock.now() == START + HOUR


def test_speed_must_be_positive():
    with pytest.raises(ValueError, match="speed"):
        MarketClock(START, 0.0)


@asynccontextmanager
async def exchange(**options: Any) -> AsyncIterator[tuple[ExchangeServer, FakeWall, Any]]:
    wall = FakeWall()
    settings = make_settings(speed=SPEED, start=str(START), bar_updates=K, **options)
    async with ExchangeServer(settings, wall) as server, aiohttp.ClientSession() as http:
        yield server, wall, http


async def get(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url) as response:
        return await response.json()


async def post(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.post(url) as response:
        assert response.status == 200
        return await response.json()


async def market_time(server: ExchangeServer, http: aiohttp.ClientSession) -> int:
    return (await get(http, server.rest_url + "/v5/market/time"))["time"]


def expected_klines(server: ExchangeServer, symbol: str, first: int, last: int) -> list[str]:
    """The kline pushes of updates ``first..last``, as the market functions make them."""
    market = server.state.market
    return [dumps(m) for g in range(first, last + 1) for m in market.kline_messages(symbol, g)]


async def test_the_market_waits_for_its_first_subscriber():
    async with exchange() as (server, wall, http):
        status = server.rest_url + "/_local/status"
        wall.t += 30.0  # a client taking half a minute to start (loading models, say)
        assert await market_time(server, http) == START
        assert (await get(http, status))["held"] is True
        async with http.ws_connect(server.ws_url) as ws:
            await request_reply(ws, op="ping")
            await request_reply(ws, op="subscribe", args=["kline.60.NOPEUSDT"])  # refused
            assert (await get(http, status))["held"] is True
            await request_reply(ws, op="subscribe", args=["kline.60.BTCUSDT"])
            assert (await get(http, status))["held"] is False
            assert await market_time(server, http) == START
            wall.t += 1.0
            assert await market_time(server, http) == START + HOUR
            market = server.state.market
            first, last = market.update_at(START) + 1, market.update_at(START + HOUR)
            expected = expected_klines(server, "BTCUSDT", first, last)
            assert await data_frames(ws, len(expected)) == expected  # nothing was skipped


async def test_start_on_serve_runs_the_market_from_the_start_of_serving():
    async with exchange(start_on="serve") as (server, wall, http):
        wall.t += 2.0
        assert await market_time(server, http) == START + 2 * HOUR
        status = await get(http, server.rest_url + "/_local/status")
        assert status["start_on"] == "serve" and status["held"] is False


async def test_local_start_starts_a_held_market_without_a_subscriber():
    async with exchange() as (server, wall, http):
        wall.t += 5.0
        status = await post(http, server.rest_url + "/_local/start")
        assert status["held"] is False and status["market_now"] == START
        wall.t += 1.0
        assert await market_time(server, http) == START + HOUR
        assert (await post(http, server.rest_url + "/_local/start"))["market_now"] == START + HOUR


async def test_pause_stops_rest_and_streams_and_resume_continues_where_it_stood():
    async with exchange() as (server, wall, http):
        market = server.state.market
        async with http.ws_connect(server.ws_url) as ws:
            await request_reply(ws, op="subscribe", args=["kline.60.BTCUSDT"])
            wall.t += 1.0
            paused = await post(http, server.rest_url + "/_local/pause")
            assert paused["paused"] is True and paused["market_now"] == START + HOUR
            wall.t += 3.0  # three market hours that never happen
            assert await market_time(server, http) == START + HOUR
            assert (await request_reply(ws, op="ping"))[
                "ret_msg"
            ] == "pong"  # the connection is open
            resumed = await post(http, server.rest_url + "/_local/resume")
            assert resumed["paused"] is False and resumed["market_now"] == START + HOUR
            wall.t += 1.0
            assert await market_time(server, http) == START + 2 * HOUR
            first, last = market.update_at(START) + 1, market.update_at(START + 2 * HOUR)
            expected = expected_klines(server, "BTCUSDT", first, last)
            assert await data_frames(ws, len(expected)) == expected
        status = await get(http, server.rest_url + "/_local/status")
        assert status["market_now"] == START + 2 * HOUR and status["paused"] is False
