"""Backtests from Python — a notebook, a script — with the settings the CLI would use.

``bot.backtest(...)`` reads the same config file as ``bot backtest`` (``config.toml`` here, else
the project's), its keywords override the same keys as the command's flags, and the run is
recorded in the same store; the result is the run *as stored*, loaded back as DataFrames
(:class:`~backtest.run_data.RunData`), so a run just made and one loaded later by id with
:func:`load_run` are the same object, value for value. ``store=":memory:"`` records into an
in-process SQLite database that vanishes with the call: nothing is written to disk, and the
returned result is the only copy.

It lives here rather than in the top-level ``backtest`` package because ``bot.backtest`` must
be a function, and ``bot/__init__.py`` exposes it lazily so that ``import bot`` stays cheap.
"""

from __future__ import annotations

import asyncio
import difflib
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.exc import SADeprecationWarning

from backtest.run_data import RunData
from backtest.run_data import load_run as load_stored_run
from backtest.runner import run_backtest_async
from bot.cli.backtest_cmd import BACKTEST_FLAGS
from bot.cli.common import DEFAULT_CONFIG, apply_torch_threads
from bot.config import ConfigError, Settings, load_settings
from bot.store import Store

#: ``store=`` value for a throwaway in-process database.
MEMORY = ":memory:"
#: The project's own config file: used when the current directory has none (a notebook in a
#: subfolder), as ``bot backtest --config`` would be pointed at it.
PROJECT_CONFIG = Path(__file__).resolve().parent.parent / DEFAULT_CONFIG.name

#: Keywords of :func:`backtest` that set one config key, named like ``bot backtest``'s flags.
KEYS: dict[str, str] = {name: key for name, key in BACKTEST_FLAGS.items() if name != "store"}
#: Keywords that need more than copying a value into one key.
SHAPED = ("strategy", "params", "symbols", "data")


class Result(RunData):
    """A recorded run as DataFrames — ``equity``, ``fills``, ``trades``, ``funding``,
    ``orders``, ``decisions``, ``positions``, ``weights``, ``events`` — with its ``metrics``
    (a dict; :attr:`metrics_table` as a DataFrame), ``run_id`` and stored ``settings``."""

    @classmethod
    def of(cls, data: RunData) -> Result:
        return cls(**{f.name: getattr(data, f.name) for f in fields(RunData)})

    @property
    def metrics_table(self) -> pd.DataFrame:
        """The metrics as one column named after the run, so ``pd.concat([a.metrics_table,
        b.metrics_table], axis=1)`` lines runs up side by side."""
        return pd.DataFrame({self.label: pd.Series(self.metrics, dtype=object)})

    def report(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write the run's HTML report to ``path``; returns where it went."""
        # imported here: the report's charting is only loaded when a report is asked for
        from backtest.html_report import write_report  # noqa: PLC0415

        return write_report([self], Path(path), title=title)

    def __repr__(self) -> str:
        metrics = self.metrics
        sharpe, total = metrics.get("sharpe"), metrics.get("total_return")
        shown_sharpe = "n/a" if sharpe is None else f"{sharpe:.2f}"
        shown_return = "n/a" if total is None else f"{total:+.2%}"
        return (
            f"<{self.run['kind']} {self.run_id} {self.run['strategy']} "
            f"sharpe={shown_sharpe} return={shown_return}>"
        )


def backtest(
    config: str | Path | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    store: str | None = None,
    progress: bool = False,
    **options: Any,
) -> Result:
    """Run a backtest as ``bot backtest`` would and return it as recorded.

    ``config``: the config file (default ``config.toml`` in the current directory, else the
    project's). ``settings``: dotted config keys (``{"risk.max_weight": 0.3}``). ``options``:
    the command's flags as keywords — ``strategy``, ``params`` (a dict), ``symbols`` (a list
    or ``"BTCUSDT,ETHUSDT"``), ``interval``, ``start``, ``end`` (text or datetimes),
    ``source``, ``data``, ``fee_bp``, ``slippage_bp``, ``cash``, ``threshold``,
    ``max_drawdown``, ``block_rows`` — applied after ``settings``. ``store``: a SQLAlchemy
    URL (default: the config's ``store.url``, or ``BOT_STORE_URL``), or ``":memory:"`` to keep
    nothing. A mistyped keyword or key, or a bad value, is a :class:`ConfigError` naming it."""
    chosen = backtest_settings(config, settings=settings, store=store, **options)
    apply_torch_threads(chosen)
    with open_store(chosen, in_memory=store == MEMORY) as opened:
        done = run_sync(lambda: run_backtest_async(chosen, store=opened, progress=progress))
        return Result.of(load_stored_run(opened, done.run_id))


def backtest_settings(
    config: str | Path | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    store: str | None = None,
    **options: Any,
) -> Settings:
    """The settings :func:`backtest` runs with: those ``bot backtest`` builds from the same
    config file and the flags named like ``options``."""
    overrides, flags = option_overrides(options)
    if store == MEMORY:  # the snapshot says where the run went: an in-memory database
        overrides["store.url"], flags["store.url"] = "sqlite://", "store="
    elif store is not None:
        overrides["store.url"], flags["store.url"] = store, "store="
    return load_settings(config_path(config), {**dotted(settings), **overrides}, flags)


def load_run(run_id: str, *, store: str | None = None, config: str | Path | None = None) -> Result:
    """A stored run (backtest, paper or live) by id or unique prefix, as :func:`backtest`
    returns it. ``store`` defaults to the one :func:`backtest` records to."""
    overrides = {} if store is None else {"store.url": store}
    url = load_settings(config_path(config), overrides, {"store.url": "store="}).store.url
    with Store(url) as opened:
        return Result.of(load_stored_run(opened, run_id))


def config_path(config: str | Path | None) -> Path:
    """``config``, else the CLI's default (``config.toml`` here), else the project's."""
    if config is not None:
        path = Path(config).expanduser()
    else:
        path = DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else PROJECT_CONFIG
    if not path.exists():
        raise ConfigError(f"{path}: config file not found (pass config=FILE)")
    return path


def dotted(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    if settings is not None and not isinstance(settings, Mapping):
        raise ConfigError(f"settings= takes a dict of dotted keys, not {type(settings).__name__}")
    return dict(settings or {})


def option_overrides(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(dotted overrides, the keyword behind each) of :func:`backtest`'s keywords, shaped as
    ``bot backtest`` shapes its flags; an unknown keyword is refused with a suggestion."""
    known = [*KEYS, *SHAPED]
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"backtest(): unknown keyword '{name}'{hint}")
    given = {name: value for name, value in options.items() if value is not None}
    out = {KEYS[name]: as_text(value) for name, value in given.items() if name in KEYS}
    flags = {KEYS[name]: f"{name}=" for name in given if name in KEYS}
    if "symbols" in given:
        out["engine.symbols"], flags["engine.symbols"] = symbol_list(given["symbols"]), "symbols="
    if "data" in given:
        out["data.path"] = str(Path(given["data"]).expanduser().resolve())
        flags["data.path"] = "data="
    params = dict(given.get("params") or {})
    if "strategy" in given:
        out["strategies"] = [{"name": given["strategy"], "params": params}]
        flags["strategies"] = "strategy="
        flags.update({f"strategies.0.params.{key}": f"params[{key!r}]" for key in params})
    elif params:
        raise ConfigError("params= needs strategy= (or set params in the config file)")
    return out, flags


def as_text(value: Any) -> Any:
    """A datetime (``pd.Timestamp`` too) as the ISO text the config takes; others unchanged."""
    return value.isoformat() if isinstance(value, datetime) else value


def symbol_list(symbols: str | Sequence[str]) -> list[str]:
    """``"btcusdt, ETHUSDT"`` or a list → upper-case names, as ``--symbols`` reads them."""
    names = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    return [str(name).strip().upper() for name in names if str(name).strip()]


def open_store(settings: Settings, *, in_memory: bool) -> Store:
    """The configured store, or a private in-process SQLite database that every thread of this
    process shares (the journal writes from its own thread) and that vanishes when closed."""
    if not in_memory:
        return Store(settings.store.url, lock_timeout_s=settings.store.lock_timeout_s)
    name = f"bot-{uuid.uuid4().hex}"
    url = f"sqlite:///file:{name}?mode=memory&cache=shared&uri=true&check_same_thread=false"
    with warnings.catch_warnings():
        # SQLAlchemy 2.1 announces QueuePool instead of SingletonThreadPool for such a URL:
        # both share the named database between threads, all this needs; nothing to act on.
        warnings.simplefilter("ignore", SADeprecationWarning)
        return Store(url)


def run_sync(work: Callable[[], Any]) -> Any:
    """Run the coroutine ``work()`` to its end. Jupyter already runs an event loop in this
    thread, where ``asyncio.run`` is refused: there the coroutine gets a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work())
    with ThreadPoolExecutor(1, thread_name_prefix="bot-backtest") as pool:
        return pool.submit(lambda: asyncio.run(work())).result()
