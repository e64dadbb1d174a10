"""A hostile peer: a websocket server of our own between the daemon and the local exchange.

It relays the exchange's real public stream both ways and, deterministically, mixes in what an
attacker or a broken network hop can send: frames that are not JSON or not Bybit messages,
order-book frames without ``type`` or with ``"u": "zz"``, klines with prices of 0, ``inf`` or
1e300, high below low, negative volume, a ``kline.1.X`` close taken for the hour, a close dated
years ahead, and real closes whose values it *forges* (plausible, but not what the venue
printed). REST is not proxied: the daemon's REST goes straight to the exchange, the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable

import websockets

HOUR_MS = 3_600_000
FAR_AHEAD_MS = 5_000 * HOUR_MS


def kline_frame(symbol: str, start: int, values: list, confirm: bool, code: str = "60") -> str:
    o, h, lo, c, v = (str(x) for x in values)
    step = 60_000 if code == "1" else HOUR_MS
    item = {"start": start, "end": start + step - 1, "interval": code, "open": o, "high": h,
            "low": lo, "close": c, "volume": v, "turnover": "1000", "confirm": confirm,
            "timestamp": start + step}  # fmt: skip
    return json.dumps({"topic": f"kline.{code}.{symbol}", "data": [item], "ts": start + step,
                       "type": "snapshot"})  # fmt: skip


def book_frame(symbol: str, depth: int, drop_type: bool, u: object) -> str:
    message = {"topic": f"orderbook.{depth}.{symbol}", "type": "delta", "ts": 1,
               "data": {"s": symbol, "b": [["1.0", "2"]], "a": [], "u": u, "seq": 1}}  # fmt: skip
    if drop_type:
        del message["type"]
    return json.dumps(message)


def hostile_frames(symbol: str, depth: int, start: int) -> list[str]:
    """Frames no daemon may take as market data (``start``: a bar start near now)."""
    good = [100.0, 101.0, 99.0, 100.5, 3.0]
    return [
        "{not json at all",
        "[1, 2, 3]",
        json.dumps({"topic": 5, "data": []}),
        json.dumps({"topic": f"kline.60.{symbol}", "data": "oops"}),
        "[" * 5000 + "]" * 5000,
        book_frame(symbol, depth, drop_type=True, u=7),
        book_frame(symbol, depth, drop_type=False, u="zz"),
        kline_frame(symbol, start, [0, 101.0, 0, 100.5, 3.0], confirm=True),
        kline_frame(symbol, start, [-5.0, 101.0, -6.0, 100.5, 3.0], confirm=True),
        kline_frame(symbol, start, ["inf", "inf", 99.0, 100.5, 3.0], confirm=True),
        kline_frame(symbol, start, [100.0, 1e300, 99.0, 100.5, 3.0], confirm=True),
        kline_frame(symbol, start, [100.0, 98.0, 99.0, 100.5, 3.0], confirm=True),
        kline_frame(symbol, start, [100.0, 101.0, 99.0, 100.5, -3.0], confirm=True),
        kline_frame(symbol, start, good, confirm=True, code="1"),  # a 1m close on the hour
        kline_frame(symbol, start + FAR_AHEAD_MS, good, confirm=True),  # years ahead
    ]


class HostileProxy:
    """Relays ``upstream`` (the exchange's websocket) and attacks every ``every`` messages.

    ``forge(message) -> message | None`` may rewrite a real frame (None: relay unchanged).
    Runs its own event loop in a thread; ``counts`` says what it did."""

    def __init__(
        self,
        upstream: str,
        symbols: list[str],
        depth: int,
        every: int,
        forge: Callable[[dict], dict | None],
    ) -> None:
        self.upstream = upstream
        self.symbols = symbols
        self.depth = depth
        self.every = every
        self.forge = forge
        self.counts: Counter[str] = Counter()
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._cycle = itertools.count()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v5/public/linear"

    def __enter__(self) -> HostileProxy:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the hostile proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with websockets.serve(self._relay, "127.0.0.1", 0, max_size=2**24) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _relay(self, client) -> None:
        try:
            async with websockets.connect(self.upstream, max_size=2**24) as exchange:
                up = asyncio.create_task(self._pipe(client, exchange, attack=False))
                down = asyncio.create_task(self._pipe(exchange, client, attack=True))
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                for task in (up, down):
                    task.cancel()
        except (OSError, websockets.WebSocketException):
            return  # the exchange is down (an outage): the client reconnects

    async def _pipe(self, source, sink, attack: bool) -> None:
        with contextlib.suppress(websockets.WebSocketException):
            async for received in source:
                frame = self._tamper(received) if attack else received
                if attack:
                    for extra in self._attacks(frame):
                        await sink.send(extra)
                await sink.send(frame)

    def _tamper(self, raw: str) -> str:
        message = json.loads(raw)
        forged = self.forge(message)
        if forged is None:
            return raw
        self.counts["forged"] += 1
        return json.dumps(forged)

    def _attacks(self, raw: str) -> list[str]:
        self.counts["relayed"] += 1
        if self.counts["relayed"] % self.every:
            return []
        message = json.loads(raw)
        data = message.get("data")
        if not (isinstance(data, list) and data and "start" in data[0]):
            return []
        k = next(self._cycle)
        symbol = self.symbols[k % len(self.symbols)]
        frames = hostile_frames(symbol, self.depth, int(data[0]["start"]))
        self.counts["hostile"] += 1
        return [frames[k % len(frames)]]
