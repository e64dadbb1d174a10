"""The life of one candle: deterministic intra-bar states that end on the exact final bar.

A bar ``[s, s + interval)`` is pushed ``k`` times with ``confirm: false`` — update ``j`` at
``s + j·interval/k``, the first carrying just the open — then once with ``confirm: true`` and
the final values. The invented states behave like a real forming candle, so a client cannot
tell them from Bybit's: the open never changes, the close drifts toward the final close, high
and low are running extremes that never pass the final ones, volume and turnover only grow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bot.exchange.mix import uniform
from bot.exchange.numfmt import Step, fmt
from bot.exchange.tape import BarValues

_PATH, _VOLUME = 1, 2  # salts of the two random streams of a candle


@dataclass(frozen=True, slots=True)
class Candle:
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float
    confirm: bool


def final_turnover(bar: BarValues) -> float:
    """The bar's turnover; when the data has none, an estimate: volume × the mean of open,
    high, low and close (a rough VWAP), rounded to 4 decimals. Deterministic, so the stream and
    REST agree, but not a real traded value."""
    if not math.isnan(bar.turnover):
        return bar.turnover
    return round(bar.volume * (bar.open + bar.high + bar.low + bar.close) / 4.0, 4)


def candle_state(
    bar: BarValues, start: int, k: int, j: int, key: tuple[int, ...], tick: Step, qty: Step
) -> Candle:
    """The candle after update ``j`` of ``k`` (``j == k``: the final, confirmed bar).

    ``key`` (seed, symbol, start…) makes the invented path reproducible; prices of the path
    are on the tick grid, volumes on the quantity grid."""
    turnover = final_turnover(bar)
    if j >= k:
        return Candle(start, bar.open, bar.high, bar.low, bar.close, bar.volume, turnover, True)
    high = low = price = bar.open
    for i in range(1, j + 1):
        w = i / k
        wiggle = (2.0 * uniform(*key, _PATH, i) - 1.0) * (1.0 - w) * (bar.high - bar.low) / 2.0
        price = tick.round(bar.open + (bar.close - bar.open) * w + wiggle)
        price = min(max(price, bar.low), bar.high)
        high, low = max(high, price), min(low, price)
    share = (j + 0.1 + 0.8 * uniform(*key, _VOLUME, j)) / k  # in (j/k, (j+1)/k): grows with j
    volume = min(bar.volume, qty.round(bar.volume * share))
    partial_turnover = min(turnover, round(turnover * share, 4))
    return Candle(start, bar.open, high, low, price, volume, partial_turnover, False)


def update_index(offset: int, interval: int, k: int) -> int:
    """The last update ``j`` (0..k-1) of a candle pushed at or before ``offset`` ms into it;
    update ``j`` is pushed at ``j·interval // k``."""
    return min(k - 1, ((offset + 1) * k - 1) // interval)


def kline_message(code: str, symbol: str, candle: Candle, interval: int, ts: int) -> dict[str, Any]:
    """A ``kline.{code}.{symbol}`` push, shaped like Bybit's (times as numbers, values as
    strings)."""
    return {
        "topic": f"kline.{code}.{symbol}",
        "data": [
            {
                "start": candle.start,
                "end": candle.start + interval - 1,
                "interval": code,
                "open": fmt(candle.open),
                "close": fmt(candle.close),
                "high": fmt(candle.high),
                "low": fmt(candle.low),
                "volume": fmt(candle.volume),
                "turnover": fmt(candle.turnover),
                "confirm": candle.confirm,
                "timestamp": ts,
            }
        ],
        "ts": ts,
        "type": "snapshot",
    }


def kline_row(candle: Candle) -> list[str]:
    """A ``/v5/market/kline`` row: ``[start, open, high, low, close, volume, turnover]``."""
    return [
        str(candle.start),
        fmt(candle.open),
        fmt(candle.high),
        fmt(candle.low),
        fmt(candle.close),
        fmt(candle.volume),
        fmt(candle.turnover),
    ]
