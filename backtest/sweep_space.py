"""The search space of a sweep: what ``--param`` values a trial may take, and how they are drawn.

A dimension is a list of values (``lookback=24,72,168``: a grid axis, or what a random or
Optuna search picks from) or a numeric range (``gross=0.5:1.5``, ``lookback=24:336:log``) that
only a random or Optuna search can draw from. Values are typed like ``bot backtest --param``
(TOML literals, else bare strings), so a sweep's trial and the backtest a user reruns from it
read the same numbers. Every draw is seeded: a sweep is reproducible from its command line.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.cli.common import parse_value
from bot.config import has_non_finite

SEARCHES = ("grid", "random", "optuna")


class SpaceError(ValueError):
    """A ``--param`` that cannot be searched; the message names it."""


@dataclass(frozen=True)
class Choice:
    """Values to pick from, in the order given (a grid walks them in that order)."""

    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Range:
    """Numbers in ``[low, high]``: integers when both ends are integers; ``log`` draws
    uniformly in log space (for scales such as lookbacks, where 24→48 matters as 168→336)."""

    name: str
    low: float
    high: float
    log: bool = False

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    @property
    def ends(self) -> tuple[Any, Any]:
        return self.low, self.high


Dimension = Choice | Range


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _values(text: str) -> tuple[Any, ...]:
    """``v1,v2,v3`` as typed values: a TOML array when it reads as one (``1,2.5,true``,
    ``"a,b",c`` fails and falls back), else each comma-separated piece on its own."""
    try:
        parsed = parse_value(f"[{text}]")
    except RecursionError:  # absurd nesting: let the pieces below say what is wrong
        parsed = None
    if isinstance(parsed, list) and parsed:
        return tuple(parsed)
    return tuple(parse_value(piece.strip()) for piece in text.split(",") if piece.strip())


def _range(name: str, text: str) -> Range | None:
    """``lo:hi`` or ``lo:hi:log`` when both ends are numbers, else None (a plain value)."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        return None
    low, high = parse_value(parts[0]), parse_value(parts[1])
    if not (_number(low) and _number(high)):
        return None
    shown = f"--param {name}={text}"
    if has_non_finite([low, high]):
        raise SpaceError(f"{shown}: not a finite number")
    if not low < high:
        raise SpaceError(f"{shown}: the range needs low < high")
    log = len(parts) == 3
    if log and low <= 0:
        raise SpaceError(f"{shown}: a log range needs low > 0")
    return Range(name, low, high, log)


def parse_space(pairs: Sequence[str]) -> list[Dimension]:
    """The dimensions of repeated ``--param key=v1,v2`` / ``key=lo:hi[:log]`` flags."""
    dims: dict[str, Dimension] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        name, text = key.strip(), text.strip()
        if not sep or not name or not text:
            raise SpaceError(f"--param {pair!r}: write key=v1,v2,... or key=lo:hi")
        if name in dims:
            raise SpaceError(f"--param {name}: given twice")
        dim = _range(name, text)
        if dim is None:
            values = _values(text)
            if not values:
                raise SpaceError(f"--param {pair!r}: no values")
            if has_non_finite(list(values)):
                raise SpaceError(f"--param {name}={text}: not a finite number")
            dim = Choice(name, values)
        dims[name] = dim
    return list(dims.values())


def check_names(
    strategy: str, accepted: Mapping[str, inspect.Parameter], dims: Sequence[Dimension]
):
    """Refuse a dimension the strategy's constructor does not take, naming it, before anything
    runs (a strategy that takes ``**kwargs`` accepts any name)."""
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    allowed = [k for k in accepted if k not in ("self", "symbols", "interval")]
    for dim in dims:
        if dim.name not in allowed:
            raise SpaceError(
                f"--param {dim.name}: strategy {strategy!r} has no parameter {dim.name!r} "
                f"(parameters: {', '.join(allowed)})"
            )


def candidates(dim: Dimension) -> tuple[Any, ...]:
    """The values worth checking before a sweep starts: every choice, or a range's ends."""
    return dim.values if isinstance(dim, Choice) else dim.ends


def grid(dims: Sequence[Dimension]) -> list[dict[str, Any]]:
    """Every combination, the first dimension varying slowest."""
    ranged = [d.name for d in dims if isinstance(d, Range)]
    if ranged:
        raise SpaceError(
            f"--param {ranged[0]}: a range needs --search random or optuna (a grid needs values)"
        )
    names = [d.name for d in dims]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(d.values for d in dims if isinstance(d, Choice)))
    ]


def _draw(dim: Dimension, rng: np.random.Generator) -> Any:
    if isinstance(dim, Choice):
        return dim.values[int(rng.integers(len(dim.values)))]
    if dim.log:
        value = math.exp(rng.uniform(math.log(dim.low), math.log(dim.high)))
    else:
        value = rng.uniform(dim.low, dim.high)
    return min(max(round(value), dim.low), dim.high) if dim.integer else float(value)


def random_draws(dims: Sequence[Dimension], trials: int, seed: int) -> list[dict[str, Any]]:
    """``trials`` independent draws, the same ones for the same seed."""
    rng = np.random.default_rng(seed)
    return [{d.name: _draw(d, rng) for d in dims} for _ in range(trials)]
