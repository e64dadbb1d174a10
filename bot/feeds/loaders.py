"""Reading bars and funding rates from CSV and Parquet, and aligning symbols into a panel.

Accepted layouts: ``<dir>/<interval>/<SYMBOL>.csv`` (as in ``../shared/data/bybit-linear``) or
``<dir>/<SYMBOL>.csv``; the same with ``.parquet``. Columns: a time column (``timestamp_ms``,
``start`` or ``timestamp``: the bar's open time in epoch ms) and ``open, high, low, close,
volume`` (``turnover`` optional). Files are checked, not trusted: an empty or unreadable file,
missing columns, a time or price that is missing or not a number, unsorted or duplicate times,
and any bar that breaks :mod:`bot.core.bar_rules` (a negative price, high below low, a bad
volume, a time off the interval grid) are a :class:`DataError` naming the file, the row (counted
from 0, after the header) and the reason. The checks are vectorised: a million rows cost
milliseconds, and the fast path (well-typed columns) converts nothing twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bot.core.bar_rules import row_problems
from bot.core.events import FIELDS, Panel
from bot.core.timeutil import interval_ms, normalize_interval

TIME_COLUMNS = ("timestamp_ms", "start", "timestamp", "open_time")
#: Every column a bar file may hold that :func:`read_bars` uses.
BAR_COLUMNS = (*TIME_COLUMNS, *FIELDS, "turnover")
#: 3000-01-01 in epoch ms: later "times" are micro- or nanoseconds, or garbage.
MAX_TIME_MS = 32_503_680_000_000


class DataError(ValueError):
    """Market data that cannot be used as it is."""


def find_bar_file(root: Path, symbol: str, interval: str, prefer: str = "csv") -> Path:
    """The file of ``symbol``'s bars under ``root`` (``<interval>/<SYMBOL>.csv`` first, then
    ``<SYMBOL>.csv`` at the top); where both a CSV and a Parquet file exist, ``prefer`` picks
    (``data.source``: a Parquet export beside its CSV must be what ``--source parquet`` reads)."""
    name = normalize_interval(interval)
    exts = (
        (".parquet", ".csv", ".csv.gz") if prefer == "parquet" else (".csv", ".parquet", ".csv.gz")
    )
    candidates = [root / name / f"{symbol}{ext}" for ext in exts] + [
        root / f"{symbol}{ext}" for ext in exts
    ]
    for path in candidates:
        if path.exists():
            return path
    raise DataError(
        f"no {name} bars for {symbol} under {root} (looked for {', '.join(map(str, candidates))})"
    )


def read_table(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The file as a frame; an empty, unreadable or malformed file is a :class:`DataError`.

    From Parquet, only those of ``columns`` the file has are read (all without ``columns``),
    straight through pyarrow: half the time of ``pd.read_parquet`` on minute bars, which
    makes Parquet load faster than CSV rather than at par."""
    try:
        if path.suffix == ".parquet":
            parquet = pq.ParquetFile(path)
            names = parquet.schema_arrow.names
            wanted = names if columns is None else [c for c in names if c in columns]
            return parquet.read(columns=wanted).to_pandas()
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file (no header, no rows)") from None
    except (ValueError, OSError) as exc:  # parser errors, bad encodings, not Parquet, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read it: {reason}") from None


def read_bars(path: Path, interval: str) -> pd.DataFrame:
    """Bars of one symbol as a frame with int64 ``start`` and float OHLCV (+ turnover), every
    row checked (see the module docstring)."""
    frame = read_table(path, BAR_COLUMNS)
    time_col = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if time_col is None:
        raise DataError(f"{path}: no time column (expected one of {', '.join(TIME_COLUMNS)})")
    missing = [c for c in FIELDS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {', '.join(missing)}")
    if frame.empty:
        raise DataError(f"{path}: no bars (a header and no rows)")
    columns = [*FIELDS, *(["turnover"] if "turnover" in frame.columns else [])]
    out = {"start": epoch_ms(frame[time_col], str(path))}
    for column in columns:
        out[column] = numbers(frame[column], str(path))
    bars = pd.DataFrame(out)  # built once: adding columns one by one costs twice as long
    check_bars(bars, interval, str(path))
    return bars


def numbers(column: pd.Series, source: str) -> np.ndarray:
    """A column as float64; text that is not a number is an error naming its row (an empty
    field is NaN, left for the bar rules to refuse or, for turnover, to accept)."""
    if column.dtype.kind in "biuf":
        return column.to_numpy(dtype=np.float64)
    parsed = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy() & column.notna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{source}: row {row}: {column.name} {column.iloc[row]!r} is not a number")
    return parsed.to_numpy(dtype=np.float64)


def epoch_ms(column: pd.Series, source: str) -> np.ndarray:
    """A time column as int64 epoch milliseconds; a missing, fractional or implausible time
    is an error naming its row (``astype("int64")`` would turn NaN into a huge negative time
    and silently truncate 1.5 ms)."""
    if column.dtype.kind == "M":
        raise DataError(f"{source}: {column.name} holds datetimes; expected epoch milliseconds")
    if column.dtype.kind in "iu":
        times = column.to_numpy()
        if times.dtype.kind == "u" and len(times) and times.max() > MAX_TIME_MS:
            _refuse_times(times > MAX_TIME_MS, times, source)
        times = times.astype(np.int64)
    else:
        values = numbers(column, source)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(values) & (np.floor(values) == values)
        _refuse_times(~whole, values, source, "is not a whole number of milliseconds")
        times = values.astype(np.int64)
    _refuse_times((times < 0) | (times > MAX_TIME_MS), times, source)
    return times


def _refuse_times(bad: np.ndarray, times: np.ndarray, source: str, why: str = "") -> None:
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    value = times[row].item()
    if isinstance(value, float) and math.isnan(value):
        raise DataError(f"{source}: row {row}: missing time")
    reason = why or "is not epoch milliseconds between 1970 and 3000"
    raise DataError(f"{source}: row {row}: time {value!r} {reason}")


def check_bars(frame: pd.DataFrame, interval: str, source: str) -> None:
    """Times strictly increasing and every bar within :mod:`bot.core.bar_rules`."""
    starts = frame["start"].to_numpy()
    if len(starts) and np.any(np.diff(starts) <= 0):
        bad = int(np.flatnonzero(np.diff(starts) <= 0)[0]) + 1
        raise DataError(f"{source}: times not strictly increasing at row {bad} ({starts[bad]})")
    step = interval_ms(interval)
    if step <= 86_400_000 and len(starts) and np.any(starts % step):
        bad = int(np.flatnonzero(starts % step)[0])
        raise DataError(f"{source}: time {starts[bad]} at row {bad} is not on the {interval} grid")
    turnover = frame["turnover"].to_numpy() if "turnover" in frame else None
    refused, reasons = row_problems(starts, frame[list(FIELDS)].to_numpy(), step,
                                    turnover=turnover)  # fmt: skip
    if reasons:
        row = int(np.flatnonzero(refused)[0])
        more = f" (and {len(reasons) - 1:,} more bad rows)" if len(reasons) > 1 else ""
        raise DataError(f"{source}: row {row}: {reasons[0]}{more}")


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
    prefer: str = "csv",
) -> Panel:
    """Bars of ``symbols`` from files under ``root``, aligned, within ``[start, end)``
    (``prefer``: see :func:`find_bar_file`)."""
    frames = {s: read_bars(find_bar_file(root, s, interval, prefer), interval) for s in symbols}
    frames = clip_frames(frames, start, end)
    empty = [s for s, f in frames.items() if f.empty]
    if empty:
        raise DataError(f"no {interval} bars in the requested range for {', '.join(empty)}")
    return align(frames, symbols, interval)


def load_funding(root: Path, symbols: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Funding rates from ``<root>/funding-8h/<SYMBOL>.csv`` or ``.parquet`` (what ``bot data
    export`` writes) with columns ``timestamp_ms,funding_rate``; symbols without a file get
    none."""
    series = {}
    for symbol in symbols:
        found = [root / "funding-8h" / f"{symbol}{ext}" for ext in (".csv", ".parquet")]
        path = next((p for p in found if p.exists()), None)
        if path is not None:
            series[symbol] = read_funding(path)
    return series


def read_funding(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(times, rates) of one funding file, in time order; a bad time or a rate that is not a
    finite number is an error naming the row (one NaN rate would turn equity into NaN)."""
    frame = read_table(path)
    time_col = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if time_col is None or "funding_rate" not in frame.columns:
        raise DataError(f"{path}: expected columns timestamp_ms,funding_rate")
    times = epoch_ms(frame[time_col], str(path))
    rates = numbers(frame["funding_rate"], str(path))
    if not np.isfinite(rates).all():
        row = int(np.flatnonzero(~np.isfinite(rates))[0])
        raise DataError(f"{path}: row {row}: funding rate {rates[row]} is not a finite number")
    order = np.argsort(times, kind="stable")
    return times[order], rates[order]
