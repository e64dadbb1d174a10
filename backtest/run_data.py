"""A recorded run as pandas DataFrames: what the HTML report draws and the notebook API returns.

Every mode journals the same tables (decisions, orders, fills, positions, equity, events), so a
backtest, a paper run and a live run load the same way. Times stay epoch milliseconds in a
``time`` column (the house contract) and each frame gains a UTC ``when`` column for people and
charts. A paper or live run has no stored metrics until it finishes, so they are computed here
from its equity journal, with the same function a backtest uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from backtest.metrics import compute_metrics
from bot.core.timeutil import interval_ms
from bot.store import Store

#: The journal tables a run loads, each with the columns it has even when the run wrote none.
JOURNALS: dict[str, tuple[str, ...]] = {
    "decisions": ("time", "strategy", "strategy_version", "model_version", "weights", "target",
                  "stale"),
    "orders": ("order_link_id", "symbol", "side", "qty", "order_type", "decision_time", "reason",
               "status"),
    "fills": ("exec_id", "order_link_id", "symbol", "side", "qty", "price", "fee", "exec_type",
              "cash_flow", "realized_pnl", "time"),
    "positions": ("time", "symbol", "qty", "avg_price"),
    "equity": ("time", "equity", "cash", "gross"),
    "events": ("time", "kind", "key", "detail"),
}  # fmt: skip


class RunNotFoundError(LookupError):
    """No run with that id (or unique prefix) in the store."""


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    for name in ("time", "decision_time"):
        if name in frame:
            frame[name] = frame[name].astype("int64")
    if "time" in frame:
        frame["when"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    return frame


@dataclass(frozen=True)
class RunData:
    """One run: its row in ``runs`` (settings, status, code version) and its journal."""

    run: dict[str, Any]
    decisions: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    positions: pd.DataFrame
    equity: pd.DataFrame
    events: pd.DataFrame
    _metrics: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return str(self.run["id"])

    @property
    def settings(self) -> dict[str, Any]:
        """The run's settings as stored (secrets already masked when it was recorded)."""
        return dict(self.run.get("config") or {})

    @property
    def symbols(self) -> list[str]:
        return list(self.run["symbols"])

    @property
    def label(self) -> str:
        """How a person tells this run from others on one page: kind, strategy, short id."""
        return f"{self.run['kind']} {self.run['strategy']} {self.run_id[:8]}"

    @property
    def initial_equity(self) -> float:
        """The cash the run started with (its settings), else its first recorded equity."""
        cash = self.settings.get("portfolio", {}).get("initial_cash")
        if cash:
            return float(cash)
        return float(self.equity["equity"].iloc[0]) if len(self.equity) else float("nan")

    @cached_property
    def weights(self) -> pd.DataFrame:
        """Target weights after risk, one row per decision time and one column per symbol (the
        sum over strategies when several decide at the same time)."""
        if self.decisions.empty:
            return pd.DataFrame(columns=self.symbols, dtype=float)
        rows = pd.DataFrame(list(self.decisions["target"]), index=self.decisions["time"])
        table = rows.groupby(level=0).sum().reindex(columns=self.symbols).fillna(0.0)
        table.index = pd.to_datetime(table.index, unit="ms", utc=True)
        table.index.name = "when"
        return table

    @property
    def trades(self) -> pd.DataFrame:
        """Executions of orders (``exec_type`` Trade), without funding settlements."""
        return self.fills[self.fills["exec_type"] == "Trade"].reset_index(drop=True)

    @property
    def funding(self) -> pd.DataFrame:
        """Funding settlements: their ``cash_flow`` is what the position paid or received."""
        return self.fills[self.fills["exec_type"] == "Funding"].reset_index(drop=True)

    @property
    def metrics(self) -> dict[str, Any]:
        """The stored metrics of a finished backtest, else metrics of the equity journal so far
        (a paper or live run, or one that stopped); empty when there is no equity yet."""
        if self._metrics is not None:
            return dict(self._metrics)
        return computed_metrics(self)


def computed_metrics(data: RunData) -> dict[str, Any]:
    """Metrics of a run's equity journal, as a backtest computes them at its end."""
    equity = data.equity
    start = data.run.get("data_start")
    if start is not None:  # the snapshot taken before the first bar closed is not a bar's
        equity = equity[equity["time"] > start]
    if len(equity) < 2:
        return {}
    times = equity["time"].to_numpy(np.int64)
    # annualised by the snapshots' own spacing: a daemon snapshots on its schedule (hourly by
    # default), not at every bar as a backtest does
    spacing = max(int(np.median(np.diff(times))), interval_ms(str(data.run["interval"])))
    trades = data.trades
    metrics = compute_metrics(
        times,
        equity["equity"].to_numpy(float),
        initial_equity=data.initial_equity,
        interval_ms=spacing,
        gross=equity["gross"].to_numpy(float),
        traded_notional=float((trades["qty"] * trades["price"]).abs().sum()),
        fees=float(data.trades["fee"].sum()),
        funding=float(data.funding["cash_flow"].sum()),
        trade_count=len(trades),
        realized=[float(v) for v in trades["realized_pnl"] if v != 0.0],
    )
    return metrics.as_dict()


def load_run(store: Store, run_id: str) -> RunData:
    """A stored run by id or unique prefix; raises :class:`RunNotFoundError` (or ValueError for
    a prefix that matches several runs)."""
    run = store.get_run(run_id)
    if run is None:
        raise RunNotFoundError(f"no run {run_id!r} in store {store.shown_url}")
    tables = {
        name: _frame(getattr(store, name)(run["id"]), columns) for name, columns in JOURNALS.items()
    }
    stored = run.get("metrics") if run.get("kind") == "backtest" else None
    return RunData(run=run, **tables, _metrics=stored)
