"""``bot backtest``: replay history through the engine and report what happened."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backtest.html_report import write_report
from backtest.metrics import format_table
from backtest.report import plot_equity, write_json
from backtest.run_data import load_run
from backtest.runner import run_backtest
from bot.cli.common import (
    HISTORY_FLAGS,
    Overrides,
    UsageError,
    apply_torch_threads,
    flag_overrides,
    output_path,
    parse_params,
    settings_from,
    table,
)
from bot.store import Store


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("backtest", help="run a backtest over history")
    p.add_argument("--strategy", help="strategy name or package.module:Class (replaces config)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy parameter (repeatable), e.g. --param rebalance=1d")  # fmt: skip
    add_backtest_arguments(p)
    p.add_argument("--no-store", action="store_true", help="do not record the run in the store")
    p.add_argument("--json", type=output_path, metavar="FILE",
                   help="write metrics, counts and equity")  # fmt: skip
    p.add_argument("--plot", type=output_path, metavar="FILE", help="write an equity/drawdown PNG")
    p.add_argument("--report", type=output_path, metavar="FILE.html",
                   help="write the run's HTML report (needs the run recorded)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


#: The flags (as argparse names them) a backtest's settings take one config key each from:
#: ``bot backtest``, ``bot sweep`` and the notebook's keywords share them.
BACKTEST_FLAGS = {
    **HISTORY_FLAGS, "fee_bp": "portfolio.fee_bp", "slippage_bp": "portfolio.slippage_bp",
    "cash": "portfolio.initial_cash", "threshold": "portfolio.rebalance_threshold",
    "max_drawdown": "risk.max_drawdown", "block_rows": "engine.block_rows",
}  # fmt: skip


def add_backtest_arguments(p: argparse.ArgumentParser) -> None:
    """The history and portfolio flags of a backtest (``bot backtest``, ``bot sweep``)."""
    p.add_argument("--symbols", help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT")
    p.add_argument("--interval", help="bar interval, e.g. 1h")
    p.add_argument("--start", help="first bar (date or ISO time, UTC)")
    p.add_argument("--end", help="end (exclusive)")
    p.add_argument("--source", choices=["csv", "parquet", "store", "synthetic"])
    p.add_argument("--data", type=Path, help="data folder for csv/parquet sources")
    p.add_argument("--fee-bp", type=float, help="taker fee in basis points")
    p.add_argument("--slippage-bp", type=float, help="slippage in basis points")
    p.add_argument("--cash", type=float, help="initial cash (USDT)")
    p.add_argument("--threshold", type=float, help="rebalance threshold (fraction of equity)")
    p.add_argument("--max-drawdown", type=float, help="kill-switch drawdown (fraction)")
    p.add_argument("--block-rows", type=int, help="replay block size (speed only)")
    p.add_argument("--store", help="SQLAlchemy URL of the store (default: config store.url)")


def overrides(args: argparse.Namespace) -> Overrides:
    out = flag_overrides(args, BACKTEST_FLAGS)
    if args.strategy:
        params = parse_params(args.param)
        out.set("strategies", [{"name": args.strategy, "params": params}], "--strategy")
        for key in params:
            out.flags[f"strategies.0.params.{key}"] = f"--param {key}"
    elif args.param:
        raise UsageError("--param needs --strategy (or set params in the config file)")
    return out


def run(args: argparse.Namespace) -> int:
    if args.report and args.no_store:
        raise UsageError("--report needs the run recorded in the store: drop --no-store")
    settings = settings_from(args, overrides(args))
    apply_torch_threads(settings)
    needs_store = not args.no_store or settings.data.source == "store"
    store = Store(settings.store.url) if needs_store else None
    try:
        result = run_backtest(
            settings, store=store, record=not args.no_store, progress=not args.no_progress
        )
        if args.report:
            write_report([load_run(store, result.run_id)], args.report, store=store)
    finally:
        if store is not None:
            store.close()
    counts = result.counts()
    print(f"run {result.run_id}  {', '.join(s.name for s in settings.strategies)}  "
          f"{', '.join(settings.engine.symbols)} @ {settings.engine.interval}")  # fmt: skip
    print(format_table(result.metrics))
    print(table([[k, f"{v:,}"] for k, v in counts.items()], ["count", "value"]))
    if result.halted_reason:
        print(f"HALTED: {result.halted_reason}")
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        plot_equity(result, args.plot)
        print(f"wrote {args.plot}")
    if args.report:
        print(f"wrote {args.report}")
    sys.stdout.flush()
    return 0
