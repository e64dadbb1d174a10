"""A small signed Bybit v5 client for the private-side tests (aiohttp, our own signing).

It signs exactly the bytes it sends — the query string as written, the JSON body as encoded —
with timestamps from the wall clock the test gives it (a :class:`FakeWall` or ``time.time``),
and returns the parsed body with the HTTP status and headers, so a test sees everything the
server said.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from bot.exchange import ExchangeServer
from bot.exchange.private import PrivateExchange
from bot.exchange.tape import Tape
from tests.exchange.harness import HOUR, SYNTH_FIRST, FakeWall, make_settings

ACCOUNTS = [
    {"name": "main", "api_key": "testKEYmain0001", "api_secret": "testSECRETmain0001"},
    {
        "name": "ro",
        "api_key": "testKEYro0001",
        "api_secret": "testSECRETro0001",
        "read_only": True,
    },
]
KEY, SECRET = ACCOUNTS[0]["api_key"], ACCOUNTS[0]["api_secret"]


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def code(self) -> int:
        """The retCode (-1 for an answer without one: an HTTP error page)."""
        return int(self.body.get("retCode", -1))

    @property
    def result(self) -> dict[str, Any]:
        return self.body["result"]


class SignedClient:
    """Signed requests to ``base`` as the holder of ``key``/``secret``."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base: str,
        wall: Callable[[], float],
        key: str = KEY,
        secret: str = SECRET,
        recv_window: int = 5000,
    ) -> None:
        self.http, self.base, self.wall = http, base, wall
        self.key, self.secret, self.recv_window = key, secret, recv_window

    def headers(self, payload: str, timestamp: int | None = None) -> dict[str, str]:
        ts = str(math.floor(self.wall() * 1000) if timestamp is None else timestamp)
        window = str(self.recv_window)
        return {
            "X-BAPI-API-KEY": self.key,
            "X-BAPI-TIMESTAMP": ts,
            "X-BAPI-RECV-WINDOW": window,
            "X-BAPI-SIGN": hmac_hex(self.secret, ts + self.key + window + payload),
            "Content-Type": "application/json",
        }

    async def get(self, path: str, query: str = "", **headers: str) -> Reply:
        url = self.base + path + (f"?{query}" if query else "")
        sent = {**self.headers(query), **headers}
        async with self.http.get(aiohttp.client.URL(url, encoded=True), headers=sent) as r:
            return Reply(r.status, await r.json(content_type=None), dict(r.headers))

    async def post(self, path: str, body: dict[str, Any] | str, **headers: str) -> Reply:
        text = body if isinstance(body, str) else json.dumps(body)
        sent = {**self.headers(text), **headers}
        async with self.http.post(self.base + path, data=text.encode(), headers=sent) as r:
            payload = await r.json(content_type=None) if r.status == 200 else {}
            return Reply(r.status, payload, dict(r.headers))

    async def order(self, symbol: str, side: str, qty: str, link: str = "", **extra: Any) -> Reply:
        body: dict[str, Any] = {
            "category": "linear",
            "symbol": symbol,
            "side": side,
            "orderType": "Market",
            "qty": qty,
        }
        if link:
            body["orderLinkId"] = link
        body.update(extra)
        return await self.post("/v5/order/create", body)


@dataclass
class Venue:
    """A running exchange with accounts, a fake wall clock and a client of the main account."""

    server: ExchangeServer
    wall: FakeWall
    http: aiohttp.ClientSession
    client: SignedClient

    def as_(self, account: dict[str, Any]) -> SignedClient:
        return SignedClient(
            self.http, self.server.rest_url, self.wall, account["api_key"], account["api_secret"]
        )

    @property
    def private(self) -> PrivateExchange:
        return self.server.state.private

    def price(self, symbol: str) -> Decimal:
        return self.private.marks(self.server.state.clock.now())[symbol]

    async def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.server.rest_url + path
        async with self.http.post(url, data=json.dumps(body or {}).encode()) as r:
            return await r.json()


START = SYNTH_FIRST + 100 * HOUR + HOUR // 2  # half way into a bar


@asynccontextmanager
async def venue(
    accounts: list[dict[str, Any]] | None = None, tape: Tape | None = None, **exchange: Any
) -> AsyncIterator[Venue]:
    """An exchange whose market stands at :data:`START` until the test moves ``wall``."""
    exchange = {"speed": 3600.0, "start": str(START), "start_on": "serve", **exchange}
    settings = make_settings(accounts=ACCOUNTS if accounts is None else accounts, **exchange)
    wall = FakeWall()
    async with (
        ExchangeServer(settings, wall, tape=tape) as server,
        aiohttp.ClientSession() as http,
    ):
        yield Venue(server, wall, http, SignedClient(http, server.rest_url, wall))
