"""``bot data``: bring bar files into the store, see what it holds, export it to Parquet."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from bot.cli.common import UsageError, output_path, parse_symbols, settings_from, store_url, table
from bot.cli.exits import report
from bot.core.events import FIELDS
from bot.core.timeutil import iso, normalize_interval, to_ms
from bot.feeds.loaders import DataError, check_bars, read_bars
from bot.store import Store
from bot.venues.bybit.fetch import fetch_funding_to_store, fetch_klines_to_store
from bot.venues.bybit.rest import BybitRest

SUFFIXES = (".csv", ".parquet", ".gz")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("data", help="import and list market data in the store")
    sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    imp = sub.add_parser("import", help="import CSV/Parquet bar files into the store")
    imp.add_argument("paths", nargs="+", type=Path, help="files, or folders of <SYMBOL>.csv")
    imp.add_argument("--interval", required=True, help="interval of the bars in these files")
    imp.add_argument("--symbol", help="symbol (default: the file name, e.g. BTCUSDT.csv)")
    imp.add_argument("--store", help="SQLAlchemy URL (default: config store.url)")
    imp.set_defaults(handler=import_files)
    fetch = sub.add_parser(
        "fetch", help="download bars (and funding) from the venue into the store"
    )
    fetch.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    fetch.add_argument("--interval", required=True, help="bar interval, e.g. 1h")
    fetch.add_argument("--start", required=True, help="first bar (date or ISO time, UTC)")
    fetch.add_argument("--end", help="end, exclusive (default: now)")
    fetch.add_argument("--no-funding", action="store_true", help="bars only")
    fetch.add_argument("--local", action="store_true", help="from the local exchange")
    fetch.add_argument("--store", help="SQLAlchemy URL (default: config store.url)")
    fetch.set_defaults(handler=fetch_data)
    lst = sub.add_parser("list", help="what bars the store holds")
    lst.add_argument("--store", help="SQLAlchemy URL (default: config store.url)")
    lst.set_defaults(handler=list_data)
    exp = sub.add_parser(
        "export", help="write the store's bars and funding to Parquet (--source parquet reads it)"
    )
    exp.add_argument("--out", required=True, type=output_path,
                     help="folder: <interval>/<SYMBOL>.parquet")  # fmt: skip
    exp.add_argument("--symbols", help="comma-separated (default: every stored symbol)")
    exp.add_argument("--interval", help="bar interval, e.g. 1h (default: every stored one)")
    exp.add_argument("--start", help="first bar (date or ISO time, UTC)")
    exp.add_argument("--end", help="end, exclusive")
    exp.add_argument("--store", help="SQLAlchemy URL (default: config store.url)")
    exp.set_defaults(handler=export_data)


def bar_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.name.endswith(SUFFIXES)))
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    if not files:
        raise UsageError("no .csv or .parquet files found")
    return files


def import_files(args: argparse.Namespace) -> int:
    """All or nothing: every file is read and checked before the store is touched, and the
    bars of all of them are written in one transaction."""
    interval = normalize_interval(args.interval)
    files = bar_files(args.paths)
    if args.symbol and len(files) > 1:
        raise UsageError("--symbol only makes sense with a single file")
    url = store_url(args)
    frames = read_all(files, interval, args.symbol)
    store = Store(url)
    try:
        inserted = store.import_klines(frames)
    finally:
        store.close()
    rows = [[symbol, interval, f"{len(frame):,}", f"{new:,}", f"{len(frame) - new:,}"]
            for (symbol, _, frame), new in zip(frames, inserted, strict=True)]  # fmt: skip
    print(table(rows, ["symbol", "interval", "rows read", "new", "already stored"]))
    return 0


def read_all(
    files: list[Path], interval: str, symbol: str | None
) -> list[tuple[str, str, pd.DataFrame]]:
    """``(symbol, interval, bars)`` of every file; if any file is refused, each refused one is
    printed with its reason and the import stops before writing anything."""
    frames, refused = [], []
    for path in tqdm(files, unit="file", desc="read", leave=False, disable=None):  # None: tty only
        try:
            frames.append((symbol or symbol_of(path), interval, read_bars(path, interval)))
        except DataError as exc:
            refused.append(str(exc))
    if len(files) == 1 and refused:
        raise DataError(f"{refused[0]}; nothing was imported")
    if refused:
        for reason in refused:
            report(reason)
        raise DataError(f"{len(refused)} of {len(files)} files refused; nothing was imported")
    return frames


def symbol_of(path: Path) -> str:
    """``BTCUSDT.csv.gz`` → ``BTCUSDT``."""
    return path.name.split(".")[0].upper()


def fetch_data(args: argparse.Namespace) -> int:
    """Idempotent and resumable: only spans the store lacks are requested, page by page."""
    symbols = parse_symbols(args.symbols)
    overrides = {"venue.target": "local"} if args.local else {}
    settings = settings_from(args, overrides)
    rest_url, _ = settings.venue_urls()
    interval = normalize_interval(args.interval)
    start = to_ms(args.start)

    async def fetch() -> dict:
        venue = settings.venue
        async with BybitRest.from_config(venue, rest_url) as rest:
            end = to_ms(args.end) if args.end else await rest.server_time()
            counts = await fetch_klines_to_store(rest, store, symbols, interval, start, end,
                                                 progress=True)  # fmt: skip
            if not args.no_funding and venue.category == "linear":
                await fetch_funding_to_store(rest, store, symbols, start, end, progress=True)
            return counts

    store = Store(store_url(args))
    try:
        counts = asyncio.run(fetch())
    finally:
        store.close()
    rows = [
        [s, interval, f"{fetched:,}", f"{inserted:,}"] for s, (fetched, inserted) in counts.items()
    ]
    print(table(rows, ["symbol", "interval", "fetched", "new"]))
    return 0


def list_data(args: argparse.Namespace) -> int:
    store = Store(store_url(args))
    try:
        summary = store.kline_summary()
    finally:
        store.close()
    if not summary:
        print("the store holds no bars; import some with `bot data import`")
        return 0
    rows = [
        [s["symbol"], s["interval"], f"{s['count']:,}", iso(s["first"]), iso(s["last"])]
        for s in summary
    ]
    print(table(rows, ["symbol", "interval", "bars", "first", "last"]))
    return 0


#: Name of the funding folder beside the interval folders, as in ``../shared/data``.
FUNDING_DIR = "funding-8h"


def export_data(args: argparse.Namespace) -> int:
    """The store's bars as ``<out>/<interval>/<SYMBOL>.parquet`` and its funding rates as
    ``<out>/funding-8h/<SYMBOL>.parquet``: the layout ``bot backtest --source parquet --data
    <out>`` reads, in the columns ``bot data import`` takes back. Bars are checked on the way
    out, as a backtest from the store would check them, so a file never holds a bar that its
    replay would refuse."""
    symbols = parse_symbols(args.symbols) if args.symbols is not None else None
    interval = normalize_interval(args.interval) if args.interval else None
    start, end = time_flag(args.start, "--start"), time_flag(args.end, "--end")
    store = Store(store_url(args))
    try:
        series = exported_series(store.kline_summary(), symbols, interval)
        rows = []
        for symbol, every in tqdm(series, unit="file", desc="export", leave=False, disable=None):
            frame = store.load_klines(symbol, every, start, end)
            if frame.empty:
                rows.append([symbol, every, "0", "(no bars in the range)"])
                continue
            check_bars(frame, every, f"the store's {symbol} {every} bars")
            path = write_atomically(bars_table(frame), args.out / every / f"{symbol}.parquet")
            rows.append([symbol, every, f"{len(frame):,}", str(path)])
        funding = store.load_funding(sorted({symbol for symbol, _ in series}), start, end)
    finally:
        store.close()
    for symbol, (times, rates) in sorted(funding.items()):
        rates_table = pa.table({"timestamp_ms": times, "funding_rate": rates})
        path = write_atomically(rates_table, args.out / FUNDING_DIR / f"{symbol}.parquet")
        rows.append([symbol, "funding", f"{len(times):,}", str(path)])
    print(table(rows, ["symbol", "interval", "rows", "file"]))
    return 0


def time_flag(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return to_ms(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: not a date, ISO time or epoch ms") from None


def exported_series(
    summary: list[dict], symbols: list[str] | None, interval: str | None
) -> list[tuple[str, str]]:
    """(symbol, interval) pairs of the store to export; a requested symbol or interval the
    store lacks is named rather than silently skipped."""
    stored = [(s["symbol"], s["interval"]) for s in summary]
    chosen = [
        (s, i) for s, i in stored if (interval is None or i == interval)
        and (symbols is None or s in symbols)
    ]  # fmt: skip
    missing = sorted(set(symbols or ()) - {s for s, _ in chosen})
    if missing or not chosen:
        what = f"{interval} bars" if interval else "bars"
        lacking = f" for {', '.join(missing)}" if missing else ""
        raise UsageError(f"the store holds no {what}{lacking}; see `bot data list`")
    return chosen


def bars_table(frame: pd.DataFrame) -> pa.Table:
    """Store bars in the file format of ``bot data import``: int64 ``timestamp_ms`` (the
    bar's open time) and float64 prices; ``turnover`` only where the store knows some."""
    columns = {"timestamp_ms": frame["start"].to_numpy(np.int64)}
    for name in FIELDS:
        columns[name] = frame[name].to_numpy(np.float64)
    if frame["turnover"].notna().any():
        columns["turnover"] = frame["turnover"].to_numpy(np.float64)
    return pa.table(columns)


def write_atomically(data: pa.Table, path: Path) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``: a
    reader (a backtest running meanwhile) sees the old file or the new one, never half of
    one, and a failed export leaves the old one in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        pq.write_table(data, temporary)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
