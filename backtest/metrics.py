"""Performance metrics of a backtest, computed from its equity curve.

The input is what a run produces anyway: the close time and marked-to-market equity of every
bar, the gross exposure at each close, and a few totals (traded notional, fees, funding, the
realized PnL of each closing fill). The output is one immutable :class:`Metrics` record that
the CLI prints with :func:`format_table` and reports store with :meth:`Metrics.as_dict`.

Conventions, chosen so the numbers are comparable to other tools:

* **Returns are simple per-bar returns**, and the first bar's return is measured against the
  initial equity, so a curve of ``n`` bars has ``n`` returns and nothing is lost at the start.
* **Annualisation uses 365 days a year.** Crypto perpetuals trade around the clock every day;
  the equities convention of 252 trading days would understate a year of hourly bars by about
  a third (6048 instead of 8760 bars).
* **Risk-free rate is zero** in the Sharpe and Sortino ratios; funding is the nearest thing a
  perpetual has to a carry, and it is already inside the equity curve.
* **The initial equity counts as a peak** for drawdowns: losing money on the first bar is a
  drawdown, even though no bar closed higher before it. It is placed at the open of the first
  bar (``times[0] - interval_ms``), which is when the run starts holding it.

The formulas match those of ``empyrical`` (tests cross-check them), but only numpy is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np

MS_PER_DAY = 86_400_000
"""Milliseconds in a day; every time in the project is an integer epoch millisecond."""

DAYS_PER_YEAR = 365
"""Crypto trades every calendar day, so a year is 365 days of bars, never 252."""


@dataclass(frozen=True, slots=True)
class Metrics:
    """Summary statistics of one backtest.

    Ratios that are undefined for the given curve (a volatility from a single bar, a Sharpe
    ratio with zero volatility, a Calmar ratio without drawdown) are ``nan`` rather than an
    exception, so a report always renders; :meth:`as_dict` turns them into ``None`` for JSON.
    """

    start: int
    """Epoch ms of the first bar's close."""
    end: int
    """Epoch ms of the last bar's close."""
    bars: int
    initial_equity: float
    final_equity: float
    total_return: float
    """``final / initial - 1``."""
    cagr: float
    """Compound annual growth rate, ``(final / initial) ** (periods_per_year / bars) - 1``;
    ``-1.0`` when the final equity is not positive (the account is gone)."""
    annual_volatility: float
    """Sample standard deviation of bar returns (ddof=1), scaled by ``sqrt(periods_per_year)``."""
    sharpe: float
    """Annualised ``mean / std`` of bar returns, risk-free rate 0; ``nan`` if ``std == 0``."""
    sortino: float
    """Annualised ``mean / downside deviation``, with downside deviation
    ``sqrt(mean(min(r, 0) ** 2))`` over *all* bars; ``inf`` with no losing bar and a positive
    mean, ``nan`` with no losing bar and a zero mean."""
    max_drawdown: float
    """Largest fall from a running peak as a positive fraction (0.25 means -25%)."""
    max_drawdown_duration_ms: int
    """Longest time from a peak until equity is back at or above it, or until the end of the
    curve for a drawdown that never recovered."""
    calmar: float
    """``cagr / max_drawdown``; ``nan`` without drawdown."""
    win_rate: float | None
    """Share of realized PnL records that are ``> 0``; ``None`` when nothing was closed."""
    profit_factor: float | None
    """Gross realized profit over gross realized loss; ``inf`` with profits and no loss, ``nan``
    when every record is exactly zero, ``None`` when nothing was closed."""
    turnover: float
    """Traded notional in multiples of the mean equity."""
    annual_turnover: float
    """:attr:`turnover` per year of bars."""
    fees: float
    funding: float
    """Net funding received; negative means funding was paid."""
    trade_count: int
    exposure: float
    """Fraction of bars that closed with any open position (gross exposure > 0)."""
    avg_gross_leverage: float
    """Mean of gross exposure over equity across all bars, flat bars included."""

    @property
    def max_drawdown_duration_days(self) -> float:
        """:attr:`max_drawdown_duration_ms` in days, the unit people read drawdowns in."""
        return self.max_drawdown_duration_ms / MS_PER_DAY

    def as_dict(self) -> dict[str, float | int | None]:
        """All fields plus ``max_drawdown_duration_days``, safe for strict JSON.

        JSON has no NaN or Infinity, so every non-finite float (an undefined or unbounded ratio)
        becomes ``None``; ``json.dumps(m.as_dict(), allow_nan=False)`` always succeeds.
        """
        out: dict[str, float | int | None] = {
            f.name: _json_safe(getattr(self, f.name)) for f in fields(self)
        }
        out["max_drawdown_duration_days"] = _json_safe(self.max_drawdown_duration_days)
        return out


def periods_per_year(interval_ms: int) -> float:
    """Number of bars of ``interval_ms`` in a 365-day year (8760 for 1h bars).

    Crypto markets never close, so the year has 365 full days; the stock-market 252 would make
    every annualised figure inconsistent with calendar time.
    """
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    return DAYS_PER_YEAR * MS_PER_DAY / interval_ms


def bar_returns(equity: np.ndarray, initial_equity: float) -> np.ndarray:
    """Simple return of every bar: ``r[0] = equity[0] / initial - 1``, ``r[t] = e[t] / e[t-1] - 1``.

    Measuring the first bar against the initial equity keeps one return per bar, so a loss on
    the first bar is not silently dropped. A non-positive previous equity gives ``inf`` or
    ``nan`` (no warning): the return of a blown-up account is undefined.
    """
    equity = np.asarray(equity, dtype=np.float64)
    previous = np.concatenate(([initial_equity], equity[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return equity / previous - 1.0


def compute_metrics(
    times: np.ndarray,
    equity: np.ndarray,
    *,
    initial_equity: float,
    interval_ms: int,
    gross: np.ndarray,
    traded_notional: float,
    fees: float,
    funding: float,
    trade_count: int,
    realized: Sequence[float],
) -> Metrics:
    """Compute :class:`Metrics` for one run.

    Args:
        times: int64 close times (epoch ms), one per bar, strictly ascending.
        equity: Marked-to-market equity at each close.
        initial_equity: Equity before the first bar; must be positive.
        interval_ms: Bar length, which sets the annualisation factor.
        gross: Gross exposure (sum of ``|qty * price|``) at each close.
        traded_notional: Total notional of all fills.
        fees: Total fees paid.
        funding: Net funding received (negative = paid).
        trade_count: Number of fills.
        realized: Realized PnL of each closing fill (like Bybit's closed-PnL records).

    Raises:
        ValueError: On an empty curve, arrays of different lengths or shapes, times that are
            not strictly ascending, or a non-positive ``initial_equity`` or ``interval_ms``.

    An equity that reaches zero or below does not raise: the affected ratios become ``nan`` or
    ``inf`` and the CAGR is ``-1.0``.
    """
    times = np.asarray(times, dtype=np.int64)
    equity = np.asarray(equity, dtype=np.float64)
    gross = np.asarray(gross, dtype=np.float64)
    _validate(times, equity, gross, initial_equity)
    ppy = periods_per_year(interval_ms)
    bars = len(equity)
    years = bars / ppy

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        returns = bar_returns(equity, initial_equity)
        growth = np.float64(equity[-1]) / initial_equity
        cagr = growth ** (ppy / bars) - 1.0 if growth > 0 else np.float64(-1.0)
        max_dd, max_dd_duration = _drawdown(
            np.concatenate(([times[0] - interval_ms], times)),
            np.concatenate(([initial_equity], equity)),
        )
        turnover = np.float64(traded_notional) / equity.mean()
        volatility, sharpe, sortino = _risk_ratios(returns, ppy)
        leverage = (gross / equity).mean()

    win_rate, profit_factor = _trade_stats(realized)
    return Metrics(
        start=int(times[0]),
        end=int(times[-1]),
        bars=bars,
        initial_equity=float(initial_equity),
        final_equity=float(equity[-1]),
        total_return=float(growth - 1.0),
        cagr=float(cagr),
        annual_volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown=max_dd,
        max_drawdown_duration_ms=max_dd_duration,
        calmar=float(cagr / max_dd) if max_dd > 0 else math.nan,
        win_rate=win_rate,
        profit_factor=profit_factor,
        turnover=float(turnover),
        annual_turnover=float(turnover / years),
        fees=float(fees),
        funding=float(funding),
        trade_count=int(trade_count),
        exposure=float(np.mean(gross > 0)),
        avg_gross_leverage=float(leverage),
    )


#: The metrics as a person reads them, in order: (label, key of :meth:`Metrics.as_dict`, kind).
DISPLAY: tuple[tuple[str, str, str], ...] = (
    ("Start", "start", "time"),
    ("End", "end", "time"),
    ("Bars", "bars", "count"),
    ("Initial equity", "initial_equity", "money"),
    ("Final equity", "final_equity", "money"),
    ("Total return", "total_return", "percent"),
    ("CAGR", "cagr", "percent"),
    ("Annual volatility", "annual_volatility", "percent"),
    ("Sharpe ratio", "sharpe", "ratio"),
    ("Sortino ratio", "sortino", "ratio"),
    ("Max drawdown", "max_drawdown", "percent"),
    ("Max drawdown duration", "max_drawdown_duration_days", "days"),
    ("Calmar ratio", "calmar", "ratio"),
    ("Win rate", "win_rate", "percent"),
    ("Profit factor", "profit_factor", "ratio"),
    ("Trades", "trade_count", "count"),
    ("Turnover", "turnover", "multiple"),
    ("Annual turnover", "annual_turnover", "multiple"),
    ("Fees", "fees", "money"),
    ("Funding", "funding", "money"),
    ("Exposure", "exposure", "percent"),
    ("Avg gross leverage", "avg_gross_leverage", "multiple"),
)


def display_rows(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(label, text)`` of each metric in ``values`` (a :class:`Metrics` as fields, or the
    :meth:`Metrics.as_dict` a run stored), formatted for people: the terminal's table and the
    HTML report show the same text."""
    rows = []
    for label, key, kind in DISPLAY:
        if key not in values:
            continue
        value = values[key]
        if value is None:
            text = "n/a"
        elif kind == "time":
            text = _format_time(int(value))
        elif kind == "count":
            text = f"{int(value):,}"
        else:
            text = _format_number(float(value), kind)
        rows.append((label, text))
    return rows


def format_table(metrics: Metrics) -> str:
    """Render ``metrics`` as an aligned two-column table for the terminal.

    Percentages are shown as ``%``, money with thousands separators, durations in days and
    undefined values as ``n/a``.
    """
    values = {f.name: getattr(metrics, f.name) for f in fields(metrics)}
    values["max_drawdown_duration_days"] = metrics.max_drawdown_duration_days
    rows = display_rows(values)
    label_width = max(len(label) for label, _ in rows)
    value_width = max(len(value) for _, value in rows)
    return "\n".join(f"{label:<{label_width}}  {value:>{value_width}}" for label, value in rows)


def drawdown_curve(equity: np.ndarray, initial_equity: float) -> np.ndarray:
    """Fraction below the running peak at each point (≤ 0), the initial equity counting as the
    first peak: what the equity plots and the HTML report draw."""
    equity = np.asarray(equity, dtype=float)
    if not len(equity):
        return equity
    peak = np.maximum.accumulate(np.maximum(equity, initial_equity))
    return equity / peak - 1.0


def _validate(
    times: np.ndarray, equity: np.ndarray, gross: np.ndarray, initial_equity: float
) -> None:
    """Reject inputs whose metrics would be meaningless, naming the offending argument."""
    if equity.ndim != 1:
        raise ValueError(f"equity must be one-dimensional, got shape {equity.shape}")
    if len(equity) == 0:
        raise ValueError("cannot compute metrics of an empty equity curve (no bars)")
    for name, array in (("times", times), ("gross", gross)):
        if array.shape != equity.shape:
            raise ValueError(
                f"{name} has shape {array.shape} but equity has shape {equity.shape}; "
                "both need one value per bar"
            )
    if np.any(np.diff(times) <= 0):
        raise ValueError("times must be strictly ascending close times")
    if not (math.isfinite(initial_equity) and initial_equity > 0):
        raise ValueError(f"initial_equity must be a positive number, got {initial_equity}")


def _drawdown(times: np.ndarray, equity: np.ndarray) -> tuple[float, int]:
    """Maximum drawdown (positive fraction) and its longest duration in ms.

    ``times`` and ``equity`` include the initial anchor as element 0. A bar is underwater when
    its equity is strictly below the running peak, so returning exactly to the peak ends a
    drawdown. Each drawdown lasts from the last bar at its peak to the first bar back at or
    above it, or to the last bar if it never recovered.
    """
    peak = np.maximum.accumulate(equity)
    max_dd = float(np.max((peak - equity) / peak))
    underwater = equity < peak
    index = np.arange(len(equity))
    last_peak = np.maximum.accumulate(np.where(underwater, 0, index))
    # For bar i, the peak it is measured against is the latest one at or before bar i - 1;
    # only bars underwater, or the bar that ends an underwater spell, extend a drawdown.
    in_drawdown = underwater[1:] | underwater[:-1]
    durations = times[1:][in_drawdown] - times[last_peak[:-1][in_drawdown]]
    return max_dd, int(durations.max()) if durations.size else 0


def _risk_ratios(returns: np.ndarray, ppy: float) -> tuple[float, float, float]:
    """Annual volatility, Sharpe and Sortino of bar returns.

    All three are ``nan`` for a single bar: one observation says nothing about dispersion, and
    annualising it (×√8760 for hourly bars) would print a large, meaningless number.
    """
    if len(returns) < 2:
        return math.nan, math.nan, math.nan
    scale = math.sqrt(ppy)
    mean = returns.mean()
    std = returns.std(ddof=1)
    sharpe = mean / std * scale if std != 0 else math.nan
    downside = math.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))
    return float(std * scale), float(sharpe), _gain_over_loss(mean, downside) * scale


def _trade_stats(realized: Sequence[float]) -> tuple[float | None, float | None]:
    """Win rate and profit factor of closing fills; both ``None`` if there were none."""
    pnl = np.asarray(realized, dtype=np.float64)
    if pnl.size == 0:
        return None, None
    profit = float(pnl[pnl > 0].sum())
    loss = -float(pnl[pnl < 0].sum())
    return float(np.mean(pnl > 0)), _gain_over_loss(profit, loss)


def _gain_over_loss(gain: float, loss: float) -> float:
    """``gain / loss`` for Sortino and profit factor, where ``loss`` is a non-negative size.

    Without any loss the ratio is unbounded: ``inf`` if something was gained, and ``nan`` if
    nothing was (0/0 says neither "good" nor "bad").
    """
    if loss != 0:
        return float(gain / loss)
    return math.inf if gain > 0 else math.nan


def _json_safe(value: float | int | None) -> float | int | None:
    """``None`` for NaN and ±inf, which strict JSON cannot represent; other values unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_NUMBER_FORMATS: dict[str, tuple[float, str, str]] = {
    "money": (1.0, ",.2f", ""),
    "percent": (100.0, ",.2f", "%"),
    "ratio": (1.0, ",.2f", ""),
    "multiple": (1.0, ",.2f", "x"),
    "days": (1.0, ",.1f", " days"),
}
"""Table formats by kind: (scale, format spec, suffix)."""


def _format_number(value: float | None, kind: str) -> str:
    """Format ``value`` as one of :data:`_NUMBER_FORMATS`; ``n/a`` for None/NaN, ``±inf`` as is.

    Magnitudes from 1e12 up switch to scientific notation: annualising a run of a few hours
    can give a CAGR with 70 digits, which would otherwise stretch the whole table.
    """
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    scale, spec, suffix = _NUMBER_FORMATS[kind]
    scaled = value * scale
    return f"{scaled:{'.3e' if abs(scaled) >= 1e12 else spec}}{suffix}"


def _format_time(ms: int) -> str:
    """Epoch milliseconds as a UTC timestamp to the minute."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
