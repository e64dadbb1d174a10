"""Higher-interval bars built from base bars, without lookahead.

A 1h bar is emitted only at the base row that closes its hour (or, if that row never came, at
the first row of a later hour); until then it is *forming* and invisible. A bucket whose start
was not observed (the stream began mid-hour) is dropped rather than published half-built.
Missing symbols inside a bucket are skipped the way Bybit skips minutes without trades.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from bot.core.events import CLOSE, HIGH, LOW, OPEN, VOLUME
from bot.core.timeutil import WEEK_MS, WEEK_OFFSET_MS


@dataclass(frozen=True, slots=True)
class AggregatedRows:
    """Completed higher-interval bars: ``visible_at[k]`` is the base row that revealed bar k."""

    starts: np.ndarray
    values: np.ndarray
    present: np.ndarray
    visible_at: np.ndarray


def aggregate_bucket(values: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OHLCV of one bucket from its base rows ``values[k, S, F]`` → ``([S, F], present[S])``."""
    k, width = present.shape
    any_present = present.any(axis=0)
    first = present.argmax(axis=0)
    last = k - 1 - present[::-1].argmax(axis=0)
    cols = np.arange(width)
    out = np.full((width, values.shape[2]), np.nan)
    out[:, OPEN] = values[first, cols, OPEN]
    out[:, CLOSE] = values[last, cols, CLOSE]
    masked_high = np.where(present, values[:, :, HIGH], -np.inf)
    masked_low = np.where(present, values[:, :, LOW], np.inf)
    out[:, HIGH] = masked_high.max(axis=0)
    out[:, LOW] = masked_low.min(axis=0)
    out[:, VOLUME] = np.where(present, values[:, :, VOLUME], 0.0).sum(axis=0)
    out[~any_present] = np.nan
    return out, any_present


class Aggregator:
    """Turns a stream of base rows into completed rows of one higher interval."""

    def __init__(self, base_ms: int, target_ms: int) -> None:
        if target_ms <= base_ms or target_ms % base_ms:
            raise ValueError(f"interval {target_ms} ms is not a multiple of base {base_ms} ms")
        self.base_ms = base_ms
        self.target_ms = target_ms
        self._offset = WEEK_OFFSET_MS if target_ms % WEEK_MS == 0 else 0
        # The forming bucket: copies of its base rows seen so far (starts, values, present).
        self._rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._bucket: int | None = None

    def _bucket_of(self, starts: np.ndarray) -> np.ndarray:
        return (starts - self._offset) // self.target_ms

    def push(self, starts: np.ndarray, values: np.ndarray, present: np.ndarray, first_row: int):
        """Feed base rows (global indices from ``first_row``); return bars completed by them."""
        n = len(starts)
        buckets = self._bucket_of(starts)
        closes_bucket = (starts + self.base_ms - self._offset) % self.target_ms == 0
        out_starts: list[int] = []
        out_values: list[np.ndarray] = []
        out_present: list[np.ndarray] = []
        out_visible: list[int] = []

        def emit(visible_row: int) -> None:
            bucket_starts, bucket_values, bucket_present = (
                np.concatenate([part[i] for part in self._rows]) for i in range(3)
            )
            bucket_start = int(self._bucket) * self.target_ms + self._offset
            if bucket_starts[0] == bucket_start:  # observed from its first base bar
                bar, mask = aggregate_bucket(bucket_values, bucket_present)
                out_starts.append(bucket_start)
                out_values.append(bar)
                out_present.append(mask)
                out_visible.append(visible_row)
            self._rows.clear()
            self._bucket = None

        # Segment the block where the bucket changes; each segment joins the forming bucket.
        cuts = np.flatnonzero(np.diff(buckets)) + 1
        bounds = [0, *cuts.tolist(), n]
        for lo, hi in itertools.pairwise(bounds):
            bucket = int(buckets[lo])
            if self._bucket is not None and bucket != self._bucket:
                emit(first_row + lo)  # the closing row never came; revealed by this later row
            self._bucket = bucket
            self._rows.append((starts[lo:hi].copy(), values[lo:hi].copy(), present[lo:hi].copy()))
            if closes_bucket[hi - 1]:
                emit(first_row + hi - 1)

        if not out_starts:
            width, fields = values.shape[1], values.shape[2]
            return AggregatedRows(
                np.zeros(0, np.int64),
                np.zeros((0, width, fields)),
                np.zeros((0, width), bool),
                np.zeros(0, np.int64),
            )
        return AggregatedRows(
            np.asarray(out_starts, dtype=np.int64),
            np.stack(out_values),
            np.stack(out_present),
            np.asarray(out_visible, dtype=np.int64),
        )
