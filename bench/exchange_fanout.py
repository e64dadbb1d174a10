"""Order-book fan-out: the local exchange's REST latency while 200 websockets stream books.

Three processes, so that no client competes with what is measured for the interpreter: the
exchange, a load process holding the websocket connections (each subscribed to
``orderbook.50.<symbol>``, the symbols round-robin, every message read), and this one, which
only times ``GET /v5/market/kline`` (limit 200) one request after another — first with no
connection open (idle), then during the fan-out. It runs twice in one go: with the exchange's
books and messages *shared* between connections (the default), and *unshared* (every
connection computes and encodes its own, as before they were shared), so the difference is
measured on the same machine at the same time. A request unanswered after ``--timeout-s`` is
counted, not waited for. Prints results; asserts nothing.

    python bench/exchange_fanout.py                        # 200 connections, both modes, ~2 min
    python bench/exchange_fanout.py --connections 100 --requests 50 --modes shared
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.config import Settings, parse_settings  # noqa: E402
from bot.core.timeutil import HOUR_MS  # noqa: E402
from bot.exchange.frames import Frames  # noqa: E402
from bot.exchange.server import ExchangeServer  # noqa: E402
from bot.feeds.synthetic import DEFAULT_START_MS  # noqa: E402

SYMBOLS = {
    "BTCUSDT": (0.001, 0.1),
    "ETHUSDT": (0.01, 0.01),
    "SOLUSDT": (0.1, 0.001),
    "BNBUSDT": (0.01, 0.01),
}  # (qty step, tick size)
HISTORY_BARS = 1000  # bars before the market opens (what the REST probe pages through)
KLINE = "/v5/market/kline?category=linear&symbol=BTCUSDT&interval=60&limit=200"
MODES = ("shared", "unshared")
SUBSCRIBE_S = 120.0  # the load process gives up if its connections are not all subscribed by then


def bench_settings(bars_per_s: float, updates: int) -> Settings:
    """Synthetic hourly bars of four symbols, ``bars_per_s`` bars a wall second with
    ``updates`` book/kline updates per bar, on any free port."""
    return parse_settings(
        {
            "engine": {"symbols": list(SYMBOLS), "interval": "1h"},
            "data": {"synthetic_bars": HISTORY_BARS + 4000},
            "exchange": {
                "port": 0,
                "source": "synthetic",
                "speed": 3600.0 * bars_per_s,
                "bar_updates": updates,
                "start": str(DEFAULT_START_MS + HISTORY_BARS * HOUR_MS),
            },
            "strategies": [{"name": "equal_weight"}],
            "instruments": {s: {"qty_step": q, "tick_size": t} for s, (q, t) in SYMBOLS.items()},
        },
        "bench",
    )


# -- the exchange process ----------------------------------------------------------------------
async def serve(args: argparse.Namespace) -> None:
    """Run the exchange; print its port; stop when the parent closes stdin."""
    async with ExchangeServer(bench_settings(args.bars_per_s, args.updates)) as server:
        if args.mode == "unshared":
            state = server.state
            state.frames = Frames(state.market, state.stats, capacity=0)
        print(server.port, flush=True)
        await asyncio.to_thread(sys.stdin.read)


# -- the load process --------------------------------------------------------------------------
async def load(args: argparse.Namespace) -> None:
    """Open the connections, subscribe each, print ``ready``; read everything until the parent
    closes stdin, then print what arrived (JSON)."""
    received = {"messages": 0, "bytes": 0, "closed": 0}
    gate = asyncio.Semaphore(50)  # connections being opened at once
    url = f"ws://127.0.0.1:{args.port}/v5/public/linear"
    symbols = list(SYMBOLS)

    async def one(http: aiohttp.ClientSession, n: int, subscribed: asyncio.Event) -> None:
        async with gate:
            ws = await http.ws_connect(url, max_msg_size=0)
            topic = f"orderbook.50.{symbols[n % len(symbols)]}"
            await ws.send_str(json.dumps({"op": "subscribe", "args": [topic]}))
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            if msg.data.startswith('{"success"'):
                subscribed.set()
                continue
            received["messages"] += 1
            received["bytes"] += len(msg.data)
        received["closed"] += 1

    # no cap on the session's connections (aiohttp's default of 100 would stall the rest)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        acks = [asyncio.Event() for _ in range(args.connections)]
        tasks = [asyncio.create_task(one(http, n, acks[n])) for n in range(args.connections)]
        try:
            await asyncio.wait_for(asyncio.gather(*(a.wait() for a in acks)), SUBSCRIBE_S)
        except TimeoutError:
            done = sum(a.is_set() for a in acks)
            print(f"only {done} of {args.connections} subscribed in {SUBSCRIBE_S} s", flush=True)
            raise SystemExit(1) from None
        print("ready", flush=True)
        began = time.perf_counter()
        await asyncio.to_thread(sys.stdin.read)
        received["seconds"] = time.perf_counter() - began
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(received), flush=True)


# -- this process: the REST probe --------------------------------------------------------------
@dataclass
class Probe:
    latencies_ms: list[float]
    timeouts: int

    def summary(self) -> str:
        if not self.latencies_ms:
            return f"no answer ({self.timeouts} timeouts)"
        ms = np.array(self.latencies_ms)
        p50, p99 = np.percentile(ms, [50, 99])
        late = f", {self.timeouts} timed out" if self.timeouts else ""
        return (
            f"p50 {p50:8.1f} ms  p99 {p99:8.1f} ms  max {ms.max():8.1f} ms  "
            f"({len(ms)} requests{late})"
        )


def probe(port: int, requests: int, budget_s: float, timeout_s: float) -> Probe:
    """Time up to ``requests`` kline requests one after another (10 ms apart), for at most
    ``budget_s``; a request unanswered after ``timeout_s`` counts as a timeout."""
    latencies, timeouts = [], 0
    deadline = time.monotonic() + budget_s
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    for _ in range(requests):
        if time.monotonic() > deadline:
            break
        began = time.perf_counter()
        try:
            conn.request("GET", KLINE)
            body = conn.getresponse().read()
        except TimeoutError:
            timeouts += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
            continue
        latencies.append((time.perf_counter() - began) * 1000)
        assert json.loads(body)["retCode"] == 0
        time.sleep(0.01)
    conn.close()
    return Probe(latencies, timeouts)


def status(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/_local/status")
    return json.loads(conn.getresponse().read())


def child(role: str, *options: str) -> subprocess.Popen:
    command = [sys.executable, __file__, "--role", role, *options]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    timing = ["--bars-per-s", str(args.bars_per_s), "--updates", str(args.updates)]
    exchange = child("serve", "--mode", mode, *timing)
    loader: subprocess.Popen | None = None
    try:
        assert exchange.stdout is not None and exchange.stdin is not None
        port = int(exchange.stdout.readline())
        idle = probe(port, 30, args.budget_s, args.timeout_s)
        began = time.perf_counter()
        loader = child("load", "--port", str(port), "--connections", str(args.connections))
        assert loader.stdout is not None and loader.stdin is not None
        ready = loader.stdout.readline().strip()
        assert ready == "ready", f"the load process failed: {ready or 'no output'}"
        subscribed_s = time.perf_counter() - began
        time.sleep(1.0)  # the fan-out settles in
        busy = probe(port, args.requests, args.budget_s, args.timeout_s)
        served = status(port)
        loader.stdin.close()
        received = json.loads(loader.stdout.readline())
        loader.wait(30)
    finally:
        for process in (loader, exchange):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)
    return {
        "mode": mode,
        "idle": idle,
        "busy": busy,
        "subscribed_s": subscribed_s,
        "served": served["served"],
        "received": received,
        "updates": served["update"],
    }


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    received, served = result["received"], result["served"]
    offered = args.connections * args.bars_per_s * args.updates  # book messages a second
    print(f"[{result['mode']}]")
    print(f"  REST kline, no connection      {result['idle'].summary()}")
    print(f"  REST kline, during the fan-out {result['busy'].summary()}")
    print(
        f"  {args.connections} connections subscribed in {result['subscribed_s']:.1f} s; "
        f"received {received['messages'] / received['seconds']:,.0f} messages/s "
        f"({offered:,.0f}/s due at market speed), {received['closed']} closed early"
    )
    print(
        f"  exchange: {served['book_messages']:,} book messages, "
        f"{served['books_computed']:,} books computed, {served['frames_encoded']:,} encoded"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=("main", "serve", "load"), default="main")
    parser.add_argument("--mode", choices=MODES, default="shared")
    parser.add_argument("--modes", default=",".join(MODES), help="modes to run, in order")
    parser.add_argument("--port", type=int)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--bars-per-s", type=float, default=8.0, help="as `bot demo` runs")
    parser.add_argument("--updates", type=int, default=3, help="updates per bar")
    parser.add_argument("--budget-s", type=float, default=20.0, help="longest probe, seconds")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="per REST request")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.role == "serve":
        asyncio.run(serve(args))
        return 0
    if args.role == "load":
        asyncio.run(load(args))
        return 0
    print(
        f"{args.connections} websockets on orderbook.50 of {len(SYMBOLS)} symbols, "
        f"{args.bars_per_s:g} bars/s × {args.updates} updates; REST GET {KLINE}"
    )
    for mode in args.modes.split(","):
        report(run_mode(mode, args), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
