"""Parquet replay benchmark: the same bars loaded and replayed from CSV, Parquet and the store.

The real CSV bars (and funding) are imported into a temporary SQLite store with the code of
``bot data import``, exported with ``bot data export``, and the same backtest (equal weight,
hourly rebalance, funding on, nothing recorded) then loads and replays them from each source in
turn, ``--repeat`` times, interleaved so that a busy machine slows every source alike. Prints
the median load, replay and total seconds, symbol-bars per second, the speed relative to CSV,
and whether the final equity equals the CSV run's. It measures; it asserts nothing.

    python bench/parquet_replay.py                          # 1m bars of every symbol, 5 runs
    python bench/parquet_replay.py --interval 1h --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backtest.runner import load_history, run_backtest
from bench import ROOT, data_dir
from bot.cli.common import table
from bot.cli.main import main as bot
from bot.config import Settings, load_settings
from bot.feeds.loaders import load_funding, read_bars
from bot.store import Store

SOURCES = ("csv", "parquet", "store")


def prepare(csv_root: Path, symbols: list[str], interval: str, work: Path) -> tuple[str, Path]:
    """(store URL, Parquet folder) holding the bars and funding of the CSV files."""
    url = f"sqlite:///{work / 'bench.db'}"
    with Store(url) as store:
        store.import_klines(
            [(s, interval, read_bars(csv_root / interval / f"{s}.csv", interval)) for s in symbols]
        )
        for symbol, (times, rates) in load_funding(csv_root, tuple(symbols)).items():
            store.upsert_funding(symbol, times.tolist(), rates.tolist())
    out = work / "parquet"
    with contextlib.redirect_stdout(io.StringIO()):  # its table of files is not the result
        bot(["data", "export", "--out", str(out), "--store", url, "--interval", interval])
    return url, out


def settings_for(source: str, path: Path, url: str, symbols: list[str], interval: str) -> Settings:
    return load_settings(ROOT / "config.toml", {
        "engine.symbols": symbols, "engine.interval": interval, "engine.start": None,
        "engine.end": None, "data.source": source, "data.path": str(path), "store.url": url,
        "risk.max_drawdown": None,
        "strategies": [{"name": "equal_weight", "params": {"rebalance": "1h"}}],
    })  # fmt: skip


def timed_run(settings: Settings, store: Store) -> dict:
    """Seconds to load the bars and to replay them, and what the replay ended with."""
    t0 = time.perf_counter()
    _, panel, funding = load_history(settings, store)
    t1 = time.perf_counter()
    result = run_backtest(settings, panel=panel, funding=funding, record=False)
    t2 = time.perf_counter()
    return {"load": t1 - t0, "replay": t2 - t1, "bars": int(panel.present.sum()),
            "equity": float(result.equity[-1])}  # fmt: skip


def report(runs: dict[str, list[dict]]) -> str:
    median = {s: {k: statistics.median(r[k] for r in rs) for k in ("load", "replay")}
              for s, rs in runs.items()}  # fmt: skip
    csv_total = median["csv"]["load"] + median["csv"]["replay"]
    rows = []
    for source, stats in median.items():
        total = stats["load"] + stats["replay"]
        first = runs[source][0]
        rows.append([
            source, f"{first['bars']:,}", f"{stats['load']:.3f}", f"{stats['replay']:.3f}",
            f"{total:.3f}", f"{first['bars'] / total:,.0f}", f"{csv_total / total:.2f}",
            "yes" if first["equity"] == runs["csv"][0]["equity"] else "NO",
        ])  # fmt: skip
    headers = ["source", "bars", "load s", "replay s", "total s", "bars/s", "× csv",
               "equity = csv"]  # fmt: skip
    return table(rows, headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data_dir() / "bybit-linear",
                        help="folder with <interval>/<SYMBOL>.csv and funding-8h/")  # fmt: skip
    parser.add_argument("--interval", default="1m")
    parser.add_argument("--symbols", help="comma-separated (default: every CSV of the interval)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = args.data / args.interval
    if not folder.is_dir():
        print(f"skipped: no {args.interval} bars under {args.data} (set BOT_DATA_DIR)")
        return
    symbols = args.symbols.split(",") if args.symbols else sorted(
        p.stem for p in folder.glob("*.csv")
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        url, parquet = prepare(args.data, symbols, args.interval, Path(tmp))
        paths = {"csv": args.data, "parquet": parquet, "store": args.data}
        runs: dict[str, list[dict]] = {s: [] for s in SOURCES}
        with Store(url) as store:
            for k in range(args.repeat):
                for source in SOURCES:
                    settings = settings_for(source, paths[source], url, symbols, args.interval)
                    runs[source].append(timed_run(settings, store))
                print(f"  round {k + 1}/{args.repeat} done", flush=True)
    print(f"\n{len(symbols)} symbols of {args.interval} bars ({', '.join(symbols)}), equal "
          f"weight, funding on; median of {args.repeat} runs; bars = symbol-bars")  # fmt: skip
    print(report(runs))


if __name__ == "__main__":
    main()
