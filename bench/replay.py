"""Replay benchmark: our engine against backtrader and NautilusTrader on one workload.

(a) moving-average crossover 10/30 on one symbol, 1,000,000 seeded synthetic 1-minute bars,
    10 bp taker fee, all-in/all-out, 100,000 USDT: bars/s and peak RSS of each engine, each in
    its own process, on the identical data (prices rounded to 6 decimals because NautilusTrader
    stores prices as fixed-point decimals). Trade counts must be equal and final equities within
    0.1% of ours, or the run says FAIL and exits 1.
(b) equal weight over the real 1-minute bars of seven symbols (our engine; needs the data).

    python3 -m bot.quickstart bench            # sets up .venv-bench with the peers, then this
    python bench/replay.py --bars 100000 --peers none
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import data_dir  # noqa: E402
from bench.peers.common import digest, make_data  # noqa: E402

PEERS = {"backtrader": "bench.peers.backtrader_peer", "nautilus": "bench.peers.nautilus_peer"}
PEER_PACKAGES = {"backtrader": "backtrader", "nautilus": "nautilus_trader"}
TOLERANCE = 0.001  # final equities within 0.1%


def median_run(command: list[str], label: str, repeat: int) -> dict | None:
    """The run with the median speed out of ``repeat`` (each in a fresh process)."""
    runs = [run_json(command, f"{label} ({k + 1}/{repeat})") for k in range(repeat)]
    runs = [r for r in runs if r is not None]
    if not runs:
        return None
    runs.sort(key=lambda r: r["bars_per_second"])
    chosen = runs[len(runs) // 2]
    chosen["all_bars_per_second"] = [round(r["bars_per_second"]) for r in runs]
    return chosen


def run_json(command: list[str], label: str) -> dict | None:
    """Run one engine in a fresh process and return the JSON line it prints."""
    print(f"  running {label} ...", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        print(f"  {label} failed (exit {done.returncode}):\n{tail}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_available(peer: str) -> bool:
    probe = [sys.executable, "-c", f"import {PEER_PACKAGES[peer]}"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def table(rows: list[dict]) -> str:
    headers = ["engine", "bars", "run s", "bars/s", "× nautilus", "trades", "final equity",
               "peak RSS MB"]  # fmt: skip
    nautilus = next((r for r in rows if r["engine"].startswith("nautilus")), None)
    lines = []
    for r in rows:
        ratio = r["bars_per_second"] / nautilus["bars_per_second"] if nautilus else float("nan")
        lines.append([
            r["engine"], f"{r['bars']:,}", f"{r['run_seconds']:.2f}",
            f"{r['bars_per_second']:,.0f}", f"{ratio:.1f}" if nautilus else "-",
            f"{r['trades']:,}", f"{r['final_equity']:.8g}", f"{r['peak_rss_mb']:.0f}",
        ])  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
    return "\n".join(out)


def check(rows: list[dict]) -> list[str]:
    """Trade counts equal and final equities within 0.1% of our full engine's."""
    ours = rows[0]
    problems = []
    for r in rows[1:]:
        if r["trades"] != ours["trades"]:
            problems.append(f"{r['engine']}: {r['trades']} trades vs ours {ours['trades']}")
        gap = abs(r["final_equity"] / ours["final_equity"] - 1.0)
        if not gap <= TOLERANCE:
            problems.append(f"{r['engine']}: final equity differs from ours by {gap:.3%}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--peers", default="backtrader,nautilus", help="comma list or 'none'")
    parser.add_argument("--real", type=Path, default=data_dir() / "bybit-linear",
                        help="folder with 1m/<SYMBOL>.csv for workload (b)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours and nautilus")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    peers = [] if args.peers == "none" else [p.strip() for p in args.peers.split(",") if p]

    print(f"(a) MA crossover 10/30, {args.bars:,} synthetic 1m bars (seed {args.seed}), 10 bp fee")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.npz"
        t0 = time.perf_counter()
        starts, ohlcv = make_data(args.bars, args.seed)
        np.savez(data, starts_ms=starts, ohlcv=ohlcv)
        print(f"  data {digest(starts, ohlcv)} ready in {time.perf_counter() - t0:.1f}s")
        ours = str(ROOT / "bench" / "ours.py")
        for mode in ("full", "bare"):
            row = median_run([sys.executable, ours, "--data", str(data), "--mode", mode],
                             f"ours ({mode})", args.repeat)  # fmt: skip
            if row is None:
                return 1
            rows.append(row)
        for peer in peers:
            module = PEERS[peer]
            if not peer_available(peer):
                print(f"  {peer} is not installed (python3 -m bot.quickstart bench installs it)")
                continue
            repeat = 1 if peer == "backtrader" else args.repeat
            row = median_run([sys.executable, "-m", module, "--data", str(data)], peer, repeat)
            if row is not None:
                rows.append(row)
    print()
    print(table(rows))
    problems = check(rows)
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems and len(rows) > 2:
        print("PASS trade counts equal, final equities within 0.1% of ours")

    real_row = None
    if (args.real / "1m").is_dir():
        print("\n(b) equal weight, 7 real 1m symbols, hourly rebalance")
        real_row = run_json([sys.executable, ours, "--real", str(args.real)], "ours (real)")
        if real_row is not None:
            print(table([real_row]))
    else:
        print(f"\n(b) skipped: no real 1m data at {args.real} (set BOT_DATA_DIR)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"ma_crossover": rows, "equal_weight_real": real_row},
                                        indent=1))  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
