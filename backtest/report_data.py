"""The numbers the HTML report draws, computed from a run's journal apart from any chart, so
each can be tested on its own and every chart shows exactly what was recorded.

Per-symbol P&L contribution follows the portfolio's accounting (equity = cash + Σ qty·price,
each fill's ``cash_flow`` moving cash): a symbol's trade and funding cash flows plus its open
position at the mark add up, over symbols, to the change in equity. Shown split the way a
person reads it: realised price P&L, unrealised P&L of the open position, funding, fees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.metrics import DISPLAY, display_rows, drawdown_curve
from backtest.report_bars import RunBars
from backtest.run_data import RunData

#: Points per drawn curve: enough for a screen, small enough that a year of 1m bars is not
#: tens of megabytes of JSON.
MAX_POINTS = 5000
#: Trades listed in the sortable table (the most recent ones).
MAX_TRADES = 5000


def keep_points(values: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of ``values`` to draw: all of them when few, else the first and last point and
    each bucket's minimum and maximum in time order, so peaks and troughs (a drawdown's
    bottom) survive the thinning."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = np.array_split(np.arange(n), max(1, (max_points - 2) // 2))
    picked = [0, n - 1]
    for bucket in buckets:
        part = values[bucket]
        finite = np.isfinite(part)
        if finite.any():
            masked = np.where(finite, part, np.nan)
            picked += [int(bucket[np.nanargmin(masked)]), int(bucket[np.nanargmax(masked)])]
    return np.unique(picked)


@dataclass(frozen=True)
class Curve:
    """A thinned time series ready to draw."""

    when: pd.DatetimeIndex
    values: np.ndarray


def thinned(when: pd.Series, values: np.ndarray) -> Curve:
    keep = keep_points(values)
    return Curve(pd.DatetimeIndex(when.iloc[keep]), np.asarray(values)[keep])


def equity_curves(data: RunData, normalise: bool = False) -> tuple[Curve, Curve]:
    """(equity, drawdown) of a run; equity divided by the initial equity with ``normalise``,
    so runs with different cash compare on one axis."""
    equity = data.equity["equity"].to_numpy(float)
    initial = data.initial_equity
    shown = equity / initial if normalise else equity
    return thinned(data.equity["when"], shown), thinned(
        data.equity["when"], drawdown_curve(equity, initial)
    )


@dataclass(frozen=True)
class Contributions:
    """Per-symbol P&L (rows: symbols; columns: realised, unrealised, funding, fees, total) and
    how the open positions were marked, in words."""

    table: pd.DataFrame
    marked_with: str
    equity_change: float

    @property
    def unexplained(self) -> float:
        """Equity change the per-symbol totals do not account for (≈ 0 when marked at the
        prices the run marked its equity at)."""
        return self.equity_change - float(self.table["total"].sum())


def end_positions(data: RunData) -> pd.DataFrame:
    """Each symbol's last recorded position (qty, avg_price), flat symbols included."""
    if data.positions.empty:
        return pd.DataFrame(columns=["qty", "avg_price"], dtype=float)
    last = data.positions.sort_values("time", kind="stable").groupby("symbol").last()
    return last[["qty", "avg_price"]].astype(float)


def marks(data: RunData, bars: RunBars | None) -> tuple[dict[str, float], str]:
    """The price each open position is marked at when the run ended, and where it came from:
    the last close the run's bars hold (the price its equity used), else the last fill."""
    held = end_positions(data)
    held = held[held["qty"] != 0]
    end = int(data.equity["time"].iloc[-1]) if len(data.equity) else 0
    found = bars.last_closes(end) if bars is not None else {}
    prices, sources = {}, set()
    for symbol in held.index:
        if symbol in found:
            prices[symbol], source = found[symbol], f"the last close of the {bars.source}"
        else:
            fills = data.fills[data.fills["symbol"] == symbol]
            prices[symbol], source = float(fills["price"].iloc[-1]), "the last fill price"
        sources.add(source)
    marked = " and ".join(sorted(sources)) if sources else "nothing (no open position)"
    return prices, f"open positions marked at {marked}"


def pnl_contributions(data: RunData, bars: RunBars | None) -> Contributions:
    """Per-symbol P&L contributions (see the module docstring)."""
    prices, marked_with = marks(data, bars)
    held = end_positions(data)
    trades, funding = data.trades, data.funding
    rows = {}
    for symbol in data.symbols:
        mine = trades[trades["symbol"] == symbol]
        fees = float(mine["fee"].sum())
        before_fees = float((mine["cash_flow"] + mine["fee"]).sum())
        qty = float(held["qty"].get(symbol, 0.0))
        mark = prices.get(symbol, 0.0)
        unrealised = qty * (mark - float(held["avg_price"].get(symbol, 0.0))) if qty else 0.0
        paid = float(funding.loc[funding["symbol"] == symbol, "cash_flow"].sum())
        realised = before_fees + qty * mark - unrealised
        rows[symbol] = {
            "realised": realised,
            "unrealised": unrealised,
            "funding": paid,
            "fees": fees,
            "total": realised + unrealised + paid - fees,
        }
    table = pd.DataFrame.from_dict(
        rows, orient="index", columns=["realised", "unrealised", "funding", "fees", "total"]
    )
    change = (
        float(data.equity["equity"].iloc[-1]) - data.initial_equity if len(data.equity) else 0.0
    )
    return Contributions(table, marked_with, change)


def cumulative_costs(data: RunData) -> pd.DataFrame:
    """Fees paid and funding received (negative: paid), cumulated over time."""
    trades = data.trades[["when", "time", "fee"]].assign(funding=0.0)
    funding = data.funding[["when", "time", "cash_flow"]].rename(columns={"cash_flow": "funding"})
    both = pd.concat([trades, funding.assign(fee=0.0)], ignore_index=True)
    both = both.sort_values("time", kind="stable")
    return pd.DataFrame(
        {
            "when": both["when"].to_numpy(),
            "fees": both["fee"].cumsum().to_numpy(),
            "funding": both["funding"].cumsum().to_numpy(),
        }
    )


def trade_table(data: RunData, limit: int = MAX_TRADES) -> tuple[pd.DataFrame, int]:
    """The most recent ``limit`` trades with their order's reason, and how many there are."""
    trades = data.trades
    reasons = data.orders.set_index("order_link_id")["reason"] if len(data.orders) else {}
    shown = trades.iloc[-limit:] if limit else trades.iloc[:0]
    table = pd.DataFrame(
        {
            "time (UTC)": shown["when"].dt.strftime("%Y-%m-%d %H:%M"),
            "symbol": shown["symbol"],
            "side": shown["side"],
            "qty": shown["qty"],
            "price": shown["price"],
            "notional": (shown["qty"] * shown["price"]).abs(),
            "fee": shown["fee"],
            "realised P&L": shown["realized_pnl"],
            "reason": shown["order_link_id"].map(reasons) if len(reasons) else None,
        }
    )
    return table.reset_index(drop=True), len(trades)


def model_decisions(data: RunData) -> pd.DataFrame:
    """Decisions made by a model (``model_version`` set): time and version; empty when the run
    used no model."""
    made = data.decisions[data.decisions["model_version"].notna()]
    return made[["time", "when", "strategy", "model_version"]].reset_index(drop=True)


def model_health(data: RunData) -> pd.DataFrame:
    """The run's ``model_health`` events (a strategy halted on drift or a collapsed model)."""
    events = data.events[data.events["kind"] == "model_health"]
    return events[["when", "key", "detail"]].reset_index(drop=True)


def metrics_table(runs: Sequence[RunData]) -> pd.DataFrame:
    """One row per metric, one column per run, as people read them (dates, percentages,
    money; ``n/a`` for undefined or missing): the text ``bot backtest`` prints."""
    shown = [dict(display_rows(data.metrics)) for data in runs]
    labels = [label for label, _, _ in DISPLAY if any(label in rows for rows in shown)]
    columns = {data.label: [rows.get(label, "n/a") for label in labels]
               for data, rows in zip(runs, shown, strict=True)}  # fmt: skip
    return pd.DataFrame(columns, index=labels)
