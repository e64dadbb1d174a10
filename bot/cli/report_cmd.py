"""``bot report``: one self-contained HTML page of one or several recorded runs."""

from __future__ import annotations

import argparse

from backtest.html_report import write_report
from backtest.run_data import RunNotFoundError, load_run
from bot.cli.common import UsageError, output_path, store_url
from bot.store import Store


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("report", help="write an HTML report of one or several runs")
    p.add_argument("run_ids", nargs="+", metavar="RUN", help="run id or a unique prefix of it")
    p.add_argument("--out", type=output_path, required=True, metavar="FILE.html", help="the page")
    p.add_argument("--store", help="SQLAlchemy URL (default: config store.url)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with Store(store_url(args)) as store:
        try:
            runs = [load_run(store, run_id) for run_id in args.run_ids]
        except (RunNotFoundError, ValueError) as exc:  # unknown, or a prefix of several runs
            raise UsageError(str(exc)) from None
        write_report(runs, args.out, store=store)
    print(f"wrote {args.out} ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    return 0
