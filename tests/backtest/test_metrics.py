"""Tests of backtest.metrics: hand-checkable cases and a cross-check against empyrical.

empyrical (the `empyrical-reloaded` distribution) is an independent implementation of the same
textbook formulas; fed the same bar returns and the same annualisation factor, it must agree
with ours to rounding error, on a synthetic curve and on real BTC prices.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import empyrical
import numpy as np
import pytest

from backtest.metrics import (
    Metrics,
    bar_returns,
    compute_metrics,
    format_table,
    periods_per_year,
)

HOUR = 3_600_000
DAY = 86_400_000
REPO_ROOT = Path(__file__).resolve().parents[2]


def metrics_of(
    equity: list[float] | np.ndarray,
    *,
    initial_equity: float = 100.0,
    interval_ms: int = HOUR,
    times: np.ndarray | None = None,
    gross: list[float] | np.ndarray | None = None,
    traded_notional: float = 0.0,
    fees: float = 0.0,
    funding: float = 0.0,
    trade_count: int = 0,
    realized: Sequence[float] = (),
) -> Metrics:
    """compute_metrics with close times 1..n intervals after a start at 0 and flat defaults."""
    equity = np.asarray(equity, dtype=np.float64)
    n = len(equity)
    return compute_metrics(
        np.arange(1, n + 1, dtype=np.int64) * interval_ms if times is None else times,
        equity,
        initial_equity=initial_equity,
        interval_ms=interval_ms,
        gross=np.zeros(n) if gross is None else np.asarray(gross, dtype=np.float64),
        traded_notional=traded_notional,
        fees=fees,
        funding=funding,
        trade_count=trade_count,
        realized=list(realized),
    )


def data_dir() -> Path:
    """The shared market data folder: $BOT_DATA_DIR, else <repo>/../shared/data."""
    return Path(os.environ.get("BOT_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


# --- cross-check against empyrical -----------------------------------------------------------


def synthetic_curve() -> tuple[np.ndarray, np.ndarray, float, int]:
    """Seeded random walk of 5000 4h bars with drift, so it has both gains and drawdowns."""
    rng = np.random.default_rng(20240601)
    interval = 4 * HOUR
    initial = 10_000.0
    equity = initial * np.cumprod(1.0 + rng.normal(0.0003, 0.01, size=5000))
    times = 1_700_000_000_000 + interval * np.arange(1, len(equity) + 1, dtype=np.int64)
    return times, equity, initial, interval


def btc_buy_and_hold_curve() -> tuple[np.ndarray, np.ndarray, float, int]:
    """Buy-and-hold BTCUSDT on 1h Bybit linear bars: equity follows the close price."""
    path = data_dir() / "bybit-linear" / "1h" / "BTCUSDT.csv"
    if not path.is_file():
        pytest.skip(f"real-data cross-check needs {path} (set BOT_DATA_DIR to the data folder)")
    with path.open() as f:
        assert f.readline().strip() == "timestamp_ms,open,high,low,close,volume"
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    initial = 10_000.0
    close = table[:, 4]
    times = table[:, 0].astype(np.int64) + HOUR
    return times, initial * close / close[0], initial, HOUR


@pytest.fixture(params=["synthetic", "btc_1h"])
def curve(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray, float, int]:
    if request.param == "synthetic":
        return synthetic_curve()
    return btc_buy_and_hold_curve()


def test_matches_empyrical(curve: tuple[np.ndarray, np.ndarray, float, int]) -> None:
    times, equity, initial, interval = curve
    m = metrics_of(equity, initial_equity=initial, interval_ms=interval, times=times)
    r = bar_returns(equity, initial)
    ppy = periods_per_year(interval)
    assert len(r) == m.bars > 1000
    # The curve must exercise every branch being compared: a real drawdown and losing bars.
    assert m.max_drawdown > 0.05
    assert (r < 0).sum() > 100

    rel = 1e-10
    assert m.sharpe == pytest.approx(empyrical.sharpe_ratio(r, annualization=ppy), rel=rel)
    assert m.sortino == pytest.approx(empyrical.sortino_ratio(r, annualization=ppy), rel=rel)
    assert m.annual_volatility == pytest.approx(
        empyrical.annual_volatility(r, annualization=ppy), rel=rel
    )
    assert m.cagr == pytest.approx(empyrical.annual_return(r, annualization=ppy), rel=rel)
    assert m.max_drawdown == pytest.approx(-empyrical.max_drawdown(r), rel=rel)
    assert m.calmar == pytest.approx(empyrical.calmar_ratio(r, annualization=ppy), rel=rel)
    assert m.total_return == pytest.approx(equity[-1] / initial - 1, rel=rel)


def test_btc_curve_uses_hourly_annualisation() -> None:
    times, equity, initial, interval = btc_buy_and_hold_curve()
    m = metrics_of(equity, initial_equity=initial, interval_ms=interval, times=times)
    assert m.start == times[0] and m.end == times[-1]
    assert m.final_equity == pytest.approx(equity[-1])
    expected_cagr = (equity[-1] / initial) ** (8760 / len(equity)) - 1
    assert m.cagr == pytest.approx(expected_cagr, rel=1e-12)


# --- annualisation and returns ---------------------------------------------------------------


def test_periods_per_year_uses_365_days() -> None:
    assert periods_per_year(HOUR) == 8760.0
    assert periods_per_year(HOUR) != 252 * 24
    assert periods_per_year(DAY) == 365.0
    assert periods_per_year(60_000) == 525_600.0
    assert periods_per_year(4 * HOUR) == 2190.0


@pytest.mark.parametrize("interval_ms", [0, -HOUR])
def test_periods_per_year_rejects_non_positive_interval(interval_ms: int) -> None:
    with pytest.raises(ValueError, match="interval_ms must be positive"):
        periods_per_year(interval_ms)


def test_bar_returns_measure_first_bar_against_initial_equity() -> None:
    r = bar_returns(np.array([110.0, 99.0, 99.0, 148.5]), 100.0)
    np.testing.assert_allclose(r, [0.10, -0.10, 0.0, 0.5], rtol=0, atol=1e-15)


# --- hand-checkable values -------------------------------------------------------------------


def test_returns_and_ratios_by_hand() -> None:
    # Daily returns +2%, -1%, +2%, -1%: mean 0.005, sample variance 0.0003, and a downside
    # deviation of sqrt((0.01**2 + 0.01**2) / 4) = sqrt(5e-5), so with 365 periods a year:
    returns = np.array([0.02, -0.01, 0.02, -0.01])
    m = metrics_of(100.0 * np.cumprod(1 + returns), interval_ms=DAY)
    assert m.annual_volatility == pytest.approx(math.sqrt(0.0003 * 365), rel=1e-12)
    assert m.sharpe == pytest.approx(math.sqrt(365 / 12), rel=1e-12)
    assert m.sortino == pytest.approx(math.sqrt(182.5), rel=1e-12)
    final = 1.02**2 * 0.99**2
    assert m.total_return == pytest.approx(final - 1, rel=1e-12)
    assert m.cagr == pytest.approx(final ** (365 / 4) - 1, rel=1e-12)


@pytest.mark.parametrize(("bars", "expected_cagr"), [(365, 0.21), (730, 0.10)])
def test_cagr_compounds_over_calendar_years(bars: int, expected_cagr: float) -> None:
    equity = np.linspace(100.0, 121.0, bars + 1)[1:]
    m = metrics_of(equity, interval_ms=DAY)
    assert m.total_return == pytest.approx(0.21, rel=1e-12)
    assert m.cagr == pytest.approx(expected_cagr, rel=1e-12)


def test_drawdown_from_initial_equity_and_its_recovery() -> None:
    # initial 100 at t=0; 90 on the first bar is a 10% drawdown from the initial equity (without
    # it the worst would be 110 -> 105). It recovers at t=3h exactly at the peak (3h), later
    # 110 -> 105 -> 120 takes 2h, and 120 -> 115 at the end is still open after 1h.
    m = metrics_of([90, 95, 100, 110, 105, 120, 115])
    assert m.max_drawdown == pytest.approx(0.10, rel=1e-12)
    assert m.max_drawdown_duration_ms == 3 * HOUR
    assert m.max_drawdown_duration_days == pytest.approx(3 / 24)
    assert m.calmar == pytest.approx(m.cagr / 0.10, rel=1e-12)


def test_drawdown_never_recovered_lasts_until_the_end() -> None:
    # Peak 120 at t=2h, then 110, 90, 100, 115 to t=6h without regaining it: 4h, 25%.
    m = metrics_of([100, 120, 110, 90, 100, 115])
    assert m.max_drawdown == pytest.approx(0.25, rel=1e-12)
    assert m.max_drawdown_duration_ms == 4 * HOUR


def test_drawdown_from_the_first_bar_counts_from_the_start() -> None:
    # The initial equity is held from the open of the first bar (t=0), so 90, 80 is underwater
    # for two full bars.
    m = metrics_of([90, 80], times=np.array([5 * HOUR, 6 * HOUR]))
    assert m.max_drawdown == pytest.approx(0.20, rel=1e-12)
    assert m.max_drawdown_duration_ms == 2 * HOUR


def test_flat_curve_has_no_drawdown_and_undefined_ratios() -> None:
    m = metrics_of([100.0, 100.0, 100.0])
    assert m.max_drawdown == 0.0
    assert m.max_drawdown_duration_ms == 0
    assert m.annual_volatility == 0.0
    assert math.isnan(m.sharpe)
    assert math.isnan(m.sortino)
    assert math.isnan(m.calmar)
    assert m.cagr == 0.0


def test_sortino_is_infinite_without_losing_bars() -> None:
    m = metrics_of([101.0, 103.0, 103.0, 104.0])
    assert m.sortino == math.inf
    assert math.isfinite(m.sharpe) and m.sharpe > 0


def test_single_bar_has_no_volatility_based_ratios() -> None:
    m = metrics_of([95.0])
    assert m.bars == 1
    assert m.total_return == pytest.approx(-0.05)
    assert m.max_drawdown == pytest.approx(0.05)
    assert m.max_drawdown_duration_ms == HOUR
    assert math.isnan(m.annual_volatility)
    assert math.isnan(m.sharpe)
    assert math.isnan(m.sortino)


def test_win_rate_and_profit_factor() -> None:
    m = metrics_of([100.0, 100.0], realized=[10.0, -5.0, 0.0, 20.0, -15.0])
    assert m.win_rate == pytest.approx(0.4)
    assert m.profit_factor == pytest.approx(30.0 / 20.0)


def test_profit_factor_without_losses_or_records() -> None:
    assert metrics_of([100.0], realized=[5.0, 0.0]).profit_factor == math.inf
    assert metrics_of([100.0], realized=[5.0, 0.0]).win_rate == 0.5
    all_flat = metrics_of([100.0], realized=[0.0, 0.0])
    assert all_flat.win_rate == 0.0
    assert all_flat.profit_factor is not None and math.isnan(all_flat.profit_factor)
    nothing_closed = metrics_of([100.0], realized=[])
    assert nothing_closed.win_rate is None
    assert nothing_closed.profit_factor is None


def test_exposure_turnover_and_leverage() -> None:
    # Mean equity 100, 500 traded: turnover 5x over 4 daily bars = 4/365 years.
    m = metrics_of(
        [100.0, 110.0, 90.0, 100.0],
        interval_ms=DAY,
        gross=[0.0, 55.0, 0.0, 150.0],
        traded_notional=500.0,
        fees=0.275,
        funding=-0.12,
        trade_count=3,
    )
    assert m.turnover == pytest.approx(5.0)
    assert m.annual_turnover == pytest.approx(5.0 * 365 / 4)
    assert m.exposure == 0.5
    assert m.avg_gross_leverage == pytest.approx((0.5 + 1.5) / 4)
    assert (m.fees, m.funding, m.trade_count) == (0.275, -0.12, 3)


def test_blown_up_account_is_computed_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = metrics_of([50.0, 0.0, *[-10.0] * 5], gross=[100.0, *[0.0] * 6], traded_notional=100.0)
    assert m.total_return == pytest.approx(-1.1)
    assert m.cagr == -1.0  # (-0.1) ** (8760 / 7) has no real value
    assert m.max_drawdown == pytest.approx(1.1)
    assert m.max_drawdown_duration_ms == 7 * HOUR
    assert math.isnan(m.sharpe)
    assert m.calmar == pytest.approx(-1.0 / 1.1)
    assert json.dumps(m.as_dict(), allow_nan=False)


# --- output ----------------------------------------------------------------------------------


def test_as_dict_is_strict_json_and_includes_days() -> None:
    m = metrics_of([100.0, 100.0], realized=[1.0])
    d = m.as_dict()
    assert d["sharpe"] is None  # nan
    assert d["profit_factor"] is None  # inf
    assert d["win_rate"] == 1.0
    assert d["max_drawdown_duration_days"] == 0.0
    assert d["bars"] == 2
    assert set(d) == {*Metrics.__dataclass_fields__, "max_drawdown_duration_days"}
    assert json.loads(json.dumps(d, allow_nan=False)) == d


def table_rows(metrics: Metrics) -> dict[str, str]:
    """format_table output as {label: value}, after checking every row has the same width."""
    lines = format_table(metrics).splitlines()
    assert len({len(line) for line in lines}) == 1, "values are not right-aligned"
    return dict(re.fullmatch(r"(\S.*?)  +(\S.*)", line).groups() for line in lines)


def test_format_table() -> None:
    m = metrics_of(
        np.full(48, 1_234_567.891),
        initial_equity=1_000_000.0,
        times=1_701_216_000_000 + HOUR * np.arange(1, 49, dtype=np.int64),
        gross=np.full(48, 1_000_000.0),
        traded_notional=2_000_000.0,
        fees=1_234.5,
        funding=-56.78,
        trade_count=1_200,
    )
    rows = table_rows(m)
    assert rows["Start"] == "2023-11-29 01:00 UTC"
    assert rows["End"] == "2023-12-01 00:00 UTC"
    assert rows["Bars"] == "48"
    assert rows["Initial equity"] == "1,000,000.00"
    assert rows["Final equity"] == "1,234,567.89"
    assert rows["Total return"] == "23.46%"
    assert rows["Max drawdown"] == "0.00%"
    assert rows["Max drawdown duration"] == "0.0 days"
    assert rows["Win rate"] == "n/a"
    assert rows["Profit factor"] == "n/a"
    assert rows["Trades"] == "1,200"
    assert rows["Turnover"] == "1.62x"
    assert rows["Fees"] == "1,234.50"
    assert rows["Funding"] == "-56.78"
    assert rows["Exposure"] == "100.00%"
    assert rows["Avg gross leverage"] == "0.81x"


def test_format_table_shows_drawdown_in_days_and_undefined_ratios() -> None:
    underwater = table_rows(metrics_of(np.r_[90.0, np.full(59, 95.0)], interval_ms=DAY))
    assert underwater["Max drawdown"] == "10.00%"
    assert underwater["Max drawdown duration"] == "60.0 days"
    flat = table_rows(metrics_of([100.0, 100.0]))
    assert (flat["Sharpe ratio"], flat["Sortino ratio"], flat["Calmar ratio"]) == ("n/a",) * 3
    assert table_rows(metrics_of([101.0, 103.0]))["Sortino ratio"] == "inf"


def test_format_table_keeps_astronomic_annualised_values_readable() -> None:
    # Five hourly bars with +10% annualise to a CAGR of 1.1 ** 1752 - 1, about 3.3e72.
    rows = table_rows(metrics_of([100.0, 90.0, 95.0, 120.0, 110.0], traded_notional=300.0))
    assert rows["CAGR"] == "3.311e+74%"
    assert rows["Calmar ratio"] == "3.311e+73"
    assert rows["Total return"] == "10.00%"
    assert rows["Annual turnover"] == "5,102.91x"


# --- validation ------------------------------------------------------------------------------


def test_empty_curve_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty equity curve"):
        metrics_of([])


def test_mismatched_gross_length_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^gross has shape \(2,\) but equity has shape \(3,\)"):
        metrics_of([1.0, 2.0, 3.0], gross=[0.0, 0.0])


def test_mismatched_times_length_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^times has shape \(2,\) but equity has shape \(3,\)"):
        metrics_of([1.0, 2.0, 3.0], times=np.array([HOUR, 2 * HOUR]))


def test_unordered_times_are_rejected() -> None:
    with pytest.raises(ValueError, match="strictly ascending"):
        metrics_of([1.0, 2.0, 3.0], times=np.array([HOUR, 3 * HOUR, 3 * HOUR]))


@pytest.mark.parametrize("initial_equity", [0.0, -100.0, math.nan])
def test_non_positive_initial_equity_is_rejected(initial_equity: float) -> None:
    with pytest.raises(ValueError, match="initial_equity must be a positive number"):
        metrics_of([1.0], initial_equity=initial_equity)


def test_two_dimensional_equity_is_rejected() -> None:
    with pytest.raises(ValueError, match="equity must be one-dimensional"):
        compute_metrics(
            np.array([HOUR]),
            np.array([[1.0, 2.0]]),
            initial_equity=1.0,
            interval_ms=HOUR,
            gross=np.zeros(1),
            traded_notional=0.0,
            fees=0.0,
            funding=0.0,
            trade_count=0,
            realized=[],
        )
