"""What the peers share: the workload's data, the price rounding, the sizing rule and the CLI.

numpy-only (plus ``bot.feeds.synthetic`` for the bars), so the orchestrator can import it from
the project venv to prepare the one data set every engine receives.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import resource
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np

from bot.feeds.synthetic import synthetic_panel

SYMBOL = "SYNUSDT"
INTERVAL = "1m"
#: Price decimals of the benchmark data. NautilusTrader stores prices as fixed-point decimals
#: of the instrument's precision, so every engine must see prices already rounded to it.
PRICE_DECIMALS = 6
#: ``ohlcv`` columns.
OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)

#: Workload defaults (the benchmark's): 10 bp taker fee, 100k USDT, 0.001 qty step, SMA 10/30.
DEFAULTS = {"fee_rate": 0.001, "cash": 100_000.0, "qty_step": 0.001, "fast": 10, "slow": 30}


def _round_column(column: np.ndarray, decimals: int) -> np.ndarray:
    scale = 10.0**decimals
    scaled = column * scale
    whole = np.trunc(scaled)
    half = np.abs(scaled - whole) >= 0.5  # exact: scaled - trunc(scaled) has no rounding
    whole[half] += np.sign(scaled[half])
    return np.divide(whole, scale, out=whole)


def round_prices(ohlcv: np.ndarray, decimals: int = PRICE_DECIMALS) -> np.ndarray:
    """A copy of ``ohlcv`` (``[..., 5]``) with open/high/low/close rounded to ``decimals``.

    Rounds half away from zero, as NautilusTrader's ``Price(value, precision)`` does
    (``(value * 10**p).round()``), and divides back by ``10**p`` so the float of each price is
    the nearest double to its decimal — bit-identical to ``Price(...).as_double()`` in
    NautilusTrader (checked on every price of the 1M-bar set). Idempotent. Rounding is
    monotone, so high >= open, close >= low still holds. Volume is left alone (no strategy here
    reads it).
    """
    out = np.array(ohlcv, dtype=np.float64, copy=True)
    for field in range(VOLUME):  # one column at a time: keeps the temporaries small
        out[..., field] = _round_column(out[..., field], decimals)
    return out


def is_rounded(ohlcv: np.ndarray, decimals: int = PRICE_DECIMALS) -> bool:
    """Whether every price of ``ohlcv`` is already what :func:`round_prices` would make it."""
    return all(
        np.array_equal(_round_column(ohlcv[..., field], decimals), ohlcv[..., field])
        for field in range(VOLUME)
    )


def step_decimals(step: float) -> int:
    """Decimal places of a quantity step such as 0.001 (3)."""
    return max(0, -int(Decimal(repr(step)).normalize().as_tuple().exponent))


def order_qty(equity: float, price: float, qty_step: float, decimals: int) -> float:
    """The project's sizing rule for an all-in buy: ``equity / price`` rounded toward zero to a
    whole number of ``qty_step`` (with the same ``+1e-9`` step tolerance as
    ``InstrumentSpec.round_qty``), then to the step's decimals; 0.0 when that is not even one
    step or the account has nothing to size against."""
    if not (math.isfinite(equity) and equity > 0 and price > 0):
        return 0.0
    steps = math.floor(equity / price / qty_step + 1e-9)
    return round(steps * qty_step, decimals) if steps >= 1 else 0.0


def make_data(bars: int, seed: int = 7, decimals: int | None = PRICE_DECIMALS):
    """``(starts_ms[n] int64, ohlcv[n, 5] float64)`` of the benchmark's seeded synthetic bars
    (``synthetic_panel((SYMBOL,), "1m", bars, seed)``), prices rounded to ``decimals``
    (``None``: raw floats)."""
    panel = synthetic_panel((SYMBOL,), INTERVAL, bars, seed=seed)
    starts = np.ascontiguousarray(panel.starts, dtype=np.int64)
    ohlcv = np.ascontiguousarray(panel.values[:, 0, :], dtype=np.float64)
    if decimals is not None:
        ohlcv = round_prices(ohlcv, decimals)
    return starts, ohlcv


def digest(starts_ms: np.ndarray, ohlcv: np.ndarray) -> str:
    """Short fingerprint of the input, to show every engine got the same bars."""
    h = hashlib.sha1(np.ascontiguousarray(starts_ms, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(ohlcv, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(run: Callable[..., dict], argv: list[str] | None = None) -> dict:
    """Command line of a peer: make (or load) the data, run, print one JSON line."""
    parser = argparse.ArgumentParser(description=f"benchmark peer: {run.__module__}")
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--decimals",
        type=int,
        default=PRICE_DECIMALS,
        help="round prices to this many decimals first (negative: keep raw floats)",
    )
    parser.add_argument(
        "--data", type=Path, help="load starts_ms/ohlcv from this .npz instead of generating"
    )
    parser.add_argument("--fee-rate", type=float, default=DEFAULTS["fee_rate"])
    parser.add_argument("--cash", type=float, default=DEFAULTS["cash"])
    parser.add_argument("--qty-step", type=float, default=DEFAULTS["qty_step"])
    parser.add_argument("--fast", type=int, default=DEFAULTS["fast"])
    parser.add_argument("--slow", type=int, default=DEFAULTS["slow"])
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.data is not None:
        with np.load(args.data) as npz:
            starts, ohlcv = npz["starts_ms"], npz["ohlcv"]
        if args.decimals >= 0 and not is_rounded(ohlcv, args.decimals):
            ohlcv = round_prices(ohlcv, args.decimals)
    else:
        starts, ohlcv = make_data(
            args.bars, args.seed, args.decimals if args.decimals >= 0 else None
        )
    data_seconds = time.perf_counter() - t0
    baseline = peak_rss_mb()
    result = run(
        starts,
        ohlcv,
        fee_rate=args.fee_rate,
        cash=args.cash,
        qty_step=args.qty_step,
        fast=args.fast,
        slow=args.slow,
    )
    result["bars_per_second"] = result["bars"] / result["run_seconds"]
    result["data_seconds"] = data_seconds  # generating the bars (not the engine's)
    result["data_digest"] = digest(starts, ohlcv)
    result["baseline_rss_mb"] = baseline  # peak RSS before the engine was touched
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)
    return result
