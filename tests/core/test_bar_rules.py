"""The bar rules: what every boundary refuses, and the scalar and array forms agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.core.bar_rules import MAX_PRICE, bar_problem, on_grid, row_problems
from bot.core.timeutil import DAY_MS, HOUR_MS, WEEK_MS, to_ms

T = to_ms("2024-03-04")  # a Monday
GOOD = (100.0, 110.0, 95.0, 105.0, 12.5)

CASES = [
    ((T, *GOOD), None),
    ((T, 100.0, 100.0, 100.0, 100.0, 0.0), None),  # a quiet bar: flat, no volume
    ((T, 0.0, 110.0, 0.0, 105.0, 1.0), "price not positive"),
    ((T, -1.0, 110.0, -2.0, 105.0, 1.0), "price not positive"),
    ((T, math.inf, math.inf, 95.0, 105.0, 1.0), "non-finite price"),
    ((T, math.nan, 110.0, 95.0, 105.0, 1.0), "non-finite price"),
    ((T, 100.0, MAX_PRICE * 10, 95.0, 105.0, 1.0), "implausible price"),
    ((T, 100.0, 90.0, 95.0, 105.0, 1.0), "inconsistent range"),  # high below low
    ((T, 100.0, 104.0, 95.0, 105.0, 1.0), "inconsistent range"),  # close above high
    ((T, 94.0, 110.0, 95.0, 105.0, 1.0), "inconsistent range"),  # open below low
    ((T, *GOOD[:4], -1.0), "bad volume"),
    ((T, *GOOD[:4], math.inf), "bad volume"),
    ((T + 1, *GOOD), "not on the"),
]


@pytest.mark.parametrize(("bar", "problem"), CASES)
def test_each_rule_refuses_what_no_market_prints(bar, problem):
    found = bar_problem(*bar, HOUR_MS)
    assert (found is None) if problem is None else (problem in found)


def test_the_array_form_refuses_the_same_rows_with_the_same_reasons():
    starts = np.array([bar[0] for bar, _ in CASES], dtype=np.int64)
    values = np.array([bar[1:] for bar, _ in CASES])
    bad, reasons = row_problems(starts, values, HOUR_MS)
    assert bad.tolist() == [problem is not None for _, problem in CASES]
    expected = [problem for _, problem in CASES if problem is not None]
    assert len(reasons) == len(expected)
    assert all(want in got for want, got in zip(expected, reasons, strict=True))


def test_turnover_may_be_unknown_but_not_negative():
    assert bar_problem(T, *GOOD, HOUR_MS, turnover=math.nan) is None
    assert "bad turnover" in bar_problem(T, *GOOD, HOUR_MS, turnover=-1.0)
    bad, _ = row_problems(np.array([T, T + HOUR_MS]), np.array([GOOD, GOOD]), HOUR_MS,
                          turnover=np.array([np.nan, -3.0]))  # fmt: skip
    assert bad.tolist() == [False, True]


def test_a_bar_may_not_start_after_the_server_clock_plus_one_interval():
    now = T + 10 * HOUR_MS + 5
    assert bar_problem(T + 11 * HOUR_MS, *GOOD, HOUR_MS, now_ms=now) is None
    assert "in the future" in bar_problem(T + 12 * HOUR_MS, *GOOD, HOUR_MS, now_ms=now)
    bad, _ = row_problems(np.array([T + 11 * HOUR_MS, T + 5000 * HOUR_MS]),
                          np.array([GOOD, GOOD]), HOUR_MS, now_ms=now)  # fmt: skip
    assert bad.tolist() == [False, True]


def test_weeks_start_on_monday_like_bybits():
    assert on_grid(T, WEEK_MS) and not on_grid(T + DAY_MS, WEEK_MS)
    assert on_grid(T + DAY_MS, DAY_MS)
