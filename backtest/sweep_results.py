"""A sweep's trials scored, ranked and laid out as one table (terminal, JSON and HTML alike).

A trial's score is its ``metric`` averaged over the in-sample spans (the folds, or the whole
period without folds), with its standard deviation over folds: a score that swings between
folds is worth less than its mean says. The holdout's Sharpe ratio and return sit beside it,
never in the ranking, so the table shows at a glance when the best in-sample trial falls apart
on data it was not chosen on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backtest.sweep_trial import TrialOutcome

#: Metrics a sweep can rank by, and their direction (+1: higher is better).
METRICS: dict[str, int] = {
    "sharpe": 1, "sortino": 1, "calmar": 1, "total_return": 1, "cagr": 1, "profit_factor": 1,
    "win_rate": 1, "max_drawdown": -1, "annual_volatility": -1,
}  # fmt: skip
#: The metrics every row of the table shows (in-sample means with folds).
SHOWN = ("sharpe", "total_return", "max_drawdown", "annual_turnover")
LABELS = {"sharpe": "sharpe", "total_return": "return", "max_drawdown": "max dd",
          "annual_turnover": "turnover/yr"}  # fmt: skip
HOLDOUT = "holdout"


def _value(metrics: dict[str, Any], name: str) -> float:
    """A stored metric as a float; an undefined one (stored as None) is NaN."""
    value = metrics.get(name)
    return float("nan") if value is None else float(value)


@dataclass
class TrialResult:
    """One parameter set and the outcome of each of its spans (by span name)."""

    trial: int
    params: dict[str, Any]
    outcomes: dict[str, TrialOutcome] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        """The first failed span's error (a failed trial is not ranked)."""
        for span, outcome in self.outcomes.items():
            if outcome.error is not None:
                return f"{span}: {outcome.error}"
        return None

    def in_sample(self, name: str) -> list[float]:
        return [_value(o.metrics, name) for s, o in self.outcomes.items() if s != HOLDOUT]

    def mean(self, name: str) -> float:
        values = self.in_sample(name)
        return float(np.mean(values)) if values and self.error is None else float("nan")

    def spread(self, name: str) -> float:
        """Standard deviation over folds (0 with one span, NaN when failed)."""
        values = self.in_sample(name)
        if self.error is not None or not values:
            return float("nan")
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def holdout(self, name: str) -> float:
        outcome = self.outcomes.get(HOLDOUT)
        return float("nan") if outcome is None else _value(outcome.metrics, name)


def rank(trials: list[TrialResult], metric: str) -> list[TrialResult]:
    """Best first by the mean in-sample ``metric``; failed trials and undefined scores last,
    ties in trial order (the same table for the same outcomes, whatever their arrival)."""
    sign = METRICS[metric]

    def key(t: TrialResult) -> tuple[bool, float, int]:
        score = t.mean(metric)
        bad = math.isnan(score)
        return bad, 0.0 if bad else -sign * score, t.trial

    return sorted(trials, key=key)


def params_text(params: dict[str, Any]) -> str:
    """``lookback=24 top=2``: a parameter set on one line."""
    return " ".join(f"{k}={v}" for k, v in params.items())


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def frame(ranked: list[TrialResult], metric: str, *, folds: bool) -> pd.DataFrame:
    """The ranked table: one row per trial, its parameters as columns, the in-sample metrics
    (``IS``: means over folds) with the score's spread, then the holdout's (``OOS``) Sharpe
    ratio and return; an ``error`` column when a trial failed."""
    prefix = "IS " if folds else ""
    holdout = any(HOLDOUT in t.outcomes for t in ranked)
    failures = any(t.error is not None for t in ranked)
    rows = []
    for place, t in enumerate(ranked, start=1):
        row: dict[str, Any] = {"rank": place, "trial": t.trial, **t.params}
        for name in (*([] if metric in SHOWN else [metric]), *SHOWN):
            row[prefix + LABELS.get(name, name)] = t.mean(name)
            if folds and name == metric:
                row[f"IS {LABELS.get(name, name)} sd"] = t.spread(metric)
        if holdout:
            row["OOS sharpe"] = t.holdout("sharpe")
            row["OOS return"] = t.holdout("total_return")
        if failures:
            row["error"] = t.error or ""
        rows.append(row)
    return pd.DataFrame(rows)


def trial_json(t: TrialResult, place: int, metric: str) -> dict[str, Any]:
    """A trial for ``--json``: score, parameters and every span's run id and metrics."""
    return {
        "rank": place,
        "trial": t.trial,
        "params": t.params,
        "score": _json_number(t.mean(metric)),
        "score_sd": _json_number(t.spread(metric)),
        "error": t.error,
        "runs": {
            span: {"run_id": o.run_id, "metrics": o.metrics or None, "error": o.error}
            for span, o in t.outcomes.items()
        },
    }
