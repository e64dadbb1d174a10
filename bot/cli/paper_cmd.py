"""``bot paper``: the paper-trading daemon (Bybit mainnet public streams, or the local exchange)."""

from __future__ import annotations

import argparse
import asyncio

from bot.cli.common import (
    Overrides,
    UsageError,
    apply_torch_threads,
    daemon_log,
    flag_overrides,
    settings_from,
)
from bot.cli.demo_model import attention_note
from bot.paper.daemon import PaperDaemon, StartupError
from bot.venues.bybit.stream import SubscriptionError


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "paper", help="paper-trade live klines (resumes its run after a restart)"
    )
    p.add_argument("--local", action="store_true", help="use the local exchange ([exchange])")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--new", action="store_true", help="start a new run instead of resuming")
    group.add_argument("--run", metavar="RUN_ID", help="resume this run")
    p.add_argument(
        "--force", action="store_true",
        help="take the run over from another daemon that holds it (that one then stops)",
    )  # fmt: skip
    p.add_argument("--until", help="stop after the step that closes at this time (UTC)")
    p.add_argument("--store", help="SQLAlchemy URL of the store (default: config store.url)")
    p.set_defaults(handler=run)


def overrides(args: argparse.Namespace) -> Overrides:
    """Config overrides from the flags, each remembering its flag (errors name it)."""
    out = flag_overrides(args, {"until": "paper.until", "store": "store.url"})
    if args.local:
        out.set("venue.target", "local", "--local")
    return out


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, overrides(args))
    apply_torch_threads(settings)
    daemon = PaperDaemon(
        settings, new_run=args.new, run_id=args.run, force=args.force,
        echo=echo, explain=attention_note,
    )  # fmt: skip
    try:
        with daemon_log(args, settings):
            asyncio.run(daemon.run())
    except (StartupError, SubscriptionError) as exc:
        raise UsageError(str(exc)) from None
    return 0


def echo(line: str) -> None:
    """One line per decision, fill, funding settlement and equity snapshot, as it happens."""
    print(line, flush=True)
