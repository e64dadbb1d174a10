"""``bot exchange`` and ``bot demo``: the local Bybit-compatible exchange, alone or with the
paper daemon trading against it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections import Counter
from pathlib import Path

from backtest.html_report import write_report
from backtest.parity import backtest_of_run, compare_runs
from backtest.run_data import load_run
from bot.cli.common import (
    Overrides,
    UsageError,
    apply_torch_threads,
    daemon_log,
    flag_overrides,
    settings_from,
)
from bot.cli.demo_model import MODELS, SEED, attention_note, fit_model, strategy_params
from bot.config import Settings
from bot.core.timeutil import DAY_MS, interval_ms, iso, to_ms
from bot.exchange.server import ExchangeServer, serve
from bot.feeds.synthetic import DEFAULT_START_MS
from bot.paper.daemon import PaperDaemon, StartupError
from bot.store import Store

#: Days of bars before the demo's market opens: the strategies' warm-up, the model's training.
HISTORY_DAYS = 30
#: What ``bot demo --strategy`` trades: a model it fits at start-up, or equal weights.
STRATEGIES = (*MODELS, "equal_weight")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("exchange", help="run the local Bybit-compatible exchange")
    p.add_argument("--port", type=int, help="port (0: any free one)")
    p.add_argument("--speed", type=float, help="market seconds per wall second")
    p.add_argument("--start", help="market time to start at (UTC)")
    p.add_argument("--seed", type=int, help="seed of intra-bar paths, books and faults")
    p.set_defaults(handler=run_exchange)

    d = commands.add_parser("demo", help="the whole system offline: exchange + paper daemon")
    d.add_argument("--bars", type=int, default=480, help="how many bars to trade (default 480)")
    d.add_argument("--strategy", choices=STRATEGIES, default="tabl",
                   help="what the daemon trades: a model fitted at start-up on the history "
                   "before the market opens, or equal weights (default: %(default)s)")  # fmt: skip
    d.add_argument("--speed", type=float, help="market seconds per wall second")
    d.add_argument("--store", type=Path, default=Path("out/demo.db"), help="SQLite file")
    d.set_defaults(handler=run_demo)


def exchange_overrides(args: argparse.Namespace) -> Overrides:
    """``--port/--speed/--start/--seed`` as ``exchange.*`` overrides (errors name the flag)."""
    return flag_overrides(args, {a: f"exchange.{a}" for a in ("port", "speed", "start", "seed")})


def run_exchange(args: argparse.Namespace) -> int:
    settings = settings_from(args, exchange_overrides(args))
    logging.getLogger("bot").setLevel(logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


def demo_checkpoint(args: argparse.Namespace) -> Path:
    """Where the demo writes the model it fits: beside its store (``out/demo-tabl.pt``)."""
    return args.store.resolve().with_name(f"{args.store.stem}-{args.strategy}.pt")


def demo_settings(args: argparse.Namespace) -> Settings:
    """``--strategy`` (a model: the checkpoint :func:`run_demo` fits) on real bars when present
    (else synthetic ones), a month of history before the market opens (for warm-up and the
    model's training), eight bars a second, a fresh SQLite store."""
    base = settings_from(args)
    step = interval_ms(base.engine.interval)
    real = (Path(base.data.path) / base.engine.interval).is_dir()
    source = "csv" if real else "synthetic"
    origin = (base.engine.start_ms if real else None) or DEFAULT_START_MS
    opens = origin + HISTORY_DAYS * DAY_MS
    params = strategy_params(demo_checkpoint(args)) if args.strategy in MODELS else {}
    return settings_from(
        args,
        {
            "strategies": [{"name": args.strategy, "params": params}],
            "venue.target": "local",
            "exchange.port": 0,
            "exchange.speed": args.speed or step / 1000 * 8,
            "exchange.source": source,
            "exchange.start": str(opens),
            "data.source": source,
            "data.synthetic_bars": (opens - DEFAULT_START_MS) // step + args.bars + 10,
            "engine.start": None,
            "engine.end": None,
            "store.url": f"sqlite:///{args.store.resolve()}",
            # every bar's equity in the store (the report's curve, the run's metrics); the
            # terminal shows one equity line a day
            "scheduler.equity_snapshot": f"every {base.engine.interval}",
            "paper.until": str(opens + (args.bars + 1) * step),
            "paper.heartbeat_s": 15.0,
            "monitoring.port": 0,  # any free port: the daemon prints its URL
        },
    )


def run_demo(args: argparse.Namespace) -> int:
    settings = demo_settings(args)
    apply_torch_threads(settings)
    if args.store.exists():
        args.store.unlink()
    opens = to_ms(settings.exchange.start)
    print(f"demo: {', '.join(s.name for s in settings.strategies)} on "
          f"{', '.join(settings.engine.symbols)} ({settings.engine.interval}), "
          f"{settings.data.source} bars, market from {iso(opens)} at "
          f"{settings.exchange.speed:,.0f}x")  # fmt: skip
    if args.strategy in MODELS:
        fit_demo_model(settings, args.strategy, opens, demo_checkpoint(args))

    async def main() -> str:
        async with ExchangeServer(settings) as server:
            live = settings.model_copy(update={"exchange": settings.exchange.model_copy(
                update={"port": server.port})})  # fmt: skip
            daemon = PaperDaemon(live, new_run=True, echo=print, explain=attention_note)
            return await daemon.run()

    try:
        with daemon_log(args, settings, args.store.with_suffix(".log")):
            run_id = asyncio.run(main())
    except StartupError as exc:
        raise UsageError(str(exc)) from None
    with Store(settings.store.url) as store:
        print(f"\npaper run {run_id}: {activity(store, run_id)}; backtesting the same bars ...")
        replay_id = backtest_of_run(settings, store, run_id)
        problems = compare_runs(store, run_id, replay_id)
    if problems:
        print("PARITY FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"parity: the backtest {replay_id} of the same bars made the same decisions, orders, "
          f"fills and equity, value for value.\nInspect: bot runs show {run_id} --store "
          f"{settings.store.url}")  # fmt: skip
    with Store(settings.store.url) as store:
        runs = [load_run(store, run_id), load_run(store, replay_id)]
        out = args.store.with_name(args.store.stem + "-report.html")
        title = "bot demo: the paper run and its backtest"
        report = write_report(runs, out, title=title, store=store)
    print(f"report: {report}")
    return 0


def activity(store: Store, run_id: str) -> str:
    """What a run did, in words: decisions, trades (fills of orders) and funding settlements,
    which the journal keeps in one table but a person counts apart."""
    kinds = Counter(fill["exec_type"] for fill in store.fills(run_id))
    decisions = len(store.decisions(run_id))
    return (f"{decisions} decisions, {kinds.pop('Trade', 0)} trades, "
            f"{kinds.pop('Funding', 0)} funding settlements"
            + "".join(f", {n} {kind.lower()}" for kind, n in sorted(kinds.items())))  # fmt: skip


def fit_demo_model(settings: Settings, name: str, opens: int, path: Path) -> None:
    """Fit the model the demo trades on the month before the market opens, saying so in one
    line (how long it took, the version its decisions will name)."""
    bars = HISTORY_DAYS * DAY_MS // interval_ms(settings.engine.interval)
    began = time.perf_counter()
    try:
        checkpoint = fit_model(settings, name, opens, bars, path)
    except ValueError as exc:  # too few bars for the windows (a coarse engine.interval)
        raise UsageError(f"cannot fit the demo's {name} model: {exc}") from None
    window, epochs = checkpoint.meta["data_window"], checkpoint.meta["metrics"]["epochs"]
    print(f"model: {name} fitted on {window['bars']} bars from {iso(window['start'])} to "
          f"{iso(window['end'])} in {time.perf_counter() - began:.1f}s (seed {SEED}, "
          f"{epochs} epochs): {checkpoint.version}, {path}")  # fmt: skip
