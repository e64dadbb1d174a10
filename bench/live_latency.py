"""Live latency and memory of the paper daemon against the local exchange.

(1) latency: closing kline message received → orders handed to the executor, p50/p99 over at
    least 10,000 decisions, five symbols of real 1-minute bars, equal weight rebalanced every
    bar (so every decision trades); the exchange runs in its own process.
(2) soak: 1,000,000 websocket messages (60 pushes per candle) through the daemon, its RSS
    sampled as it goes; growth from the first 10% to the end is reported.
(3) live: the live daemon trading an account of the local exchange (same bars, same strategy):
    closing kline message received → first order request of the decision sent, p50/p99, next
    to the paper daemon's closing kline → orders handed over from phase (1) (its peer).

    python bench/live_latency.py                 # both phases (a few minutes)
    python bench/live_latency.py --decisions 2000 --messages 100000   # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.config import Settings, parse_settings  # noqa: E402
from bot.live.daemon import LiveDaemon  # noqa: E402
from bot.live.rails import RailLimits  # noqa: E402
from bot.paper.daemon import PaperDaemon  # noqa: E402
from bot.venues.bybit.credentials import Credentials  # noqa: E402
from tests.e2e.harness import exchange_status, free_port, start_exchange, stop  # noqa: E402

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "ADAUSDT"]
STEPS = {"BTCUSDT": 0.001, "ETHUSDT": 0.01, "SOLUSDT": 0.1, "BNBUSDT": 0.01, "ADAUSDT": 1.0}
MARKET_START = "2025-06-01T00:00"  # the 1m data runs 2025-05-29 .. 2025-06-29
#: test keys of the local exchange's account (never real ones)
BENCH_KEY, BENCH_SECRET = "benchLOCALkey0001", "benchLOCALsecret0001"


def rss_mb() -> float:
    """Current resident set size (not the peak)."""
    with Path("/proc/self/statm").open() as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def settings(tmp: Path, data: Path, seconds_per_bar: float, updates: int) -> Settings:
    config = {
        "engine": {"symbols": SYMBOLS, "interval": "1m", "grace_ms": 30_000},
        "data": {"source": "csv", "path": str(data), "funding": False},
        "portfolio": {"rebalance_threshold": 0.0},
        "risk": {"max_weight": 0.5, "max_drawdown": None},
        "strategies": [{"name": "equal_weight", "params": {"rebalance": "bar"}}],
        "instruments": {
            s: {"qty_step": q, "min_order_qty": q, "min_notional": 5.0} for s, q in STEPS.items()
        },
        "store": {"url": f"sqlite:///{tmp / 'bot.db'}"},
        "scheduler": {"equity_snapshot": "every 1h", "daily_summary": ""},
        "venue": {"target": "local"},
        "paper": {"heartbeat_s": 30.0},
        "exchange": {
            "port": free_port(),
            "speed": 60 / seconds_per_bar,
            "start": MARKET_START,
            "bar_updates": updates,
            "source": "csv",
        },
    }
    return parse_settings(config, "bench")


def write(config: Settings, path: Path) -> Path:
    """The exchange process reads its settings from a file (TOML via JSON-compatible dump)."""
    lines = []

    def emit(prefix: str, table: dict) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        nested = {k: v for k, v in table.items() if isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            if value is not None:
                lines.append(f"{key} = {json.dumps(value)}")
        for key, value in nested.items():
            emit(f"{prefix}.{key}" if prefix else key, value)

    data = config.model_dump(mode="json")
    strategies = data.pop("strategies")
    accounts = data["exchange"].pop("accounts", [])  # secrets are masked in a dump
    emit("", data)
    for account in accounts:
        lines.append("[[exchange.accounts]]")
        account.update(api_key=BENCH_KEY, api_secret=BENCH_SECRET)
        lines += [f"{k} = {json.dumps(v)}" for k, v in account.items() if v is not None]
    for strategy in strategies:
        lines.append("[[strategies]]")
        lines.append(f"name = {json.dumps(strategy['name'])}")
        lines.append(f"allocation = {strategy['allocation']}")
        lines.append(
            "params = { "
            + ", ".join(f"{k} = {json.dumps(v)}" for k, v in strategy["params"].items())
            + " }"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


async def run_daemon(config: Settings, stop_when, sample=None) -> PaperDaemon:
    daemon = PaperDaemon(config, new_run=True)
    task = asyncio.create_task(daemon.run())
    while not task.done():
        await asyncio.sleep(0.5)
        if sample is not None:
            sample(daemon)
        if stop_when(daemon):
            daemon.stop.set()
    await task
    return daemon


def summary(samples_ns: list[int], wall: float) -> dict:
    """Percentiles of one phase's latency samples, in milliseconds, with its wall time."""
    samples = np.array(samples_ns) / 1e6
    return {
        "decisions": len(samples),
        "p50_ms": float(np.percentile(samples, 50)),
        "p90_ms": float(np.percentile(samples, 90)),
        "p99_ms": float(np.percentile(samples, 99)),
        "max_ms": float(samples.max()),
        "wall_s": wall,
    }


def latency_phase(data: Path, decisions: int, seconds_per_bar: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = settings(tmp_path, data, seconds_per_bar, 3)
        exchange = start_exchange(write(config, tmp_path / "config.toml"), tmp_path / "ex.log")
        try:
            started = time.perf_counter()
            last = [0.0]

            def progress(daemon: PaperDaemon) -> None:
                if time.perf_counter() - last[0] > 10:
                    last[0] = time.perf_counter()
                    print(f"  {len(daemon.latencies_ns):,} decisions", flush=True)

            daemon = asyncio.run(run_daemon(
                config, lambda d: len(d.latencies_ns) >= decisions, progress))  # fmt: skip
            wall = time.perf_counter() - started
        finally:
            stop(exchange)
    return summary(daemon.latencies_ns, wall)


def live_phase(data: Path, decisions: int, seconds_per_bar: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = settings(tmp_path, data, seconds_per_bar, 3)
        accounts = [{"name": "bench", "api_key": BENCH_KEY, "api_secret": BENCH_SECRET,
                     "balance": 10_000_000.0}]  # fmt: skip
        exchange_config = config.exchange.model_validate(
            {**config.exchange.model_dump(), "accounts": accounts}
        )
        config = config.model_copy(update={"exchange": exchange_config})
        exchange = start_exchange(write(config, tmp_path / "config.toml"), tmp_path / "ex.log")
        base = f"http://127.0.0.1:{config.exchange.port}"
        try:
            daemon = LiveDaemon(
                config, new_run=True, credentials=Credentials(BENCH_KEY, BENCH_SECRET),
                rest_url=base, private_ws_url=base.replace("http", "ws") + "/v5/private",
                rails=RailLimits(max_orders_per_minute=1_000_000),
            )  # fmt: skip

            def sent(d: LiveDaemon) -> int:
                return 0 if d.executor is None else len(d.executor.send_latency_ns)

            async def drive() -> None:
                task = asyncio.create_task(daemon.run())
                last = time.perf_counter()
                while not task.done():
                    await asyncio.sleep(0.5)
                    if time.perf_counter() - last > 10:
                        last = time.perf_counter()
                        print(f"  {sent(daemon):,} decisions sent", flush=True)
                    if sent(daemon) >= decisions:
                        daemon.stop.set()
                await task

            started = time.perf_counter()
            asyncio.run(drive())
            wall = time.perf_counter() - started
        finally:
            stop(exchange)
    return summary(daemon.executor.send_latency_ns, wall)


def soak_phase(data: Path, messages: int, seconds_per_bar: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = settings(tmp_path, data, seconds_per_bar, 60)
        path = write(config, tmp_path / "config.toml")
        exchange = start_exchange(path, tmp_path / "ex.log")
        samples: list[tuple[int, float]] = []

        def sample(daemon: PaperDaemon) -> None:
            if daemon.stream is not None:
                samples.append((daemon.stream.stats["messages"], rss_mb()))
                if len(samples) % 20 == 0:
                    print(f"  {samples[-1][0]:,} messages, RSS {samples[-1][1]:.1f} MB", flush=True)

        def done(daemon: PaperDaemon) -> bool:
            return daemon.stream is not None and daemon.stream.stats["messages"] >= messages

        try:
            daemon = asyncio.run(run_daemon(config, done, sample))
            pushed = exchange_status(path)["served"]["klines_pushed"]
        finally:
            stop(exchange)
    counts = np.array([c for c, _ in samples])
    rss = np.array([r for _, r in samples])
    early = rss[counts >= messages * 0.1][0]
    return {
        "messages": int(daemon.stream.stats["messages"]),
        "klines_pushed_by_exchange": pushed,
        "rss_at_10pct_mb": float(early),
        "rss_end_mb": float(rss[-1]),
        "rss_max_mb": float(rss.max()),
        "growth_pct": float(100 * (rss[-1] / early - 1)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = Path(os.environ.get("BOT_DATA_DIR", ROOT.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data / "bybit-linear")
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--bar-ms", type=float, default=12.0, help="wall ms per 1m bar")
    parser.add_argument("--live-decisions", type=int, default=300,
                        help="decisions of phase (3), each sending real orders")  # fmt: skip
    parser.add_argument("--live-bar-ms", type=float, default=1000.0,
                        help="wall ms per bar in phase (3): five orders a bar stay under "
                             "Bybit's 10 orders/s per account")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not (args.data / "1m").is_dir():
        print(f"no real 1m data at {args.data} (set BOT_DATA_DIR)")
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"(1) latency: {args.decisions:,} decisions, 5 symbols, a bar every {args.bar_ms} ms")
    latency = latency_phase(args.data, args.decisions, args.bar_ms / 1000)
    print(f"    p50 {latency['p50_ms']:.3f} ms  p90 {latency['p90_ms']:.3f} ms  "
          f"p99 {latency['p99_ms']:.3f} ms  max {latency['max_ms']:.2f} ms  "
          f"({latency['decisions']:,} decisions in {latency['wall_s']:.0f} s)")  # fmt: skip
    print(f"(2) soak: {args.messages:,} websocket messages")
    soak = soak_phase(args.data, args.messages, args.bar_ms / 1000)
    print(f"    RSS {soak['rss_at_10pct_mb']:.1f} MB at 10% → {soak['rss_end_mb']:.1f} MB at the "
          f"end: {soak['growth_pct']:+.2f}% ({soak['messages']:,} messages)")  # fmt: skip
    print(f"(3) live: {args.live_decisions:,} decisions sending orders to the local exchange")
    live = live_phase(args.data, args.live_decisions, args.live_bar_ms / 1000)
    print(f"    closing kline → order request sent: p50 {live['p50_ms']:.3f} ms  "
          f"p90 {live['p90_ms']:.3f} ms  p99 {live['p99_ms']:.3f} ms  "
          f"max {live['max_ms']:.2f} ms")  # fmt: skip
    print(f"    peer, the paper daemon (closing kline → orders handed over): "
          f"p99 {latency['p99_ms']:.3f} ms")  # fmt: skip
    verdict = latency["p99_ms"] < 5 and soak["growth_pct"] < 5 and live["p99_ms"] < 5
    print("PASS" if verdict else "FAIL", "targets: p99 < 5 ms (paper and live), RSS growth < 5%")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"latency": latency, "soak": soak, "live": live},
                                        indent=1))  # fmt: skip
    return 0 if verdict else 1


if __name__ == "__main__":
    raise SystemExit(main())
