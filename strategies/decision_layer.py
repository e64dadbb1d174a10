"""From a signal to positions that can pay for their trades: the cost-aware decision layer.

A forecast that flips between assets every few hours trades its equity hundreds of times a
year, and at 6.5 bp a fill the fees eat any edge it has. The layer sits between a strategy's
raw target weights (its *signal*) and the weights it returns, and applies, in this order, at
each decision:

1. **smoothing** — an EMA of the signal over decisions (``smoothing`` is its span: 1 = none);
2. **shape** — market-neutral (``market_neutral``: the mean weight is taken out, so the weights
   sum to zero), long only (``long_only``: negative weights become 0), then the gross cap
   (``gross``: Σ|w| is scaled down to it when above);
3. **no-trade band** — a symbol's weight moves only when the shaped target differs from the
   weight the layer holds for it by more than ``band`` (a weight, e.g. 0.05), and only after
   it has been held ``min_hold`` (a duration, e.g. ``"1d"``). In market-neutral mode the
   symbols that move share the residual, so the weights keep summing to zero;
4. **turnover budget** — ``turnover_budget`` is an annual Σ|Δw| the layer may spend: it earns
   it continuously (a month's worth at most in hand, a month's worth at the start) and a move
   it cannot afford is made only in part, in the direction of the target. Over any run the
   layer's turnover is at most ``budget · years + budget / 12``.

``band="auto"`` derives the band from costs and the signal (:func:`auto_band`): a change of
weight is worth making when the return it can earn over a holding period beats the round
trip it costs, so the band is the signal's typical size scaled by ``round trip / typical
move``, times ``band_scale``. Model strategies calibrate it from their training window.

The held weights are the layer's own last outputs, never the portfolio's (a vector strategy's
decisions must not depend on the portfolio), and rows are processed one after another, so a
replay block and one bar at a time give the same decisions bit for bit. A decision that moves
nothing becomes a NaN row: no decision, no order (drifted weights are not traded back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from bot.core.timeutil import interval_ms, normalize_interval

YEAR_MS = 365 * 24 * 3_600_000
#: The budget the layer may hold in hand, as a fraction of the annual budget (one month).
BUDGET_BURST = 1 / 12
AUTO = "auto"


def auto_band(typical_size: float, typical_move: float, round_trip: float, scale: float) -> float:
    """The no-trade band in weight units: ``scale · typical_size · round_trip / typical_move``.

    ``typical_size`` is the signal's mean |weight| per symbol, ``typical_move`` the mean
    |return| of a symbol over one holding horizon and ``round_trip`` the cost of buying and
    selling again (fractions). A signal whose full size earns about a typical move cannot
    recover a cost of ``round_trip`` from a change smaller than that fraction of its size."""
    if not (typical_move > 0 and math.isfinite(typical_move)):
        return 0.0
    return float(scale * typical_size * min(1.0, round_trip / typical_move))


@dataclass(frozen=True)
class DecisionRules:
    """The layer's settings (see the module docstring); the defaults change nothing."""

    band: float | str = 0.0  # a weight, or "auto"
    band_scale: float = 1.0  # multiplies the automatic band
    round_trip_bp: float = 13.0  # fee + slippage, bought and sold: 2 × (5.5 + 1) bp
    smoothing: int = 1
    min_hold: str | None = None  # "4h", "1d": a changed weight is held at least this long
    market_neutral: bool = False
    long_only: bool = False
    gross: float = 1.0
    turnover_budget: float | None = None  # Σ|Δw| per year

    def __post_init__(self) -> None:
        if isinstance(self.band, str):
            if self.band != AUTO:
                raise ValueError(f"band must be a weight or 'auto', got {self.band!r}")
        elif not 0 <= self.band < 2:
            raise ValueError(f"band must be in [0, 2), got {self.band}")
        if not 0 < self.band_scale <= 100:
            raise ValueError(f"band_scale must be in (0, 100], got {self.band_scale}")
        if not 0 <= self.round_trip_bp < 1000:
            raise ValueError(f"round_trip_bp must be in [0, 1000), got {self.round_trip_bp}")
        if int(self.smoothing) != self.smoothing or not 1 <= self.smoothing <= 1000:
            raise ValueError(
                f"smoothing must be a whole number of decisions ≥ 1, got {self.smoothing}"
            )
        if self.min_hold is not None:
            try:
                interval_ms(normalize_interval(self.min_hold))
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"min_hold must be a duration such as '1d': {error}") from None
        if self.market_neutral and self.long_only:
            raise ValueError("market_neutral needs shorts: it cannot be combined with long_only")
        if not 0 < self.gross <= 10:
            raise ValueError(f"gross must be in (0, 10], got {self.gross}")
        if self.turnover_budget is not None and not self.turnover_budget > 0:
            raise ValueError(f"turnover_budget must be > 0, got {self.turnover_budget}")

    @property
    def round_trip(self) -> float:
        return self.round_trip_bp / 1e4

    @cached_property
    def alpha(self) -> float:
        """The smoothing EMA's weight of the newest signal."""
        return 2.0 / (self.smoothing + 1)

    @cached_property
    def min_hold_ms(self) -> int:
        return 0 if self.min_hold is None else interval_ms(normalize_interval(self.min_hold))

    @property
    def active(self) -> bool:
        """Whether the layer can change anything beyond the gross cap."""
        return (
            self.band != 0.0
            or self.smoothing > 1
            or self.min_hold is not None
            or self.market_neutral
            or self.long_only
            or self.turnover_budget is not None
        )

    def with_changes(self, **changes: Any) -> DecisionRules:
        return replace(self, **changes)


@dataclass
class _State:
    """What the layer remembers between decisions (rebuilt by replaying the same rows)."""

    held: np.ndarray
    since: np.ndarray  # ms: when each symbol's held weight last changed
    smoothed: np.ndarray | None = None
    budget: float = 0.0  # Σ|Δw| the layer may still spend
    budget_time: int | None = None
    turnover: float = 0.0  # Σ|Δw| spent so far


class DecisionLayer:
    """Turns raw target weights into the weights to trade, one decision row after another."""

    def __init__(self, rules: DecisionRules, n_symbols: int) -> None:
        self.rules = rules
        self.n_symbols = n_symbols
        self.band = 0.0 if rules.band == AUTO else float(rules.band)
        self._state = _State(np.zeros(n_symbols), np.full(n_symbols, -(2**62), dtype=np.int64))
        if rules.turnover_budget is not None:
            self._state.budget = rules.turnover_budget * BUDGET_BURST

    @property
    def held(self) -> np.ndarray:
        return self._state.held.copy()

    @property
    def turnover(self) -> float:
        """Σ|Δw| of the layer's outputs so far (the first move from flat included)."""
        return self._state.turnover

    def retune(self, rules: DecisionRules, band: float) -> None:
        """New settings (a refit's choice) from the next decision on, keeping what is held,
        the smoothed signal and the budget in hand."""
        self.rules, self.band = rules, band

    def calibrate(self, typical_size: float, typical_move: float) -> None:
        """Set an automatic band from the signal's and the market's typical sizes."""
        if self.rules.band == AUTO:
            self.band = auto_band(
                typical_size, typical_move, self.rules.round_trip, self.rules.band_scale
            )

    def apply(self, times: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Weights ``[rows, symbols]`` for raw weights at ``times`` (ms; NaN rows: no decision,
        passed through). Rows must come in time order across calls. Settings that change
        nothing pass the weights through as they are (every decision stays a decision)."""
        if not self.rules.active:
            return raw
        out = np.full(raw.shape, np.nan)
        for i in np.flatnonzero(~np.isnan(raw).all(axis=1)):
            row = self.step(int(times[i]), raw[i])
            if row is not None:
                out[i] = row
        return out

    def step(self, time: int, raw: np.ndarray) -> np.ndarray | None:
        """One decision: the weights to trade, or None when nothing moves."""
        state, rules = self._state, self.rules
        signal = np.where(
            np.isnan(raw), state.held if state.smoothed is None else state.smoothed, raw
        )
        if state.smoothed is None or rules.alpha == 1.0:
            state.smoothed = signal.astype(float)
        else:
            state.smoothed = state.smoothed + rules.alpha * (signal - state.smoothed)
        target = self._shape(state.smoothed)
        free = (time - state.since) >= rules.min_hold_ms
        moving = free & (np.abs(target - state.held) > self.band)
        new = np.where(moving, target, state.held)
        if rules.market_neutral and moving.any():
            new[moving] -= new.sum() / moving.sum()
        new = self._afford(time, self._cap(new))
        changed = new != state.held
        if not changed.any():
            return None
        spent = float(np.abs(new - state.held).sum())
        state.held = new
        state.since = np.where(changed, time, state.since)
        state.turnover += spent
        if rules.turnover_budget is not None:
            state.budget = max(0.0, state.budget - spent)
        return state.held.copy()

    def _shape(self, signal: np.ndarray) -> np.ndarray:
        rules = self.rules
        target = signal - signal.mean() if rules.market_neutral else signal
        if rules.long_only:
            target = np.maximum(target, 0.0)
        return self._cap(target)

    def _cap(self, weights: np.ndarray) -> np.ndarray:
        total = float(np.abs(weights).sum())
        return weights * (self.rules.gross / total) if total > self.rules.gross else weights

    def _afford(self, time: int, new: np.ndarray) -> np.ndarray:
        """The weights the turnover budget pays for: ``new``, or part of the way to it."""
        budget = self.rules.turnover_budget
        state = self._state
        if budget is None:
            return new
        if state.budget_time is not None:
            earned = budget * max(0, time - state.budget_time) / YEAR_MS
            state.budget = min(budget * BUDGET_BURST, state.budget + earned)
        state.budget_time = time
        delta = new - state.held
        cost = float(np.abs(delta).sum())
        if cost <= state.budget:
            return new
        return state.held + delta * (state.budget / cost)
