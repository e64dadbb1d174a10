"""What a bar must be before anything believes it: one set of rules for every way bars enter.

A forged or corrupted kline does lasting harm: once stored it is replayed on every restart and
read by every backtest, and a single ``inf`` halts a run for good. So every boundary where bars
come in (the websocket, REST, CSV/Parquet files, ``bot data import``) applies these rules, and
nothing downstream has to doubt a bar again:

* prices are finite, positive and at most :data:`MAX_PRICE`;
* ``low <= open, close <= high``;
* volume (and turnover, when given) is finite, non-negative and at most :data:`MAX_VOLUME`;
* the bar starts on the interval's grid (weeks start on Monday, like Bybit's);
* it does not start after ``now + one interval`` (when the caller knows "now": the venue's
  server time), so a bar dated in the future cannot mark a symbol delivered up to that date.

The limits are deliberately generous: they reject what no market can print (a price of 1e300,
a negative volume), not unusual markets. A bar that passes may still be wrong (a forged but
plausible value); the live stream cross-checks its closed bars against REST for that.

Pure functions over numbers and arrays (no I/O), so each rule is a unit test.
"""

from __future__ import annotations

import math

import numpy as np

from bot.core.events import FIELDS, Bar
from bot.core.timeutil import WEEK_MS, WEEK_OFFSET_MS

#: No instrument trades above this (USDT per contract): far beyond any real price, far below
#: the magnitudes that overflow sums of notional or reveal a corrupted number.
MAX_PRICE = 1e9
#: Per bar, in the base asset (the most liquid meme coins trade ~1e12 units a day).
MAX_VOLUME = 1e15


def grid_offset(step_ms: int) -> int:
    """Where the interval's grid starts: weekly bars open on Mondays (1970-01-05)."""
    return WEEK_OFFSET_MS if step_ms % WEEK_MS == 0 else 0


def on_grid(start: int, step_ms: int) -> bool:
    return (start - grid_offset(step_ms)) % step_ms == 0


def bar_problem(
    start: int,
    open_: float,
    high: float,
    low: float,
    close: float,
    volume: float,
    step_ms: int,
    *,
    turnover: float | None = None,
    now_ms: int | None = None,
) -> str | None:
    """Why one bar must be refused (a short phrase), or None when it passes every rule."""
    prices = (open_, high, low, close)
    if not all(isinstance(p, float | int) and math.isfinite(p) for p in prices):
        return f"non-finite price (o={open_} h={high} l={low} c={close})"
    if min(prices) <= 0:
        return f"price not positive (o={open_} h={high} l={low} c={close})"
    if max(prices) > MAX_PRICE:
        return f"implausible price above {MAX_PRICE:g} (h={high})"
    if not (low <= min(open_, close) and high >= max(open_, close)):
        return f"inconsistent range (o={open_} h={high} l={low} c={close})"
    if not (math.isfinite(volume) and 0 <= volume <= MAX_VOLUME):
        return f"bad volume {volume}"
    known = turnover is not None and not math.isnan(turnover)
    if known and not (math.isfinite(turnover) and turnover >= 0):
        return f"bad turnover {turnover}"
    if not on_grid(start, step_ms):
        return f"start {start} is not on the {step_ms} ms grid"
    if now_ms is not None and start > now_ms + step_ms:
        return f"start {start} is in the future (server time {now_ms})"
    return None


def row_problems(
    starts: np.ndarray,
    values: np.ndarray,
    step_ms: int,
    *,
    turnover: np.ndarray | None = None,
    now_ms: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The rules of :func:`bar_problem` over many bars at once.

    ``starts``: int64 bar starts; ``values``: ``[n, 5]`` OHLCV in :data:`FIELDS` order.
    Returns a boolean mask of the refused rows and, for each refused row in order, the reason.
    """
    starts = np.asarray(starts, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64).reshape(len(starts), len(FIELDS))
    bad = np.zeros(len(starts), dtype=bool)
    reasons: dict[int, str] = {}

    def refuse(mask: np.ndarray, why) -> None:
        for i in np.flatnonzero(mask & ~bad).tolist():
            reasons[i] = why(i)
        bad[:] |= mask

    o, h, lo, c, v = (values[:, k] for k in range(len(FIELDS)))
    prices = values[:, :4]
    with np.errstate(invalid="ignore"):
        refuse(~np.isfinite(prices).all(axis=1),
               lambda i: f"non-finite price {_ohlc(values[i])}")  # fmt: skip
        refuse((prices <= 0).any(axis=1), lambda i: f"price not positive {_ohlc(values[i])}")
        refuse((prices > MAX_PRICE).any(axis=1),
               lambda i: f"implausible price above {MAX_PRICE:g} {_ohlc(values[i])}")  # fmt: skip
        refuse((lo > np.minimum(o, c)) | (h < np.maximum(o, c)),
               lambda i: f"inconsistent range {_ohlc(values[i])}")  # fmt: skip
        refuse(~(np.isfinite(v) & (v >= 0) & (v <= MAX_VOLUME)), lambda i: f"bad volume {v[i]}")
        if turnover is not None:
            t = np.asarray(turnover, dtype=np.float64)
            refuse(~np.isnan(t) & ~(np.isfinite(t) & (t >= 0)),
                   lambda i: f"bad turnover {t[i]}")  # fmt: skip
    refuse((starts - grid_offset(step_ms)) % step_ms != 0,
           lambda i: f"start {starts[i]} is not on the {step_ms} ms grid")  # fmt: skip
    if now_ms is not None:
        refuse(starts > now_ms + step_ms,
               lambda i: f"start {starts[i]} is in the future (server time {now_ms})")  # fmt: skip
    return bad, [reasons[i] for i in sorted(reasons)]


def _ohlc(row: np.ndarray) -> str:
    o, h, lo, c = row[:4].tolist()
    return f"(o={o} h={h} l={lo} c={c})"


def bar_differences(seen: Bar, venue: Bar) -> str:
    """What differs between two versions of a bar, for a log line ("close 101.5 → 100.9")."""
    fields = ("open", "high", "low", "close", "volume")
    return ", ".join(
        f"{name} {getattr(seen, name):g} → {getattr(venue, name):g}"
        for name in fields
        if getattr(seen, name) != getattr(venue, name)
    )
