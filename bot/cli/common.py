"""Pieces shared by the subcommands: loading settings, opening the store, printing tables."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from bot.config import (
    ConfigError,
    Settings,
    check_store_url,
    has_non_finite,
    load_settings,
)
from bot.logs import daemon_logging
from bot.redact import redact_url

DEFAULT_CONFIG = Path("config.toml")
DEFAULT_STORE = "sqlite:///bot.db"


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit status 2."""


class Overrides(dict[str, Any]):
    """Dotted config overrides from the command line that remember the flag behind each key,
    so a bad value is reported as ``--cash (portfolio.initial_cash): ...``, not blamed on the
    config file."""

    def __init__(self) -> None:
        super().__init__()
        #: dotted key (or table) → the flag as the user typed it
        self.flags: dict[str, str] = {}

    def set(self, key: str, value: Any, flag: str) -> None:
        self[key] = value
        self.flags[key] = flag


def parse_value(text: str) -> Any:
    """A ``--param`` value: a TOML literal (``3``, ``0.5``, ``true``, ``"1w"``) or a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_params(pairs: Sequence[str], flag: str = "--param") -> dict[str, Any]:
    """``key=value`` pairs of a repeatable ``flag``; NaN and infinities (``1e400`` reads as
    ``inf``) are refused here, naming the flag and the key."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {pair!r}: write key=value")
        value = parse_value(text.strip())
        if has_non_finite(value):
            raise UsageError(f"{flag} {key.strip()}={text.strip()}: not a finite number")
        params[key.strip()] = value
    return params


def parse_symbols(text: str) -> list[str]:
    """``--symbols btcusdt, ETHUSDT`` → ``["BTCUSDT", "ETHUSDT"]``; an empty list is a mistake
    (``--symbols ""`` from an unset shell variable), never "the config's symbols"."""
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise UsageError(f"--symbols {text!r}: give at least one symbol, e.g. BTCUSDT,ETHUSDT")
    return symbols


#: flags that choose the bars a command reads, and the config keys they override
HISTORY_FLAGS = {
    "interval": "engine.interval", "start": "engine.start", "end": "engine.end",
    "source": "data.source", "store": "store.url",
}  # fmt: skip


def flag_name(attr: str) -> str:
    """The option an argparse attribute came from (``fee_bp`` → ``--fee-bp``)."""
    return "--" + attr.replace("_", "-")


def flag_overrides(args: argparse.Namespace, keys: dict[str, str]) -> Overrides:
    """Dotted config overrides for the flags the user gave (``keys``: attribute → key), plus
    ``--symbols`` and ``--data`` (a folder, resolved from where the user typed it) when the
    command has them."""
    out = Overrides()
    for attr, key in keys.items():
        if getattr(args, attr, None) is not None:
            out.set(key, getattr(args, attr), flag_name(attr))
    if getattr(args, "symbols", None) is not None:
        out.set("engine.symbols", parse_symbols(args.symbols), "--symbols")
    if getattr(args, "data", None) is not None:
        out.set("data.path", str(args.data.resolve()), "--data")
    return out


def settings_from(args: argparse.Namespace, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The config file with ``overrides`` applied; errors in values from flags name the flag
    when ``overrides`` is an :class:`Overrides`."""
    path = Path(args.config)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found (pass --config FILE)")
    flags = overrides.flags if isinstance(overrides, Overrides) else None
    return load_settings(path, overrides, flags)


def apply_torch_threads(settings: Settings, threads: int = 0) -> int:
    """Give torch ``[models] threads`` (``threads`` instead when set, e.g. ``train.threads``)
    for the whole process, before any model computes; returns the count. Every command that
    runs a model calls it first: torch's default, a thread per core, is what makes small
    forward passes on a busy machine many times slower (see ``ModelsConfig``)."""
    count = threads or settings.models.torch_threads()
    torch.set_num_threads(count)
    return count


def store_url(args: argparse.Namespace) -> str:
    """``--store``, else ``BOT_STORE_URL``, else the config's ``store.url``, else bot.db here.

    Checked like ``store.url`` in the config, so a mistyped ``--store`` is one line naming it
    rather than a driver's traceback."""
    if getattr(args, "store", None):
        return checked_url(args.store, "--store")
    if url := os.environ.get("BOT_STORE_URL"):
        return checked_url(url, "BOT_STORE_URL")
    if Path(args.config).exists():
        return settings_from(args).store.url
    return DEFAULT_STORE


def checked_url(url: str, origin: str) -> str:
    """``url`` if the store can run on it; else a :class:`UsageError` naming ``origin`` and
    showing the URL without its secrets."""
    try:
        return check_store_url(url)
    except ValueError as exc:
        raise UsageError(f"{origin} (store.url): {exc} (got {redact_url(url)!r})") from None


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def daemon_log(args: argparse.Namespace, settings: Settings, file: Path | None = None):
    """:func:`bot.logs.daemon_logging` for a daemon command: ``-v`` from the command line, the
    file from ``[log]`` (or ``file``, e.g. the demo's beside its store), announced in one line
    so the user knows where the routine lines went."""
    if file is None and settings.log.file:
        file = Path(settings.log.file)
    if file is not None:
        print(f"log: {file} (routine lines; -v shows them here)", flush=True)
    return daemon_logging(args.verbose, file, max_mb=settings.log.max_mb, keep=settings.log.keep)


def output_path(text: str) -> Path:
    """argparse type of a file or folder a command writes: its folder is made now, and one
    that cannot be made or written is refused at once (exit status 2, the flag named) rather
    than a traceback after the work is done."""
    path = Path(text).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: {path.parent} is read-only")
    return path
