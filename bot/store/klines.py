"""Kline rows for the store: from DataFrames and Panels in, to DataFrames out.

Rows are built column-wise with NumPy and ``tolist()`` (plain Python ints and floats, what the
drivers take), never row by row through pandas, which is what keeps an import of millions of
bars fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from bot.core.events import FIELDS, Panel

#: Columns of a kline frame, in order; ``turnover`` is optional on input.
COLUMNS = ("start", *FIELDS, "turnover")


def frame_chunks(
    symbol: str, interval: str, frame: pd.DataFrame, chunk_rows: int
) -> Iterator[list[tuple]]:
    """Row tuples (``writes.KLINE_KEYS`` order) of ``frame``, ``chunk_rows`` at a time, so the
    rows in flight stay bounded however long the frame is."""
    missing = [c for c in COLUMNS[:-1] if c not in frame.columns]
    if missing:
        raise ValueError(f"kline frame lacks columns {missing}")
    if frame["start"].dtype.kind not in "iu":
        raise ValueError(f"kline start must be integer epoch ms, not {frame['start'].dtype}")
    has_turnover = "turnover" in frame.columns
    for lo in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[lo : lo + chunk_rows]
        turnover = (
            chunk["turnover"].to_numpy(dtype=np.float64)
            if has_turnover
            else np.full(len(chunk), np.nan)
        )
        yield _rows(
            [symbol] * len(chunk),
            interval,
            chunk["start"].to_numpy(),
            chunk[list(FIELDS)].to_numpy(dtype=np.float64),
            turnover,
        )


def panel_rows(interval: str, panel: Panel) -> list[tuple]:
    """Row tuples of the bars present in ``panel``, step by step, symbols in panel order."""
    rows, cols = np.nonzero(panel.present)
    turnover = np.full(len(rows), np.nan) if panel.turnover is None else panel.turnover[rows, cols]
    symbols = [panel.symbols[c] for c in cols.tolist()]
    return _rows(symbols, interval, panel.starts[rows], panel.values[rows, cols], turnover)


def _rows(
    symbols: Sequence[str],
    interval: str,
    starts: np.ndarray,
    values: np.ndarray,
    turnover: np.ndarray,
) -> list[tuple]:
    turnover_list = np.where(np.isnan(turnover), None, turnover).tolist()  # NaN -> NULL
    return [
        (symbol, interval, start, o, h, low, c, v, t)
        for symbol, start, (o, h, low, c, v), t in zip(
            symbols, starts.tolist(), values.tolist(), turnover_list, strict=True
        )
    ]


def to_frame(partitions: Iterable[Sequence[tuple]]) -> pd.DataFrame:
    """A kline frame from result partitions of ``COLUMNS`` tuples (NULL turnover -> NaN).

    Each partition becomes one float array (NULL converts to NaN on the way); ``start`` goes
    back to int64 exactly, since epoch milliseconds are far below 2**53. Rows are made plain
    tuples first: NumPy reads SQLAlchemy ``Row`` objects element by element, 30x slower.
    """
    blocks = [
        np.array([tuple(row) for row in part], dtype=np.float64).reshape(-1, len(COLUMNS))
        for part in partitions
    ]
    data = np.concatenate(blocks) if blocks else np.empty((0, len(COLUMNS)))
    frame = pd.DataFrame(data, columns=list(COLUMNS))
    frame["start"] = frame["start"].astype(np.int64)
    return frame
