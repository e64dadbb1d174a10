"""The statistics the evaluation reports beside each strategy's metrics.

* **Gross of costs and the break-even cost.** A run is made twice on the same decisions, with
  the configured fee and slippage and with none. The difference of their bar returns is what
  the costs took; it scales with the cost per fill, so the net returns at another cost ``c``
  are ``gross − (c / c₀) · (gross − net)``, and the net Sharpe ratio is zero where their mean
  is: ``c = c₀ · mean(gross) / mean(gross − net)``.
* **A block-bootstrap interval on the Sharpe difference to a benchmark.** Daily returns are
  resampled in blocks (keeping a block's autocorrelation and volatility clustering), the same
  blocks for every seed's run and for the benchmark, so what is compared is the strategy on the
  very days the benchmark is measured on; the statistic is the difference averaged over seeds.
"""

from __future__ import annotations

import math

import numpy as np

DAYS_PER_YEAR = 365


def daily_returns(equity: np.ndarray, initial: float, bars_per_day: int) -> np.ndarray:
    """Returns over whole days of bars (a trailing partial day is dropped)."""
    curve = np.concatenate([[initial], np.asarray(equity, dtype=float)])
    closes = curve[::bars_per_day]
    return closes[1:] / closes[:-1] - 1.0


def break_even_bp(gross: np.ndarray, net: np.ndarray, cost_bp: float) -> float | None:
    """The cost per fill (bp) at which the net Sharpe ratio would reach zero; 0.0 when the
    strategy loses before costs, None when it does not trade."""
    paid = float(np.mean(gross - net))
    earned = float(np.mean(gross))
    if not paid > 0:
        return None
    return max(0.0, cost_bp * earned / paid)


def sharpe(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe ratio (risk-free zero), NaN for a flat series."""
    spread = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    if not spread > 0:
        return math.nan
    return float(np.mean(returns)) / spread * math.sqrt(periods_per_year)


def block_indices(days: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """One circular block-bootstrap resample of ``days`` indices."""
    starts = rng.integers(0, days, size=math.ceil(days / block))
    return ((starts[:, None] + np.arange(block)[None, :]) % days).ravel()[:days]


def sharpe_difference_interval(
    runs: np.ndarray,
    benchmark: np.ndarray,
    block: int = 10,
    samples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(estimate, low, high) of mean over seeds of Sharpe(run) − Sharpe(benchmark), on daily
    returns ``runs[seeds, days]`` and ``benchmark[days]``."""
    runs = np.atleast_2d(runs)
    rng = np.random.default_rng(seed)

    def statistic(index: np.ndarray) -> float:
        base = sharpe(benchmark[index], DAYS_PER_YEAR)
        return float(np.mean([sharpe(r[index], DAYS_PER_YEAR) - base for r in runs]))

    estimate = statistic(np.arange(len(benchmark)))
    draws = np.array([statistic(block_indices(len(benchmark), block, rng)) for _ in range(samples)])
    draws = draws[np.isfinite(draws)]
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail]) if len(draws) else (math.nan, math.nan)
    return estimate, float(low), float(high)
