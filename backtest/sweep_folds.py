"""Walk-forward folds: where a sweep's trials are scored, and where they are checked after.

The period ``[start, end)`` is cut on the bar grid into ``K`` consecutive in-sample folds and,
last, an out-of-sample holdout. Trials are ranked on the folds only; the holdout, which no
ranking saw, shows whether the best in-sample trial holds up on data it was not chosen on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Fewest bars a span may have: one bar has no return to measure a Sharpe ratio from.
MIN_SPAN_BARS = 2
#: Holdout share of the period when folds are asked for and no ``--holdout`` is given.
DEFAULT_HOLDOUT = 0.25


class FoldError(ValueError):
    """Folds that cannot be cut as asked; the message names the flag."""


@dataclass(frozen=True)
class Span:
    """Bars starting in ``[start_ms, end_ms)``; ``name`` is how tables and stored runs call it."""

    name: str
    start_ms: int
    end_ms: int
    in_sample: bool


def walk_forward(
    start_ms: int, end_ms: int, interval_ms: int, folds: int, holdout: float
) -> list[Span]:
    """``folds`` in-sample spans of (nearly) equal bar counts, then the holdout span (none when
    ``holdout`` is 0). Spans are consecutive, do not overlap and cover the period exactly;
    boundaries fall on the bar grid that starts at ``start_ms``."""
    if folds < 1:
        raise FoldError(f"--folds {folds}: give at least 1")
    if not 0 <= holdout < 1:
        raise FoldError(f"--holdout {holdout}: give a fraction in [0, 1)")
    if end_ms <= start_ms:
        raise FoldError("--folds: the period is empty (engine.end must be after engine.start)")
    bars = math.ceil((end_ms - start_ms) / interval_ms)
    held = round(bars * holdout)
    if holdout and held < MIN_SPAN_BARS:
        raise FoldError(
            f"--holdout {holdout}: {held} of {bars} bars; the holdout needs {MIN_SPAN_BARS}"
        )
    per_fold, extra = divmod(bars - held, folds)
    if per_fold < MIN_SPAN_BARS:
        raise FoldError(
            f"--folds {folds}: {bars - held} in-sample bars leave fewer than {MIN_SPAN_BARS} "
            "bars per fold"
        )
    spans: list[Span] = []
    first = 0
    for k in range(folds):
        size = per_fold + (1 if k < extra else 0)
        spans.append(Span(f"fold {k + 1}", start_ms + first * interval_ms,
                          start_ms + (first + size) * interval_ms, True))  # fmt: skip
        first += size
    if held:
        spans.append(Span("holdout", start_ms + first * interval_ms, end_ms, False))
    else:  # the last fold ends where the period does, even off the grid
        last = spans[-1]
        spans[-1] = Span(last.name, last.start_ms, end_ms, True)
    return spans
