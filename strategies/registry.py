"""Finding strategies by name: the ``bot.strategies`` entry-point group, or ``module:Class``.

A plugin package registers its strategies in its own ``pyproject.toml``::

    [project.entry-points."bot.strategies"]
    my_strategy = "my_package.my_module:MyStrategy"

and ``bot backtest --strategy my_strategy`` finds it once the package is installed.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from strategies.api import Strategy

GROUP = "bot.strategies"
#: Most bars a strategy may look back over or warm up on (~9.5 years of 1m bars): beyond it the
#: buffers alone need gigabytes per symbol, and the run would die of a MemoryError mid-way.
MAX_LOOKBACK_BARS = 5_000_000


class StrategyNotFoundError(LookupError):
    """No strategy by that name is installed or importable."""


class StrategyParameterError(ValueError):
    """A strategy was given a parameter it does not take, or a value it rejects."""


def available() -> dict[str, str]:
    """Installed strategy names → ``module:Class``."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def resolve(name: str) -> type[Strategy]:
    """The strategy class for an entry-point name or a ``package.module:Class`` path."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise StrategyNotFoundError(f"cannot import strategy {name!r}: {exc}") from exc
    else:
        matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
        if not matches:
            names = ", ".join(sorted(available())) or "none installed"
            raise StrategyNotFoundError(f"unknown strategy {name!r}; available: {names}")
        cls = matches[0].load()
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise StrategyNotFoundError(f"{name!r} is not a subclass of strategies.api.Strategy")
    return cls


def accepted_parameters(cls: type[Strategy]) -> Mapping[str, inspect.Parameter]:
    """The parameters a strategy's constructor takes (with ``self``, symbols and interval)."""
    return inspect.signature(cls.__init__).parameters


def create(
    name: str, symbols: Sequence[str], interval: str, params: Mapping[str, Any] | None = None
) -> Strategy:
    """Instantiate a strategy; an unknown parameter is a clear error naming it."""
    cls = resolve(name)
    params = dict(params or {})
    accepted = accepted_parameters(cls)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in params if k not in accepted or k in ("self", "symbols", "interval")]
    if unknown and not takes_any:
        allowed = [k for k in accepted if k not in ("self", "symbols", "interval")]
        raise StrategyParameterError(
            f"strategy {name!r} has no parameter {unknown[0]!r} (parameters: {', '.join(allowed)})"
        )
    try:
        strategy = cls(symbols, interval, **params)
    except (TypeError, ValueError, ArithmeticError, MemoryError) as exc:
        # ArithmeticError: int(1e400) in a constructor (OverflowError); MemoryError: a window
        # allocated up front from an absurd parameter
        reason = str(exc) or type(exc).__name__
        raise StrategyParameterError(f"strategy {name!r}: {reason}") from exc
    check_history(name, strategy)
    return strategy


def check_history(name: str, strategy: Strategy) -> None:
    """Refuse a lookback or warm-up the engine could not hold in memory, naming the value."""
    needs = {"lookback": strategy.lookback, "warmup": strategy.warmup}
    needs.update({f"lookback on {k}": v for k, v in strategy.extra_intervals.items()})
    for what, bars in needs.items():
        if bars > MAX_LOOKBACK_BARS:
            shown = f"{bars:,}" if bars < 1e15 else f"{bars:.3g}"
            raise StrategyParameterError(
                f"strategy {name!r}: {what} of {shown} bars is more than the "
                f"{MAX_LOOKBACK_BARS:,} the engine can hold"
            )
