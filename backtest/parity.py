"""A daemon's run vs a backtest of the same bars: are they the same, value for value?

The design's central promise is that live trading, paper trading and a backtest differ only in
the feed, the clock and the executor. This module checks it on a finished (or stopped) daemon
run: it backtests the bars the daemon stored, over the same span and settings, and compares
decisions, orders, fills, funding and equity snapshots (a paper run must match in all of them;
a live run, whose fills come from the exchange, in its decisions). It lives with the backtests
because it is one: a replay of a run's bars. ``bot demo`` shows the result; the parity tests
require it to be empty.
"""

from __future__ import annotations

import math
from typing import Any

from backtest.runner import run_backtest
from bot.config import InstrumentConfig, Settings
from bot.store import Store

_RUN_SCOPED = ("order_link_id", "exec_id")  # derived from the run id: differ by construction


def backtest_of_run(settings: Settings, store: Store, run_id: str) -> str:
    """Backtest the bars a paper or live run stored, over its span and with the trading rules
    it traded under (the venue's); returns the backtest's run id."""
    run = store.get_run(run_id)
    if run is None or run["kind"] not in ("paper", "live") or run["last_step"] is None:
        raise ValueError(f"{run_id}: not a paper or live run with processed steps")
    engine = settings.engine.model_copy(
        update={"start": str(run["data_start"]), "end": str(run["last_step"])}
    )
    data = settings.data.model_copy(update={"source": "store"})
    instruments = {
        symbol: InstrumentConfig.model_validate(spec)
        for symbol, spec in run["config"]["instruments"].items()
    }
    replay = settings.model_copy(
        update={"engine": engine, "data": data, "instruments": instruments}
    )
    return run_backtest(replay, store=store).run_id


def _rows(store: Store, run_id: str, table: str, drop: tuple[str, ...] = ()) -> list[dict]:
    rows = getattr(store, table)(run_id)
    return [{k: v for k, v in row.items() if k not in (*_RUN_SCOPED, *drop)} for row in rows]


def _key(row: dict[str, Any]) -> tuple:
    return tuple(str(row.get(k)) for k in ("time", "decision_time", "symbol", "strategy", "kind"))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def compare_runs(
    store: Store,
    paper_id: str,
    backtest_id: str,
    tables: tuple[str, ...] = ("decisions", "orders", "fills", "equity"),
) -> list[str]:
    """Differences between two runs' journals (empty: identical), in ``tables`` (a live run's
    fills come from the exchange: compare its decisions). Rows are compared as sets
    ordered by time and symbol: within one step the paper run books each symbol's fill when its
    candle opens, in whatever order those messages arrived."""
    problems: list[str] = []
    ignored = {
        "decisions": (),
        "orders": ("status",),  # a run stopped mid-way may leave its last orders unfilled
        "fills": (),
        "equity": (),
    }
    last = store.get_run(paper_id)["last_step"]
    for table in tables:
        drop = ignored[table]
        paper = sorted(_rows(store, paper_id, table, drop), key=_key)
        replay = sorted(_rows(store, backtest_id, table, drop), key=_key)
        if table in ("equity", "fills"):
            # A job due at the very last close fires only when a backtest finishes, not when a
            # daemon stops; and a daemon may have booked the next bar's fills at its open
            # already. Both belong to steps after the last one, which the backtest ends before.
            replay = [r for r in replay if r["time"] < last]
            paper = [r for r in paper if r["time"] < last]
        if len(paper) != len(replay):
            problems.append(f"{table}: {len(paper)} rows in the paper run, {len(replay)} replayed")
        for a, b in zip(paper, replay, strict=False):
            diff = {k for k in a.keys() | b.keys() if not _same(a.get(k), b.get(k))}
            if diff:
                problems.append(f"{table} at {_key(a)}: {', '.join(sorted(diff))} differ")
                break
    return problems
