"""``bot runs``: the runs recorded in the store."""

from __future__ import annotations

import argparse
import json

from backtest.metrics import display_rows
from backtest.run_data import RunNotFoundError, load_run
from bot.cli.common import UsageError, store_url, table
from bot.core.timeutil import iso
from bot.store import Store


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("runs", help="list and inspect recorded runs")
    sub = p.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    lst = sub.add_parser("list", help="recent runs, newest first")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--store", help="SQLAlchemy URL (default: config store.url)")
    lst.set_defaults(handler=list_runs)
    show = sub.add_parser("show", help="one run: settings, counts and metrics")
    show.add_argument("run_id", help="run id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="print as JSON")
    show.add_argument("--store", help="SQLAlchemy URL (default: config store.url)")
    show.set_defaults(handler=show_run)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2%}"


def list_runs(args: argparse.Namespace) -> int:
    store = Store(store_url(args))
    try:
        runs = store.list_runs(args.limit)
    finally:
        store.close()
    if not runs:
        print("no runs recorded yet")
        return 0
    rows = []
    for run in runs:
        metrics = run.get("metrics") or {}
        rows.append([
            run["id"], run["kind"], run["strategy"], run["interval"], iso(run["started_at"]),
            run["status"], _pct(metrics.get("total_return")),
            "-" if metrics.get("sharpe") is None else f"{metrics['sharpe']:.2f}",
        ])  # fmt: skip
    print(table(rows, ["run", "kind", "strategy", "interval", "started", "status", "return",
                       "sharpe"]))  # fmt: skip
    return 0


def show_run(args: argparse.Namespace) -> int:
    store = Store(store_url(args))
    try:
        try:  # the JSON is the row as stored; the text also reads the run's journal
            data = None if args.json else load_run(store, args.run_id)
            run = store.get_run(args.run_id) if data is None else data.run
        except RunNotFoundError:
            run = None
        except ValueError as exc:  # a prefix of several runs
            raise UsageError(str(exc)) from None
    finally:
        store.close()
    if run is None:
        raise UsageError(f"no run {args.run_id!r}")
    if args.json:
        print(json.dumps(run, indent=1, default=str))
        return 0
    print(f"run {run['id']} ({run['kind']}, {run['status']})")
    print(f"  strategy   {run['strategy']}")
    print(f"  symbols    {', '.join(run['symbols'])} @ {run['interval']}")
    print(f"  code       {run['code_version']}")
    finished = f", finished {iso(run['finished_at'])}" if run.get("finished_at") else ""
    print(f"  started    {iso(run['started_at'])}{finished}")
    if run.get("data_start") is not None:  # a daemon's run has no end: its last step so far
        end = run["data_end"] or run.get("last_step")
        print(f"  data       {iso(run['data_start'])} → "
              f"{iso(end) if end is not None else 'no step yet'}")  # fmt: skip
    if run.get("halted_reason"):
        print(f"  HALTED     {run['halted_reason']}")
    counts = {k: f"{k} {v:,}" for k, v in run.get("counts", {}).items()}
    if counts:  # the fills table holds trades and funding settlements: a person counts apart
        counts["fills"] = f"{len(data.trades):,} trades, {len(data.funding):,} funding settlements"
        print("  counts     " + ", ".join(counts.values()))
    metrics = data.metrics  # a paper or live run stores its metrics at its end: these so far
    if metrics:
        print(table([list(row) for row in display_rows(metrics)], ["metric", "value"]))
    return 0
