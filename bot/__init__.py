"""The trading engine and everything around it that is not a strategy, a model or analysis.

Kept free of imports so that ``python3 -m bot.quickstart`` runs on a bare Python, and so that
the CLI starts fast: the notebook API (``from bot import backtest, load_run``) is loaded from
:mod:`bot.notebook` on first use.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

#: Names served lazily from :mod:`bot.notebook` (it imports pandas, SQLAlchemy and torch).
_NOTEBOOK = ("backtest", "load_run", "Result")


def __getattr__(name: str) -> Any:
    if name in _NOTEBOOK:
        value = getattr(importlib.import_module("bot.notebook"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
