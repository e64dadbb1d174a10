"""REST endpoints of the running exchange, driven by a fake wall clock."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
import pytest

from bot.exchange import ExchangeServer
from bot.exchange.tape import Tape
from bot.feeds.synthetic import synthetic_panel
from tests.exchange.harness import HOUR, SYNTH_FIRST, FakeWall, make_settings, sample_text

SPEED = 3600.0  # one market hour per wall second
START = SYNTH_FIRST + 100 * HOUR + HOUR // 2  # half way into bar 100
FUNDING_TIMES = SYNTH_FIRST + 8 * HOUR * np.arange(40, dtype=np.int64)


class Client:
    def __init__(self, server: ExchangeServer, http: aiohttp.ClientSession, wall: FakeWall):
        self.server, self.http, self.wall = server, http, wall

    async def get(self, path: str, **params: Any) -> tuple[aiohttp.ClientResponse, Any]:
        async with self.http.get(self.server.rest_url + path, params=params) as response:
            text = await response.text()
            return response, (json.loads(text) if text else None)

    async def result(self, path: str, **params: Any) -> Any:
        response, body = await self.get(path, **params)
        assert response.status == 200 and body["retCode"] == 0, body
        return body["result"]


@asynccontextmanager
async def running(wall: FakeWall, **exchange: Any) -> AsyncIterator[Client]:
    settings = make_settings(bars=300, speed=SPEED, start=str(START), start_on="serve", **exchange)
    panel = synthetic_panel(("BTCUSDT", "ETHUSDT"), "1h", 300, seed=7)
    rates = np.linspace(-0.0001, 0.0003, len(FUNDING_TIMES))
    tape = Tape(panel, "1h", {"BTCUSDT": (FUNDING_TIMES, rates)})
    async with ExchangeServer(settings, wall, tape) as server, aiohttp.ClientSession() as http:
        yield Client(server, http, wall)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with running(FakeWall()) as c:
        yield c


async def test_time_is_market_time_moving_at_speed(client: Client):
    _, body = await client.get("/v5/market/time")
    assert body["time"] == START
    assert body["result"] == {"timeSecond": str(START // 1000), "timeNano": str(START * 10**6)}
    client.wall.t += 2.5
    _, body = await client.get("/v5/market/time")
    assert body["time"] == START + int(2.5 * SPEED * 1000)
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}


async def test_kline_pages_backwards_newest_first(client: Client):
    common = {"category": "linear", "symbol": "BTCUSDT", "interval": "60"}
    first = await client.result("/v5/market/kline", **common, limit=5)
    assert first["symbol"] == "BTCUSDT" and first["category"] == "linear"
    starts = [int(r[0]) for r in first["list"]]
    assert starts == [SYNTH_FIRST + n * HOUR for n in range(100, 95, -1)]
    assert all(isinstance(x, str) for row in first["list"] for x in row)
    default = await client.result("/v5/market/kline", **common)
    assert len(default["list"]) == 101  # bars 0..100 (< the default limit of 200)
    collected, end = [], None
    while True:
        paging = {"limit": 1000} if end is None else {"limit": 1000, "end": end}
        page = (await client.result("/v5/market/kline", **common, **paging))["list"]
        if not page:
            break
        collected += page
        end = int(page[-1][0]) - 1
    assert [int(r[0]) for r in collected] == [SYNTH_FIRST + n * HOUR for n in range(100, -1, -1)]
    tape = client.server.state.market.tape
    for row in collected[1:]:
        bar = tape.bar(0, (int(row[0]) - SYNTH_FIRST) // HOUR)
        assert [float(x) for x in row[1:6]] == list(bar[:5])
    forming = collected[0]
    bar = tape.bar(0, 100)
    assert float(forming[1]) == bar.open and float(forming[2]) <= bar.high
    assert float(forming[5]) < bar.volume
    client.wall.t += 0.5  # the forming bar closes: it is final now, the next one opened
    rows = (await client.result("/v5/market/kline", **common, limit=2))["list"]
    assert [float(x) for x in rows[1][1:6]] == list(bar[:5])


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"symbol": "XRPUSDT", "interval": "60"}, "XRPUSDT"),
        ({"interval": "60"}, "symbol"),
        ({"symbol": "BTCUSDT", "interval": "5"}, "interval"),
        ({"symbol": "BTCUSDT"}, "interval"),
        ({"symbol": "BTCUSDT", "interval": "60", "limit": "1001"}, "limit"),
        ({"symbol": "BTCUSDT", "interval": "60", "limit": "0"}, "limit"),
        ({"symbol": "BTCUSDT", "interval": "60", "end": "yesterday"}, "end"),
        ({"symbol": "BTCUSDT", "interval": "60", "category": "spot"}, "category"),
    ],
)
async def test_kline_errors_are_http_200_with_10001(client: Client, params, problem: str):
    response, body = await client.get("/v5/market/kline", **params)
    assert response.status == 200
    assert body["retCode"] == 10001 and problem in body["retMsg"]
    assert body["result"] == {} and body["retExtInfo"] == {} and body["time"] == START


async def test_instruments_look_like_bybit_s(client: Client):
    sample_doc = sample_text("rest_market_instruments_info_1.jsonc")
    body = sample_doc[sample_doc.index("{") :]
    sample = json.JSONDecoder().raw_decode(body)[0]["result"]["list"][0]
    result = await client.result("/v5/market/instruments-info", category="linear", symbol="BTCUSDT")
    assert result["category"] == "linear" and len(result["list"]) == 1
    info = result["list"][0]
    assert set(info) == set(sample) - {"symbolId"}
    assert info["priceFilter"]["tickSize"] == "0.1"
    assert info["lotSizeFilter"]["qtyStep"] == "0.001"
    assert info["lotSizeFilter"]["minOrderQty"] == "0.001"
    assert info["lotSizeFilter"]["minNotionalValue"] == "5"
    assert set(info["lotSizeFilter"]) == set(sample["lotSizeFilter"])
    assert info["fundingInterval"] == 480 and info["status"] == "Trading"
    everything = await client.result("/v5/market/instruments-info", category="linear")
    assert [i["symbol"] for i in everything["list"]] == ["BTCUSDT", "ETHUSDT"]
    unknown = await client.result("/v5/market/instruments-info", category="linear", symbol="X")
    assert unknown["list"] == []


async def test_funding_history_serves_rates_settled_by_now(client: Client):
    result = await client.result("/v5/market/funding/history", category="linear", symbol="BTCUSDT")
    times = [int(r["fundingRateTimestamp"]) for r in result["list"]]
    assert times == [t for t in FUNDING_TIMES.tolist() if t <= START][::-1]
    window = await client.result(
        "/v5/market/funding/history",
        category="linear",
        symbol="BTCUSDT",
        startTime=FUNDING_TIMES[2],
        endTime=FUNDING_TIMES[4],
    )
    got = [int(r["fundingRateTimestamp"]) for r in window["list"]]
    assert got == FUNDING_TIMES[4:1:-1].tolist()
    _, body = await client.get(
        "/v5/market/funding/history", category="linear", symbol="BTCUSDT", startTime=1
    )
    assert body["retCode"] == 10001 and "endTime" in body["retMsg"]
    none = await client.result("/v5/market/funding/history", category="linear", symbol="ETHUSDT")
    assert none["list"] == []


async def test_every_response_has_the_rate_limit_headers(client: Client):
    for path in ("/v5/market/time", "/v5/market/kline?symbol=NOPE&interval=60"):
        async with client.http.get(client.server.rest_url + path) as response:
            headers = response.headers
        assert headers["X-Bapi-Limit"] == "600"
        assert 0 <= int(headers["X-Bapi-Limit-Status"]) < 600
        assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) >= client.wall.t * 1000


async def test_rate_limit_fault_answers_10006_with_a_reset_ahead_on_the_wall_clock():
    async with running(FakeWall(time.time()), faults={"rate_limit_every": 3}) as client:
        codes, resets = [], []
        for _ in range(9):
            response, body = await client.get("/v5/market/time")
            assert response.status == 200
            codes.append(body["retCode"])
            resets.append(int(response.headers["X-Bapi-Limit-Reset-Timestamp"]))
        assert codes == [0, 0, 10006] * 3
        assert body["retMsg"] == "Too many visits" and body["time"] == START  # market time
        assert resets[2] == int(client.wall.t * 1000) + 300  # wall time, 300 ms ahead
        assert response.headers["X-Bapi-Limit-Status"] == "0"
        status = (await client.get("/_local/status"))[1]
        assert status["faults"]["rate_limited"] == 3


async def test_http_error_fault_is_a_bare_403():
    async with running(FakeWall(), faults={"http_error_every": 2}) as client:
        statuses = []
        for _ in range(4):
            async with client.http.get(client.server.rest_url + "/v5/market/time") as response:
                statuses.append(response.status)
                if response.status == 403:
                    assert await response.read() == b""
                    assert "X-Bapi-Limit" in response.headers
        assert statuses == [200, 403, 200, 403]
        assert client.server.state.counters.http_errors == 2


async def test_status_reports_the_market_and_traffic(client: Client):
    await client.result("/v5/market/kline", symbol="BTCUSDT", interval="60", limit=3)
    _, status = await client.get("/_local/status")
    assert status["market_now"] == START and status["speed"] == SPEED
    assert status["port"] == client.server.port
    assert status["bars_closed"] == 2 * 100
    assert status["served"]["kline_rows"] == 3 and status["served"]["rest_requests"] == 1
    assert status["connections"] == {"open": 0, "total": 0, "refused": 0, "limit": 500}
    assert status["start_on"] == "serve" and not status["held"] and not status["paused"]
    assert set(status["faults"]) >= {"drops", "duplicates", "reordered", "malformed"}
