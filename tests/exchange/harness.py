"""Helpers for the exchange tests: settings, a fake wall clock, a server in its own thread.

pybit is synchronous (blocking HTTP, websocket threads, ``time.sleep``), so its tests run the
exchange on an event loop in a background thread and talk to it like any remote server.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.config import Settings, parse_settings
from bot.exchange import ExchangeServer
from tests.conftest import real_data_dir

INSTRUMENTS = {
    "BTCUSDT": {"qty_step": 0.001, "min_order_qty": 0.001, "min_notional": 5.0, "tick_size": 0.1},
    "ETHUSDT": {"qty_step": 0.01, "min_order_qty": 0.01, "min_notional": 5.0, "tick_size": 0.01},
}
HOUR = 3_600_000
SYNTH_FIRST = 1_704_067_200_000  # 2024-01-01, where synthetic bars start


def make_settings(
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    source: str = "synthetic",
    bars: int = 300,
    top: dict[str, Any] | None = None,
    **exchange: Any,
) -> Settings:
    """Settings for an exchange on a free local port; ``exchange`` keys override
    ``[exchange]`` (``faults`` as a dict), ``top`` other sections. CSV bars are the real ones
    unless ``top`` names a ``data.path``."""
    data: dict[str, Any] = {"synthetic_bars": bars, "path": str(real_linear_dir())}
    return parse_settings(
        {
            "engine": {"symbols": list(symbols), "interval": "1h"},
            "data": data,
            "exchange": {"host": "127.0.0.1", "port": 0, "source": source, **exchange},
            "strategies": [{"name": "equal_weight"}],
            "instruments": {s: INSTRUMENTS[s] for s in symbols},
            **(top or {}),
        }
    )


def real_linear_dir() -> Path:
    return real_data_dir() / "bybit-linear"


MESSAGES = Path(__file__).resolve().parents[2].parent / "shared" / "bybit-messages"


def sample_text(name: str) -> str:
    """A documented Bybit payload from ``../shared/bybit-messages`` (skips when absent)."""
    path = MESSAGES / name
    if not path.exists():
        pytest.skip(f"Bybit message samples not found at {MESSAGES}")
    return path.read_text()


class FakeWall:
    """A wall clock the test moves by hand (seconds, like ``time.time``)."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@contextmanager
def server_thread(settings: Settings) -> Iterator[ExchangeServer]:
    """A started :class:`ExchangeServer` running on its own loop in a daemon thread."""
    loop = asyncio.new_event_loop()
    server = ExchangeServer(settings)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # report to the test thread, then stop
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def collect(ws: Any, quiet: float = 0.3, limit: int = 100_000) -> tuple[list[str], Any]:
    """Text frames from an aiohttp client websocket until it stays silent for ``quiet`` s or
    closes; returns (frames, the closing message or None)."""
    frames: list[str] = []
    while len(frames) < limit:
        try:
            msg = await ws.receive(timeout=quiet)
        except TimeoutError:
            return frames, None
        if msg.type == aiohttp.WSMsgType.TEXT:
            frames.append(msg.data)
        else:
            return frames, msg
    return frames, None


async def request_reply(ws: Any, **body: Any) -> dict[str, Any]:
    """Send an op and wait for its reply (data frames before it are skipped); the server has
    handled the request by then."""
    await ws.send_str(json.dumps(body))
    while True:
        reply = json.loads(await ws.receive_str(timeout=10))
        if "success" in reply:
            return reply


async def data_frames(ws: Any, n: int) -> list[str]:
    """The next ``n`` data frames, replies skipped (a generous deadline for each frame: only a
    stream that stops fails, a slow machine does not)."""
    frames: list[str] = []
    while len(frames) < n:
        text = await ws.receive_str(timeout=10)
        if not text.startswith('{"success"'):
            frames.append(text)
    return frames
