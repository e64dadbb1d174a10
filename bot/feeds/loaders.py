"""Reading bars and funding rates from CSV and Parquet, and aligning symbols into a panel.

Accepted layouts: ``<dir>/<interval>/<SYMBOL>.csv`` (as in ``../shared/data/bybit-linear``) or
``<dir>/<SYMBOL>.csv``; the same with ``.parquet``. Columns: a time column (``timestamp_ms``,
``start`` or ``timestamp``: the bar's open time in epoch ms) and ``open, high, low, close,
volume`` (``turnover`` optional). Files are checked, not trusted: unsorted or duplicate times,
missing columns, NaNs or times off the interval grid are errors that name the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bot.core.events import FIELDS, Panel
from bot.core.timeutil import interval_ms, normalize_interval

TIME_COLUMNS = ("timestamp_ms", "start", "timestamp", "open_time")


class DataError(ValueError):
    """Market data that cannot be used as it is."""


def find_bar_file(root: Path, symbol: str, interval: str) -> Path:
    name = normalize_interval(interval)
    candidates = [root / name / f"{symbol}{ext}" for ext in (".csv", ".parquet", ".csv.gz")] + [
        root / f"{symbol}{ext}" for ext in (".csv", ".parquet", ".csv.gz")
    ]
    for path in candidates:
        if path.exists():
            return path
    raise DataError(
        f"no {name} bars for {symbol} under {root} (looked for {', '.join(map(str, candidates))})"
    )


def read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def read_bars(path: Path, interval: str) -> pd.DataFrame:
    """Bars of one symbol as a frame with int64 ``start`` and float OHLCV (+ turnover)."""
    frame = read_table(path)
    time_col = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if time_col is None:
        raise DataError(f"{path}: no time column (expected one of {', '.join(TIME_COLUMNS)})")
    missing = [c for c in FIELDS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)}")
    columns = [*FIELDS, *(["turnover"] if "turnover" in frame.columns else [])]
    out = frame[columns].astype("float64")
    out.insert(0, "start", frame[time_col].astype("int64"))
    check_bars(out, interval, str(path))
    return out.reset_index(drop=True)


def check_bars(frame: pd.DataFrame, interval: str, source: str) -> None:
    starts = frame["start"].to_numpy()
    if len(starts) and np.any(np.diff(starts) <= 0):
        bad = int(np.flatnonzero(np.diff(starts) <= 0)[0]) + 1
        raise DataError(f"{source}: times not strictly increasing at row {bad} ({starts[bad]})")
    step = interval_ms(interval)
    if step <= 86_400_000 and len(starts) and np.any(starts % step):
        bad = int(np.flatnonzero(starts % step)[0])
        raise DataError(f"{source}: time {starts[bad]} at row {bad} is not on the {interval} grid")
    values = frame[list(FIELDS)].to_numpy()
    if np.isnan(values).any():
        bad = int(np.flatnonzero(np.isnan(values).any(axis=1))[0])
        raise DataError(f"{source}: NaN in row {bad}")


def align(frames: dict[str, pd.DataFrame], symbols: tuple[str, ...], interval: str) -> Panel:
    """Put symbols side by side on the union of their bar times (absent → not present)."""
    if not symbols:
        raise DataError("no symbols to align")
    starts = np.unique(np.concatenate([frames[s]["start"].to_numpy() for s in symbols]))
    values = np.full((len(starts), len(symbols), len(FIELDS)), np.nan)
    present = np.zeros((len(starts), len(symbols)), dtype=bool)
    turnover = None
    if all("turnover" in frames[s] for s in symbols):
        turnover = np.full((len(starts), len(symbols)), np.nan)
    for k, symbol in enumerate(symbols):
        frame = frames[symbol]
        rows = np.searchsorted(starts, frame["start"].to_numpy())
        values[rows, k, :] = frame[list(FIELDS)].to_numpy()
        present[rows, k] = True
        if turnover is not None:
            turnover[rows, k] = frame["turnover"].to_numpy()
    return Panel(symbols, interval_ms(interval), starts.astype(np.int64), values, present, turnover)


def clip_frames(
    frames: dict[str, pd.DataFrame], start: int | None, end: int | None
) -> dict[str, pd.DataFrame]:
    """Keep bars with ``start <= bar start < end``."""
    out = {}
    for symbol, frame in frames.items():
        keep = np.ones(len(frame), dtype=bool)
        if start is not None:
            keep &= frame["start"].to_numpy() >= start
        if end is not None:
            keep &= frame["start"].to_numpy() < end
        out[symbol] = frame.loc[keep].reset_index(drop=True)
    return out


def load_panel(
    root: Path,
    symbols: tuple[str, ...],
    interval: str,
    start: int | None = None,
    end: int | None = None,
) -> Panel:
    """Bars of ``symbols`` from files under ``root``, aligned, within ``[start, end)``."""
    frames = {s: read_bars(find_bar_file(root, s, interval), interval) for s in symbols}
    frames = clip_frames(frames, start, end)
    empty = [s for s, f in frames.items() if f.empty]
    if empty:
        raise DataError(f"no {interval} bars in the requested range for {', '.join(empty)}")
    return align(frames, symbols, interval)


def load_funding(root: Path, symbols: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Funding rates from ``<root>/funding-8h/<SYMBOL>.csv`` (``timestamp_ms,funding_rate``);
    symbols without a file get none."""
    series = {}
    for symbol in symbols:
        path = root / "funding-8h" / f"{symbol}.csv"
        if not path.exists():
            continue
        frame = read_table(path)
        time_col = next((c for c in TIME_COLUMNS if c in frame.columns), None)
        if time_col is None or "funding_rate" not in frame.columns:
            raise DataError(f"{path}: expected columns timestamp_ms,funding_rate")
        times = frame[time_col].to_numpy(dtype=np.int64)
        order = np.argsort(times, kind="stable")
        series[symbol] = (times[order], frame["funding_rate"].to_numpy(dtype=float)[order])
    return series
