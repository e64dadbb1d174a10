"""Small causal indicators for vectorised strategies.

Each takes a history (``values[S, L]`` and ``ends[n]``, the last visible index at each decision
row) and returns ``[S, n]``. Each output only reads ``values[:, end-length+1 : end+1]`` and does
the same arithmetic whatever the block size, so a one-row call (live) and a many-row call
(replay) produce identical floats.
"""

from __future__ import annotations

import numpy as np

from bot.core.timeutil import interval_ms, period_index


def windows(values: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """``[S, n, length]`` copies of the ``length`` values ending at each of ``ends``;
    NaN where a window reaches before the start of the history."""
    index = ends[:, None] - (length - 1) + np.arange(length)[None, :]
    if len(ends) == 0 or ends[0] >= length - 1:  # ends ascend: no window reaches before 0
        return values[:, index]
    out = values[:, np.clip(index, 0, None)]
    return np.where(index[None, :, :] >= 0, out, np.nan)


def sma(values: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """Simple moving average of the last ``length`` values at each row."""
    return windows(values, ends, length).mean(axis=-1)


def pct_change(values: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """``values[end] / values[end - length] - 1`` at each row (NaN without enough history)."""
    now = values[:, np.clip(ends, 0, None)]
    back_index = ends - length
    then = values[:, np.clip(back_index, 0, None)]
    with np.errstate(divide="ignore", invalid="ignore"):
        change = now / then - 1.0
    return np.where((back_index >= 0)[None, :] & (ends >= 0)[None, :], change, np.nan)


def period_starts(times: np.ndarray, interval: str, period: str) -> np.ndarray:
    """True at rows whose bar closes exactly at the start of a new calendar ``period``
    (``"1d"``, ``"1w"`` = Monday 00:00 UTC, ``"8h"``...): the usual rebalance instants."""
    step = interval_ms(interval)
    length = interval_ms(period)
    if length % step:
        raise ValueError(f"rebalance period {period} is not a multiple of the bar {interval}")
    times = np.asarray(times, dtype=np.int64)
    return period_index(times, length) != period_index(times - step, length)
