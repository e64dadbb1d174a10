"""Backtest reports: the JSON a program reads and the picture a person looks at."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: the bot runs on servers without a display

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np

from backtest.metrics import drawdown_curve
from backtest.runner import BacktestResult


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_json(result: BacktestResult, path: Path, include_curve: bool = True) -> None:
    """Metrics, counts and (by default) the equity curve; NaN/inf become null."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(result.to_dict(include_curve)), indent=1))


def plot_equity(result: BacktestResult, path: Path, max_points: int = 5000) -> None:
    """Equity, drawdown and gross leverage over time, one panel each, as a PNG."""
    times, equity, gross = result.times, result.equity, result.gross
    step = max(1, len(times) // max_points)  # a 1M-bar curve does not need 1M points drawn
    keep = slice(None, None, step)
    when = (times[keep].astype("datetime64[ms]")).astype(object)
    drawdown = drawdown_curve(equity, result.metrics.initial_equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        leverage = np.where(equity > 0, gross / equity, np.nan)

    fig, (ax_eq, ax_dd, ax_lev) = plt.subplots(
        3, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1]}
    )
    metrics = result.metrics
    names = ", ".join(s.name for s in result.settings.strategies)
    ax_eq.set_title(
        f"{names} on {', '.join(result.settings.engine.symbols)} "
        f"({result.settings.engine.interval}) — run {result.run_id}\n"
        f"return {metrics.total_return:+.1%}, Sharpe {metrics.sharpe:.2f}, "
        f"max drawdown {metrics.max_drawdown:.1%}, fees {metrics.fees:,.0f}",
        fontsize=10,
    )
    ax_eq.plot(when, equity[keep], color="tab:blue", lw=1)
    ax_eq.axhline(metrics.initial_equity, color="grey", lw=0.7, ls="--")
    ax_eq.set_ylabel("equity (USDT)")
    ax_dd.fill_between(when, drawdown[keep] * 100, 0, color="tab:red", alpha=0.4, lw=0)
    ax_dd.set_ylabel("drawdown %")
    ax_lev.plot(when, leverage[keep], color="tab:green", lw=0.8)
    ax_lev.set_ylabel("gross lev.")
    ax_lev.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    for axis in (ax_eq, ax_dd, ax_lev):
        axis.grid(alpha=0.3)
    if result.halted_reason:
        ax_eq.annotate(f"halted: {result.halted_reason}", xy=(0.01, 0.02),
                       xycoords="axes fraction", fontsize=8, color="tab:red")  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
