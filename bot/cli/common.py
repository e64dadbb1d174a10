"""Pieces shared by the subcommands: loading settings, opening the store, printing tables."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.config import ConfigError, Settings, load_settings

DEFAULT_CONFIG = Path("config.toml")
DEFAULT_STORE = "sqlite:///bot.db"


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit status 2."""


def parse_value(text: str) -> Any:
    """A ``--param`` value: a TOML literal (``3``, ``0.5``, ``true``, ``"1w"``) or a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: write key=value")
        params[key.strip()] = parse_value(value.strip())
    return params


def parse_symbols(text: str) -> list[str]:
    """``--symbols btcusdt, ETHUSDT`` → ``["BTCUSDT", "ETHUSDT"]``."""
    return [s.strip().upper() for s in text.split(",") if s.strip()]


#: flags that choose the bars a command reads, and the config keys they override
HISTORY_FLAGS = {
    "interval": "engine.interval", "start": "engine.start", "end": "engine.end",
    "source": "data.source", "store": "store.url",
}  # fmt: skip


def flag_overrides(args: argparse.Namespace, keys: dict[str, str]) -> dict[str, Any]:
    """Dotted config overrides for the flags the user gave (``keys``: attribute → key), plus
    ``--symbols`` and ``--data`` (a folder, resolved from where the user typed it) when the
    command has them."""
    out = {key: getattr(args, attr) for attr, key in keys.items()
           if getattr(args, attr, None) is not None}  # fmt: skip
    if getattr(args, "symbols", None):
        out["engine.symbols"] = parse_symbols(args.symbols)
    if getattr(args, "data", None) is not None:
        out["data.path"] = str(args.data.resolve())
    return out


def settings_from(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Settings:
    path = Path(args.config)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found (pass --config FILE)")
    return load_settings(path, overrides)


def store_url(args: argparse.Namespace) -> str:
    """``--store``, else ``BOT_STORE_URL``, else the config's ``store.url``, else bot.db here."""
    if getattr(args, "store", None):
        return args.store
    if url := os.environ.get("BOT_STORE_URL"):
        return url
    if Path(args.config).exists():
        return settings_from(args).store.url
    return DEFAULT_STORE


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
