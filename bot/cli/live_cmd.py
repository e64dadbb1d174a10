"""``bot live``: trade a Bybit account (mainnet, testnet, demo, or the local exchange).

Refusals come before any private request: without ``--confirm`` nothing is sent to the
exchange at all, mainnet also needs ``live.allow_mainnet`` or the ``--mainnet`` token, keys
come only from the environment. ``--check`` connects with a client that has no order methods,
checks the key and the account, reconciles and prints what the strategy would trade now.
``bot live halt`` stops a run's trading for good: its daemon flattens and halts, now or at its
next start.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bot.cli.common import (
    Overrides,
    UsageError,
    apply_torch_threads,
    daemon_log,
    flag_overrides,
    settings_from,
)
from bot.cli.demo_model import attention_note
from bot.cli.paper_cmd import echo
from bot.config import MAINNET_TOKEN, Settings
from bot.live.check import check_account, reconcile_lines
from bot.live.daemon import LiveDaemon
from bot.live.halt import request_halt
from bot.live.preflight import PreflightError, preflight
from bot.live.targets import (
    check_mainnet_allowed,
    live_endpoints,
    market_data_for_target,
    rail_limits,
)
from bot.paper.daemon import StartupError
from bot.store import Store
from bot.venues.bybit.credentials import Credentials, MissingCredentialsError
from bot.venues.bybit.private_rest import PrivateRest
from bot.venues.bybit.rest_protocol import BybitError
from bot.venues.bybit.stream import SubscriptionError


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "live", help="trade a Bybit account for real (needs --confirm; see README 'Live trading')"
    )
    p.add_argument("action", nargs="?", choices=["halt"],
                   help="halt: flatten and stop the run given by --run, for good")  # fmt: skip
    p.add_argument("--confirm", action="store_true",
                   help="yes, send real orders (nothing is sent without it)")  # fmt: skip
    p.add_argument("--mainnet", metavar="TOKEN",
                   help=f"live.target = 'mainnet' needs {MAINNET_TOKEN} here "
                        "(or live.allow_mainnet)")  # fmt: skip
    p.add_argument("--check", action="store_true",
                   help="connect, check the key and account, reconcile, print the orders it "
                        "would place; sends no order")  # fmt: skip
    p.add_argument("--adopt", action="store_true",
                   help="take over positions the run did not open instead of stopping")  # fmt: skip
    p.add_argument("--local", action="store_true", help="trade the local exchange ([exchange])")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--new", action="store_true", help="start a new run instead of resuming")
    group.add_argument("--run", metavar="RUN_ID", help="resume (or halt) this run")
    p.add_argument("--force", action="store_true",
                   help="take the run over from another daemon that holds it")  # fmt: skip
    p.add_argument("--until", help="stop after the step that closes at this time (UTC)")
    p.add_argument("--store", help="SQLAlchemy URL of the store (default: config store.url)")
    p.set_defaults(handler=run)


def overrides(args: argparse.Namespace) -> Overrides:
    out = flag_overrides(args, {"until": "paper.until", "store": "store.url"})
    if args.local:
        out.set("live.target", "local", "--local")
    return out


def credentials(settings: Settings) -> Credentials:
    live = settings.live
    try:
        return Credentials.from_env(live.key_env, live.secret_env)
    except MissingCredentialsError as exc:
        raise UsageError(f"{exc} (live.key_env / live.secret_env name the variables)") from None


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, overrides(args))
    apply_torch_threads(settings)
    if args.action == "halt":
        if not args.run:
            raise UsageError("bot live halt needs --run RUN_ID")
        with Store(settings.store.url) as store:
            try:
                print(request_halt(store, args.run, int(time.time() * 1000)))
            except LookupError as exc:
                raise UsageError(str(exc).strip("'\"")) from None
        return 0
    check_mainnet_allowed(settings, args.mainnet)
    if not args.check and not args.confirm:
        raise UsageError(
            f"bot live sends real orders to {settings.live.target}: add --confirm to trade, or "
            "--check to see what it would do without sending anything"
        )
    settings = market_data_for_target(settings)
    keys = credentials(settings)
    urls = live_endpoints(settings)
    if args.check:
        try:
            return asyncio.run(_check(settings, keys, urls.rest_url, args.run))
        except BybitError as exc:
            raise UsageError(f"{live_target(settings)}: {exc}") from None
    live = settings.live
    daemon = LiveDaemon(
        settings, credentials=keys, rest_url=urls.rest_url, private_ws_url=urls.private_ws_url,
        rails=rail_limits(settings), adopt=args.adopt, new_run=args.new, run_id=args.run,
        force=args.force, resend_window_s=live.resend_window_s,
        settle_timeout_s=live.settle_timeout_s, reconcile_interval_s=live.reconcile_interval_s,
        echo=echo, explain=attention_note,
    )  # fmt: skip
    try:
        with daemon_log(args, settings):
            asyncio.run(daemon.run())
    except (StartupError, SubscriptionError, PreflightError) as exc:
        raise UsageError(str(exc)) from None
    except BybitError as exc:  # the account could not be read at start-up
        raise UsageError(f"{live_target(settings)}: {exc}") from None
    return 0


def live_target(settings: Settings) -> str:
    return f"live.target {settings.live.target!r}"


async def _check(settings: Settings, keys: Credentials, rest_url: str, run_id: str | None) -> int:
    async with PrivateRest(rest_url, keys) as reader:  # no create, no cancel
        try:
            snapshot = await preflight(reader, settings.engine.symbols, trading=False,
                                       target=settings.live.target)  # fmt: skip
        except PreflightError as exc:
            raise UsageError(str(exc)) from None
        lines = await check_account(settings, reader, snapshot)
    if run_id is not None:
        with Store(settings.store.url) as store:
            ticks = {s: settings.instruments[s].tick_size for s in settings.engine.symbols}
            lines += reconcile_lines(store, run_id, snapshot, ticks)
    for line in lines:
        print(line)
    return 0
