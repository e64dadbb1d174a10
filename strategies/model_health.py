"""Model health: is a model still fed what it learnt from, and does it still answer?

A model-backed strategy trusts two things it cannot see from its returns until too late: that
its inputs come from the distribution it was trained on, and that its network still computes
something. Two checks watch them, decision by decision, and the first that fails halts the
strategy (the engine flattens it and records a ``model_health`` event):

* **Feature drift.** The model's inputs are z-scores under the training normaliser, so over
  the training bars every feature has mean 0 and standard deviation 1. The mean of a feature's
  latest value over the last ``window`` decisions, per symbol, is therefore "how many training
  standard deviations the live feature has moved": beyond ``drift_z`` the model is extrapolating
  (a feed changed units or symbol, a feature is computed differently than in training, the
  market left every regime the model saw). A single outlier bar moves that mean by only
  ``1/window`` of itself, so crashes and spikes do not trip it; a non-finite input does at once.
* **Prediction collapse.** A NaN or infinite output fails at once (it would become a weight).
  Outputs that stay the same — every output within ``collapse_tol`` of itself — for
  ``collapse_window`` decisions in a row mean the network no longer reads its input (zeroed or
  dead weights, a saturated head): its decisions are a constant, not a model's.

Both checks are deterministic functions of the decisions fed so far, fed strictly in order, and
give bit-identical verdicts whether a replay feeds a block of thousands of decisions at once or
a live run feeds them one by one: window sums are taken over integers (features quantised to
``2**-QUANTUM_BITS`` standard deviations), which add exactly in any grouping, and a window's
spread is a max minus a min, which no grouping rounds. Pure numpy, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

#: Features are summed as integers in units of 2**-QUANTUM_BITS training standard deviations.
QUANTUM_BITS = 20
#: |z| is clipped here before quantising (far beyond any limit): keeps window sums in int64.
Z_CLIP = 1e6
MAX_WINDOW = 100_000  # window · Z_CLIP · 2**QUANTUM_BITS must stay below 2**63

DRIFT = "feature_drift"
COLLAPSE = "prediction_collapse"


@dataclass(frozen=True)
class HealthConfig:
    """What a strategy's ``health`` parameter sets (``health=False`` turns both checks off).

    The defaults halt a model answering a constant (within ``collapse_tol``) for a day of
    hourly decisions, or fed features ``drift_z`` standard deviations off on average for a
    week, and leave room on real markets. On the hourly bars of BTC, ETH and SOL from Dec 2023
    to Jun 2025, with normalisers fitted on four months of them, the largest week-long mean
    was 3.3 SDs for the single-scale models' features (``range``, in the March 2024 and
    January 2025 swings) and 7.4 for the multi-scale model's daily ``volatility`` (its daily
    features move slowly, so four months of them span few regimes). Over any day of decisions
    the outputs of every model moved by 0.018 or more, against a tolerance of 1e-6."""

    enabled: bool = True
    #: Limit on a feature's mean over the window, in training standard deviations (0: no check).
    drift_z: float = 10.0
    #: Decisions the drift mean is taken over (before that many, no drift verdict).
    window: int = 168
    #: Decisions in a row with unchanged outputs that count as a collapse (0: no check).
    collapse_window: int = 24
    #: Largest spread (max − min over the window) of every output that still counts as unchanged.
    collapse_tol: float = 1e-6

    def __post_init__(self) -> None:
        if not (math.isfinite(self.drift_z) and self.drift_z >= 0):
            raise ValueError(f"health: drift_z must be a finite number ≥ 0, got {self.drift_z}")
        if not 2 <= self.window <= MAX_WINDOW:
            raise ValueError(f"health: window must be in [2, {MAX_WINDOW}], got {self.window}")
        if self.collapse_window == 1 or not 0 <= self.collapse_window <= MAX_WINDOW:
            raise ValueError(
                f"health: collapse_window must be 0 (off) or in [2, {MAX_WINDOW}], "
                f"got {self.collapse_window}"
            )
        if not (math.isfinite(self.collapse_tol) and self.collapse_tol >= 0):
            raise ValueError(f"health: collapse_tol must be ≥ 0, got {self.collapse_tol}")

    @classmethod
    def of(cls, value: HealthConfig | Mapping[str, Any] | bool | None) -> HealthConfig:
        """A strategy parameter as given: None/True (the defaults), False (off), or a mapping
        of some of the fields (an unknown key is refused, naming it)."""
        if isinstance(value, HealthConfig):
            return value
        if value is None or value is True:
            return cls()
        if value is False:
            return cls(enabled=False)
        if not isinstance(value, Mapping):
            raise ValueError(f"health must be true, false or a table of settings, got {value!r}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"health: unknown key {unknown[0]!r} (keys: {', '.join(known)})")
        types = {"enabled": bool, "window": int, "collapse_window": int}
        parsed = {}
        for key, raw in value.items():
            kind = types.get(key, float)
            if kind is int and not (isinstance(raw, int) and not isinstance(raw, bool)):
                raise ValueError(f"health: {key} must be a whole number, got {raw!r}")
            if kind is bool and not isinstance(raw, bool):
                raise ValueError(f"health: {key} must be true or false, got {raw!r}")
            if kind is float and (isinstance(raw, bool) or not isinstance(raw, int | float)):
                raise ValueError(f"health: {key} must be a number, got {raw!r}")
            parsed[key] = kind(raw)
        return cls(**parsed)


@dataclass(frozen=True)
class Finding:
    """Why a decision failed a check: ``reason`` for people, ``detail`` for the store."""

    check: str  # DRIFT or COLLAPSE
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


class HealthMonitor:
    """The checks' state over the decisions of one model (reset when the model changes).

    Feed decisions in order with :meth:`screen`; it returns the first that fails. State then
    stands at that decision: the strategy halts there and nothing after it matters."""

    def __init__(self, config: HealthConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget every decision seen (a new model: new normaliser, new outputs)."""
        self._features: np.ndarray | None = None  # the last window − 1 quantised [n, A, F]
        self._outputs: np.ndarray | None = None  # the last collapse_window − 1 outputs [n, K]

    def screen(
        self,
        features: np.ndarray,
        outputs: np.ndarray,
        symbols: Sequence[str],
        names: Sequence[str],
    ) -> tuple[int, Finding] | None:
        """Check decisions ``0..B-1`` given as normalised model inputs ``features[B, A, F]``
        (each decision's latest value of each feature, per symbol) and ``outputs[B, K]`` (all
        of the model's outputs for it). Returns ``(b, finding)`` for the first decision that
        fails a check, else None."""
        config = self.config
        b_count = len(features)
        if not config.enabled or b_count == 0:
            return None
        outputs = np.asarray(outputs, dtype=np.float64).reshape(b_count, -1)
        features = np.asarray(features, dtype=np.float64)
        found: dict[int, Finding] = {}
        first = _first(~np.isfinite(outputs).all(axis=1))
        if first is not None:
            found[first] = _nonfinite_output(outputs[first], len(symbols))
        first = _first(~np.isfinite(features).all(axis=(1, 2)))
        if first is not None and first not in found:
            a, f = np.argwhere(~np.isfinite(features[first]))[0]
            found[first] = Finding(
                DRIFT,
                f"feature drift: {names[f]} on {symbols[a]} is {features[first, a, f]} "
                "(not a number the model was trained on)",
                {"check": DRIFT, "feature": names[f], "symbol": symbols[a], "z": None},
            )
        horizon = min(found, default=b_count)  # decisions after a failure are never checked
        if config.drift_z > 0:
            hit = self._drift(features[:horizon], symbols, names)
            if hit is not None and hit[0] not in found:
                found[hit[0]] = hit[1]
        if config.collapse_window > 0:
            hit = self._collapse(outputs[: min(found, default=b_count)])
            if hit is not None and hit[0] not in found:
                found[hit[0]] = hit[1]
        if found:
            b = min(found)
            self._keep(features[: b + 1], outputs[: b + 1])
            return b, found[b]
        self._keep(features, outputs)
        return None

    # -- the checks ------------------------------------------------------------------------
    def _drift(
        self, features: np.ndarray, symbols: Sequence[str], names: Sequence[str]
    ) -> tuple[int, Finding] | None:
        """First decision whose window mean of a (symbol, feature) exceeds ``drift_z``."""
        window = self.config.window
        quantised = _quantise(features)
        history = quantised if self._features is None else np.concatenate([self._features,
                                                                            quantised])  # fmt: skip
        earlier = len(history) - len(quantised)
        if len(history) < window or not len(quantised):
            return None
        sums = np.concatenate([np.zeros((1, *history.shape[1:]), dtype=np.int64),
                               np.cumsum(history, axis=0)])  # fmt: skip
        # decision j of history (full window from j = window − 1): sums[j + 1] − sums[j + 1 − w]
        lo = max(earlier, window - 1)
        totals = sums[lo + 1 :] - sums[lo + 1 - window : len(history) + 1 - window]
        limit = round(self.config.drift_z * window * 2**QUANTUM_BITS)
        over = np.abs(totals) > limit  # exact: integers on both sides
        first = _first(over.any(axis=(1, 2)))
        if first is None:
            return None
        row = totals[first] / (window * 2**QUANTUM_BITS)  # window means, in training SDs
        a, f = np.unravel_index(int(np.argmax(np.abs(row))), row.shape)
        z = float(row[a, f])
        b = lo + first - earlier
        return b, Finding(
            DRIFT,
            f"feature drift: {names[f]} on {symbols[a]} z={z:+.2f} (mean of the last "
            f"{window} decisions, in training standard deviations; limit ±{self.config.drift_z:g})",
            {"check": DRIFT, "feature": names[f], "symbol": symbols[a], "z": z,
             "window": window, "limit": self.config.drift_z},
        )  # fmt: skip

    def _collapse(self, outputs: np.ndarray) -> tuple[int, Finding] | None:
        """First decision ending ``collapse_window`` decisions whose outputs all stayed put."""
        window = self.config.collapse_window
        history = outputs if self._outputs is None else np.concatenate([self._outputs, outputs])
        earlier = len(history) - len(outputs)
        if len(history) < window or not len(outputs):
            return None
        lo = max(earlier, window - 1)
        view = np.lib.stride_tricks.sliding_window_view(history[lo + 1 - window :], window, axis=0)
        spread = view.max(axis=-1) - view.min(axis=-1)  # [decisions, K]
        first = _first((spread <= self.config.collapse_tol).all(axis=1))
        if first is None:
            return None
        b = lo + first - earlier
        value = outputs[b]
        shown = ", ".join(f"{v:.6g}" for v in value[:6]) + (", …" if len(value) > 6 else "")
        return b, Finding(
            COLLAPSE,
            f"prediction collapse: the same outputs ({shown}) for {window} decisions in a row "
            f"(spread ≤ {self.config.collapse_tol:g})",
            {"check": COLLAPSE, "window": window, "tolerance": self.config.collapse_tol,
             "outputs": [float(v) for v in value[:32]]},
        )  # fmt: skip

    def _keep(self, features: np.ndarray, outputs: np.ndarray) -> None:
        """Remember what the next windows need of these decisions."""
        if self.config.drift_z > 0 and len(features):
            q = _quantise(features)
            q = q if self._features is None else np.concatenate([self._features, q])
            self._features = q[max(0, len(q) - (self.config.window - 1)) :].copy()
        if self.config.collapse_window > 0 and len(outputs):
            o = outputs if self._outputs is None else np.concatenate([self._outputs, outputs])
            self._outputs = o[max(0, len(o) - (self.config.collapse_window - 1)) :].copy()


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _quantise(features: np.ndarray) -> np.ndarray:
    """z-scores → integers of 2**-QUANTUM_BITS SDs (non-finite → 0: that check is separate)."""
    clipped = np.clip(np.nan_to_num(features, nan=0.0, posinf=0.0, neginf=0.0), -Z_CLIP, Z_CLIP)
    return np.rint(clipped * 2**QUANTUM_BITS).astype(np.int64)


def _nonfinite_output(output: np.ndarray, n_symbols: int) -> Finding:
    bad = output[~np.isfinite(output)]
    kind = "NaN" if np.isnan(bad).any() else "infinite"
    return Finding(
        COLLAPSE,
        f"prediction collapse: {kind} outputs ({len(bad)} of {len(output)} values "
        f"for {n_symbols} symbols)",
        {"check": COLLAPSE, "nonfinite": len(bad), "outputs": len(output)},
    )
