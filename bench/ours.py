"""Our engine on the benchmark workloads; prints one JSON line (run by bench/replay.py in its own
process, so peak RSS is this engine's alone).

* ``--data FILE.npz --mode full``: the moving-average workload through ``run_backtest`` exactly
  as ``bot backtest`` runs it — strategy from the registry, risk, paper executor, scheduled
  equity snapshots and the SQLite store recording every decision, order, fill and position.
* ``--mode bare``: the same engine with a journal that keeps nothing (what the store costs).
* ``--real DIR``: equal weight over the real 1-minute bars of seven symbols, hourly rebalance.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backtest.runner import run_backtest
from bot.config import parse_settings
from bot.core.events import Panel
from bot.core.timeutil import MINUTE_MS
from bot.feeds.loaders import load_panel
from bot.store import Store

REAL_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "ADAUSDT", "DOGEUSDT", "DOTUSDT"]
REAL_STEPS = {"BTCUSDT": 0.001, "ETHUSDT": 0.01, "SOLUSDT": 0.1, "BNBUSDT": 0.01,
              "ADAUSDT": 1.0, "DOGEUSDT": 1.0, "DOTUSDT": 0.1}  # fmt: skip


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ma_settings(store_url: str, fee_rate: float, cash: float, qty_step: float):
    return parse_settings(
        {
            "engine": {"symbols": ["SYNUSDT"], "interval": "1m"},
            "data": {"source": "synthetic", "funding": False},
            "portfolio": {
                "initial_cash": cash,
                "fee_bp": fee_rate * 1e4,
                "slippage_bp": 0.0,
                "rebalance_threshold": 0.0,
            },
            "risk": {"max_weight": 1.0, "max_gross": 1.0, "max_drawdown": None},
            "store": {"url": store_url},
            "strategies": [{"name": "ma_crossover", "params": {"fast": 10, "slow": 30}}],
            "instruments": {"SYNUSDT": {"qty_step": qty_step, "min_order_qty": qty_step}},
        },
        "bench",
    )


def run_ma(data: Path, mode: str, fee_rate: float, cash: float, qty_step: float) -> dict:
    with np.load(data) as npz:
        starts, ohlcv = npz["starts_ms"], npz["ohlcv"]
    panel = Panel(("SYNUSDT",), MINUTE_MS, starts, ohlcv[:, None, :],
                  np.ones((len(starts), 1), dtype=bool))  # fmt: skip
    baseline = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        settings = ma_settings(f"sqlite:///{tmp}/bench.db", fee_rate, cash, qty_step)
        store = Store(settings.store.url)
        t0 = time.perf_counter()
        result = run_backtest(settings, store=store, record=mode == "full", panel=panel)
        seconds = time.perf_counter() - t0
        rows = store.get_run(result.run_id)["counts"] if mode == "full" else {}
        store.close()
    return {
        "engine": f"ours ({mode})",
        "bars": len(starts),
        "run_seconds": seconds,
        "bars_per_second": len(starts) / seconds,
        "trades": result.stats.fills,
        "final_equity": float(result.equity[-1]),
        "stored_rows": rows,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_real(root: Path) -> dict:
    t0 = time.perf_counter()
    panel = load_panel(root, tuple(REAL_SYMBOLS), "1m")
    load_seconds = time.perf_counter() - t0
    baseline = peak_rss_mb()
    settings = parse_settings(
        {
            "engine": {"symbols": REAL_SYMBOLS, "interval": "1m"},
            "data": {"source": "csv", "path": str(root), "funding": False},
            "risk": {"max_weight": 0.5, "max_gross": 1.0, "max_drawdown": None},
            "strategies": [{"name": "equal_weight", "params": {"rebalance": "1h"}}],
            "instruments": {
                s: {"qty_step": step, "min_order_qty": step, "min_notional": 5.0}
                for s, step in REAL_STEPS.items()
            },
        },
        "bench",
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        t0 = time.perf_counter()
        result = run_backtest(settings, store=store, panel=panel)
        seconds = time.perf_counter() - t0
        store.close()
    bars = int(panel.present.sum())
    return {
        "engine": "ours (full), equal weight, 7 real 1m symbols",
        "bars": bars,
        "steps": len(panel),
        "load_seconds": load_seconds,
        "run_seconds": seconds,
        "bars_per_second": bars / seconds,
        "trades": result.stats.fills,
        "final_equity": float(result.equity[-1]),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help=".npz with starts_ms and ohlcv")
    parser.add_argument("--mode", choices=["full", "bare"], default="full")
    parser.add_argument("--real", type=Path, help="folder with 1m/<SYMBOL>.csv")
    parser.add_argument("--fee-rate", type=float, default=0.001)
    parser.add_argument("--cash", type=float, default=100_000.0)
    parser.add_argument("--qty-step", type=float, default=0.001)
    args = parser.parse_args()
    if args.real is not None:
        out = run_real(args.real)
    elif args.data is not None:
        out = run_ma(args.data, args.mode, args.fee_rate, args.cash, args.qty_step)
    else:
        parser.error("give --data or --real")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
