"""``bot sweep``: search a strategy's parameters with many backtests, on Ray or in order.

The base settings are exactly ``bot backtest``'s (config file, then the same history and cost
flags); each trial changes only the strategy's parameters and, with ``--folds``, the period.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.run_data import load_run
from backtest.sweep import SweepResult, SweepSpec, run_sweep
from backtest.sweep_folds import DEFAULT_HOLDOUT, FoldError
from backtest.sweep_pool import PoolError, open_pool
from backtest.sweep_results import METRICS, frame, params_text, trial_json
from backtest.sweep_space import SEARCHES, SpaceError, parse_space
from bot.cli.backtest_cmd import add_backtest_arguments
from bot.cli.backtest_cmd import overrides as backtest_overrides
from bot.cli.common import UsageError, output_path, settings_from, table
from bot.store import Store

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("sweep", help="search strategy parameters with many backtests")
    p.add_argument("--strategy", required=True, help="strategy name or package.module:Class")
    p.add_argument("--param", action="append", default=[], metavar="KEY=V1,V2|LO:HI[:log]",
                   help="values to search (repeatable): lookback=24,72,168")  # fmt: skip
    p.add_argument("--search", choices=SEARCHES, default="grid", help="default: %(default)s")
    p.add_argument("--trials", type=int, help="trials of a random or optuna search")
    p.add_argument("--seed", type=int, default=0, help="seed of random and optuna draws")
    p.add_argument("--folds", type=int, default=0, help="walk-forward in-sample folds")
    p.add_argument("--holdout", type=float,
                   help=f"out-of-sample share of the period (default with folds: "
                        f"{DEFAULT_HOLDOUT})")  # fmt: skip
    p.add_argument("--metric", choices=sorted(METRICS), default="sharpe",
                   help="what ranks the trials (default: %(default)s)")  # fmt: skip
    p.add_argument("--workers", type=int, help="parallel trials (default: all cores)")
    p.add_argument("--address", help="existing Ray cluster: auto or ray://host:10001")
    p.add_argument("--worker-memory", default="2GB", help="memory per trial (default: 2GB)")
    p.add_argument("--serial", action="store_true", help="no Ray: run the trials one by one")
    p.add_argument("--top", type=int, default=10, help="rows of the printed table")
    p.add_argument("--json", type=output_path, metavar="FILE", help="write every trial")
    p.add_argument("--report", type=output_path, metavar="FILE",
                   help="HTML report of the best trial")  # fmt: skip
    add_backtest_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def parse_bytes(text: str, flag: str) -> int:
    """``2GB``, ``512MiB`` or a byte count; anything else names ``flag``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise UsageError(f"{flag} {text!r}: write a size such as 2GB or 512MiB")
    return int(float(match.group(1)) * _UNITS[unit])


def spec_of(args: argparse.Namespace) -> SweepSpec:
    """The search as asked; flags that contradict each other are one line naming them."""
    if not args.param:
        raise UsageError("--param: give at least one parameter to search, e.g. lookback=24,72")
    if args.search == "grid" and args.trials is not None:
        raise UsageError("--trials: a grid runs every combination; use --search random|optuna")
    if args.search != "grid" and (args.trials is None or args.trials < 1):
        raise UsageError(f"--trials: --search {args.search} needs a number of trials >= 1")
    if args.holdout is not None and not args.folds:
        raise UsageError("--holdout: needs --folds (without folds every trial is one backtest)")
    for flag, value in (("--workers", args.workers), ("--top", args.top)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: give at least 1")
    if args.folds < 0:
        raise UsageError(f"--folds {args.folds}: give at least 1 (or leave it out)")
    holdout = args.holdout if args.holdout is not None else (DEFAULT_HOLDOUT if args.folds else 0)
    return SweepSpec(
        dims=parse_space(args.param), search=args.search, trials=args.trials or 0,
        seed=args.seed, folds=args.folds, holdout=holdout, metric=args.metric,
        batch=args.workers or os.cpu_count() or 1, space=list(args.param),
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    memory = parse_bytes(args.worker_memory, "--worker-memory")
    plain = argparse.Namespace(**{**vars(args), "param": []})  # values come from the sweep
    base = settings_from(args, backtest_overrides(plain))
    try:
        spec = spec_of(args)
        with Store(base.store.url) as store:
            pool = open_pool(serial=args.serial, address=args.address, workers=args.workers,
                             memory_bytes=memory)  # fmt: skip
            try:
                result = run_sweep(base, spec, store, pool, progress=not args.no_progress)
            finally:
                pool.close()
            show(result, args.top)
            if args.json:
                write_json(result, args.json)
                print(f"wrote {args.json}")
            if args.report:
                write_html(result, store, args.report)
                print(f"wrote {args.report}")
    except (SpaceError, FoldError, PoolError) as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.flush()
    return 0


def _cell(column: str, value: Any, params: set[str]) -> str:
    """A table cell as people read it: returns and drawdowns in percent, turnover as a
    multiple, ratios to two decimals; parameters as given."""
    if not isinstance(value, float) or column in params:
        return str(value)
    if math.isnan(value):
        return "-"
    if column.endswith("return"):
        return f"{value:+.1%}"
    if column.endswith("max dd"):
        return f"{value:.1%}"
    if column.endswith("turnover/yr"):
        return f"{value:,.0f}x"
    return f"{value:.2f}"


def show(result: SweepResult, top: int) -> None:
    """The ``top`` best trials as a text table, then a line on what was run."""
    spec = result.spec
    df = frame(result.trials, spec.metric, folds=bool(spec.folds)).head(top)
    params = {name for trial in result.trials for name in trial.params}
    rows = [[_cell(str(c), v, params) for c, v in zip(df.columns, row, strict=True)]
            for row in df.itertuples(index=False)]  # fmt: skip
    print(table(rows, [str(c) for c in df.columns]))
    failed = sum(t.error is not None for t in result.trials)
    spans = ", ".join(s.name for s in result.spans)
    print(f"sweep {result.sweep_id}: {len(result.trials)} trials ({failed} failed), "
          f"each on {spans}; ranked by {spec.metric}")  # fmt: skip


def write_json(result: SweepResult, path: Path) -> None:
    """Every trial with its score, parameters and runs (ids to open with ``bot runs show``)."""
    spec = result.spec
    doc = {
        "sweep": result.sweep_id,
        "search": spec.search,
        "metric": spec.metric,
        "seed": spec.seed,
        "space": spec.space,
        "spans": [dataclasses.asdict(s) for s in result.spans],
        "trials": [trial_json(t, n, spec.metric) for n, t in enumerate(result.trials, start=1)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")


def write_html(result: SweepResult, store: Store, path: Path) -> None:
    """The best trial's runs (holdout first) in the HTML report, with every trial's
    in-sample/holdout split as a table beside them."""
    from backtest.html_report import write_report  # noqa: PLC0415 - built beside this command

    best = result.best
    if best is None:
        raise UsageError("--report: every trial failed; there is no best trial to report")
    spans = sorted(best.outcomes, key=lambda s: s != "holdout")
    runs = [load_run(store, best.outcomes[s].run_id) for s in spans]
    trials: pd.DataFrame = frame(result.trials, result.spec.metric, folds=bool(result.spec.folds))
    title = f"Sweep {result.sweep_id}: best trial {best.trial} ({params_text(best.params)})"
    write_report(runs, path, title=title, tables={"Sweep trials": trials})
