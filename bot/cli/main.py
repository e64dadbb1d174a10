"""Entry point of the ``bot`` command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from bot import __version__
from bot.cli import (
    backtest_cmd,
    data_cmd,
    exchange_cmd,
    explain_cmd,
    live_cmd,
    models_cmd,
    paper_cmd,
    report_cmd,
    runs_cmd,
    sweep_cmd,
    train_cmd,
)
from bot.cli.common import DEFAULT_CONFIG, UsageError
from bot.cli.exits import (
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_STORE_FAULT,
    EXIT_USAGE,
    report,
    report_bug,
)
from bot.config import ConfigError
from bot.feeds.loaders import DataError
from bot.paper.daemon import DaemonStoppedError
from bot.redact import install_log_redaction
from bot.store.faults import (
    LeaseHeldError,
    LeaseLostError,
    StoreGoneError,
    StoreOpenError,
    StoreUnavailableError,
)
from strategies.registry import StrategyNotFoundError, StrategyParameterError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bot",
        description="Model-first trading bot for Bybit: backtests, paper trading, models.",
    )
    parser.add_argument("--version", action="version", version=f"bot {__version__}")
    parser.add_argument(
        "-c", "--config", default=str(DEFAULT_CONFIG), help="settings file (default: %(default)s)"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    backtest_cmd.register(commands)
    data_cmd.register(commands)
    runs_cmd.register(commands)
    paper_cmd.register(commands)
    live_cmd.register(commands)
    exchange_cmd.register(commands)
    train_cmd.register(commands)
    models_cmd.register(commands)
    explain_cmd.register(commands)
    sweep_cmd.register(commands)
    report_cmd.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    install_log_redaction(sys.argv[1:] if argv is None else argv, args.config)
    try:
        return int(args.handler(args) or 0)
    except (
        ConfigError,
        UsageError,
        DataError,
        StrategyNotFoundError,
        StrategyParameterError,
        StoreOpenError,
        LeaseHeldError,
    ) as exc:
        report(str(exc))
        return EXIT_USAGE
    except (StoreUnavailableError, StoreGoneError, LeaseLostError, DaemonStoppedError) as exc:
        report(f"stopped: {exc}")  # a daemon has logged it already; the status tells a supervisor
        return EXIT_STORE_FAULT
    except KeyboardInterrupt:
        report("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `bot runs list | head`: the reader has what it wanted
        silence_stdout()
        return 0
    except Exception as exc:  # a bug: its traceback, but no secret in it
        report_bug(exc)
        return EXIT_BUG


def silence_stdout() -> None:
    """Point the process's stdout at /dev/null: the reader of the pipe is gone, and Python's
    final flush of what is still buffered would otherwise end in a BrokenPipeError message."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # not a real file: nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
