"""Choosing a strategy's decision settings without peeking: on a fit's own validation slice.

A walk-forward refit may pick among a small grid of settings (``select={"band_scale": [1, 2,
4], "smoothing": [1, 4]}``). Each candidate's decision layer is replayed over the validation
decisions inside the fit's training window — the latest slice, after the training part and
its embargo — and scored by the Sharpe ratio of its returns net of the round-trip cost. So the
choice sees no bar the fit could not see, and the settings live with the model they were chosen
for (recorded in its version).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from strategies.decision_layer import DecisionLayer, DecisionRules

#: What a grid may vary: the layer's settings, and the strategy's confidence threshold.
SELECTABLE = ("band", "band_scale", "smoothing", "min_hold", "confidence")


def selection_grid(
    select: Mapping[str, Sequence[Any]] | None, rules: DecisionRules
) -> tuple[dict[str, Any], ...]:
    """Every combination of ``select``'s values (empty without a grid); each checked now."""
    if not select:
        return ()
    unknown = sorted(set(select) - set(SELECTABLE))
    if unknown:
        raise ValueError(f"select: cannot vary {unknown[0]!r}; choose from {list(SELECTABLE)}")
    for key, values in select.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"select: {key} needs a non-empty list of values")
    if "band_scale" in select and rules.band != "auto":
        raise ValueError("select: band_scale only matters with band = 'auto'")
    keys = list(select)
    grid = tuple(
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*select.values())
    )
    if len(grid) > 64:
        raise ValueError(f"select: {len(grid)} combinations; keep the grid small (≤ 64)")
    for candidate in grid:
        layer_rules(rules, candidate)  # a bad value fails at start-up, not at the first refit
    return grid


def layer_rules(rules: DecisionRules, candidate: Mapping[str, Any]) -> DecisionRules:
    return rules.with_changes(**{k: v for k, v in candidate.items() if k != "confidence"})


def net_returns(
    weights: np.ndarray, asset_returns: np.ndarray, round_trip: float
) -> tuple[np.ndarray, float]:
    """Per-decision portfolio returns net of costs, and the turnover, for weights decided at
    each row (NaN rows: keep the previous weights; the portfolio starts flat) held over
    ``asset_returns`` (simple returns until the next decision)."""
    held = np.zeros(weights.shape[1])
    net = np.empty(len(weights))
    turnover = 0.0
    for i, row in enumerate(weights):
        new = held if np.isnan(row).all() else np.nan_to_num(row)
        traded = float(np.abs(new - held).sum())
        turnover += traded
        net[i] = float(new @ asset_returns[i]) - traded * round_trip / 2
        held = new
    return net, turnover


@dataclass(frozen=True)
class Choice:
    """The chosen candidate, the band it implies and how every candidate scored."""

    settings: dict[str, Any]
    band: float
    scores: tuple[float, ...]

    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.settings.items())


def choose(
    grid: Sequence[Mapping[str, Any]],
    rules: DecisionRules,
    signal_for: Callable[[Mapping[str, Any]], np.ndarray],
    times: np.ndarray,
    asset_returns: np.ndarray,
    typical_move: float,
) -> Choice:
    """The candidate whose layer earns the best net Sharpe on the validation decisions
    (ties: the one that trades least, then the first). ``signal_for(candidate)`` gives the raw
    weights ``[n, A]`` at ``times``; ``asset_returns[i]`` what row ``i``'s weights earn."""
    best: tuple[float, float] | None = None
    chosen: tuple[dict[str, Any], float] | None = None
    scores = []
    for candidate in grid:
        raw = signal_for(candidate)
        layer = DecisionLayer(layer_rules(rules, candidate), raw.shape[1])
        layer.calibrate(float(np.abs(raw).mean()), typical_move)
        net, turnover = net_returns(layer.apply(times, raw), asset_returns, rules.round_trip)
        spread = float(net.std())
        score = float(net.mean()) / spread if spread > 0 else 0.0
        scores.append(score)
        key = (score, -turnover)
        if best is None or key > best:
            best, chosen = key, (dict(candidate), layer.band)
    assert chosen is not None
    return Choice(chosen[0], chosen[1], tuple(scores))
