"""The connection cap: upgrades beyond ``exchange.max_connections`` are refused with HTTP 429
and a body naming the limit, counted in ``/_local/status``; a freed slot admits again."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any

import aiohttp
import pytest

from bot.exchange import ExchangeServer
from tests.exchange.harness import FakeWall, make_settings, request_reply

LIMIT = 3


async def status(http: aiohttp.ClientSession, server: ExchangeServer) -> dict[str, Any]:
    async with http.get(server.rest_url + "/_local/status") as response:
        return (await response.json())["connections"]


async def upgrade(http: aiohttp.ClientSession, server: ExchangeServer) -> tuple[int, str]:
    """A bare websocket upgrade request: the status and body of the answer."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    async with http.get(server.ws_url.replace("ws://", "http://"), headers=headers) as response:
        return response.status, await response.text()


async def test_upgrades_beyond_the_cap_get_429_naming_the_limit():
    settings = make_settings(max_connections=LIMIT)
    async with ExchangeServer(settings, FakeWall()) as server, aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(server.ws_url) for _ in range(LIMIT)]
        for ws in sockets:
            assert (await request_reply(ws, op="ping"))["ret_msg"] == "pong"
        assert await upgrade(http, server) == (429, f"too many connections: limit {LIMIT}")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(server.ws_url)
        assert refused.value.status == 429
        assert await status(http, server) == {
            "open": LIMIT,
            "total": LIMIT,
            "refused": 2,
            "limit": LIMIT,
        }
        assert all(not ws.closed for ws in sockets)  # the admitted ones are untouched

        await sockets.pop().close()
        deadline = time.monotonic() + 10
        while (await status(http, server))["open"] == LIMIT:
            assert time.monotonic() < deadline, "the closed connection never freed its slot"
            await asyncio.sleep(0.02)
        async with http.ws_connect(server.ws_url) as ws:
            assert (await request_reply(ws, op="ping"))["ret_msg"] == "pong"
            connections = await status(http, server)
            assert connections["open"] == LIMIT and connections["total"] == LIMIT + 1
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_simultaneous_upgrades_never_exceed_the_cap():
    settings = make_settings(max_connections=LIMIT)
    async with ExchangeServer(settings, FakeWall()) as server, aiohttp.ClientSession() as http:
        attempts = [http.ws_connect(server.ws_url) for _ in range(3 * LIMIT)]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        admitted = [r for r in results if isinstance(r, aiohttp.ClientWebSocketResponse)]
        refused = [r for r in results if isinstance(r, aiohttp.WSServerHandshakeError)]
        assert len(admitted) == LIMIT and len(refused) == 2 * LIMIT
        assert all(r.status == 429 for r in refused)
        await asyncio.gather(*(ws.close() for ws in admitted))


async def test_the_default_cap_is_500():
    async with ExchangeServer(make_settings(), FakeWall()) as server:
        assert server.state.status()["connections"]["limit"] == 500
