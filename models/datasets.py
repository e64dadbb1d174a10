"""Training data without leakage: windows, targets, normalisation and walk-forward splits.

A sample is a *decision row* ``t`` (the close of bar ``t``): its input is the window of the
``lookback`` feature rows ending at ``t`` and its target lies strictly after ``t``
(``horizon`` bars ahead). Windows are views into one feature array, materialised a batch at a
time, never as one ``[samples, assets, lookback, features]`` copy.

Leakage guards, each tested:

* normalisation statistics come from the training rows only (:class:`Normalizer`);
* walk-forward folds leave an embargo of ``horizon + lookback`` rows between the last training
  decision and the first test decision, so no training target overlaps a test window
  (:func:`walk_forward`);
* multi-scale windows end with each scale's last *closed* bar at the decision time
  (:func:`scale_ends`), never the bar still forming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

CLOSE = 3


def forward_log_returns(close: np.ndarray, horizon: int) -> np.ndarray:
    """``ln(close[t + horizon] / close[t])`` for every row (NaN where the future is unknown)."""
    out = np.full(close.shape, np.nan)
    if horizon < len(close):
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    return out


def three_classes(returns: np.ndarray, threshold: float) -> np.ndarray:
    """0 = down (< −threshold), 1 = stationary, 2 = up (> threshold); −1 where unknown."""
    out = np.ones(returns.shape, dtype=np.int64)
    out[returns < -threshold] = 0
    out[returns > threshold] = 2
    out[np.isnan(returns)] = -1
    return out


def balanced_threshold(returns: np.ndarray) -> float:
    """The |return| below which a third of the (training) samples lie: about balanced classes."""
    finite = np.abs(returns[np.isfinite(returns)])
    return float(np.quantile(finite, 1 / 3)) if len(finite) else 0.0


@dataclass
class Normalizer:
    """Per-feature z-scores with statistics fitted on training rows only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, rows: np.ndarray, lookback: int) -> Normalizer:
        """Fit on every feature row any training window reads (rows ``t-lookback+1 .. t``)."""
        used = np.unique((rows[:, None] - np.arange(lookback)[None, :]).ravel())
        sample = features[used].reshape(-1, features.shape[-1])
        mean = np.nanmean(sample, axis=0)
        std = np.nanstd(sample, axis=0)
        return cls(mean, np.where(std > 1e-12, std, 1.0))

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Normalised float32 features; NaN (not enough history) becomes 0, the mean."""
        return np.nan_to_num((features - self.mean) / self.std, nan=0.0).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Normalizer:
        return cls(np.asarray(data["mean"], dtype=float), np.asarray(data["std"], dtype=float))


def decision_rows(
    n_rows: int, lookback: int, horizon: int, first_valid: int = 0, last: int | None = None
) -> np.ndarray:
    """Rows with a full window of valid features behind them and a known target ahead."""
    first = max(first_valid + lookback - 1, lookback - 1)
    stop = min(n_rows - horizon, n_rows if last is None else last + 1)
    return np.arange(first, max(first, stop))


@dataclass(frozen=True)
class Fold:
    train: np.ndarray
    test: np.ndarray


def walk_forward(
    rows: np.ndarray, n_folds: int, lookback: int, horizon: int, min_train: int
) -> list[Fold]:
    """Expanding-window folds over ascending decision ``rows``: each test block follows its
    training rows after an embargo of ``horizon + lookback`` rows (purging every training
    sample whose target or whose window could touch the test period)."""
    embargo = horizon + lookback
    test_size = (len(rows) - min_train - embargo) // n_folds
    if test_size < 1:
        raise ValueError(
            f"{len(rows)} rows cannot make {n_folds} folds after {min_train} training rows and "
            f"an embargo of {embargo}"
        )
    folds = []
    for k in range(n_folds):
        test_start = min_train + embargo + k * test_size
        test = rows[test_start : test_start + test_size]
        train = rows[rows <= test[0] - embargo]
        folds.append(Fold(train, test))
    return folds


class WindowDataset(Dataset):
    """Samples ``(x, y)`` with ``x = features[t-lookback+1 : t+1]`` for each decision row.

    ``features`` is ``[T, A, F]`` (already normalised, float32); ``x`` comes out as
    ``[A, lookback, F]`` — or ``[lookback, F]`` for a single series (``squeeze_assets``).
    ``targets`` is indexed by row (``[T, ...]``).
    """

    def __init__(
        self,
        features: np.ndarray,
        rows: np.ndarray,
        lookback: int,
        targets: np.ndarray,
        squeeze_assets: bool = False,
    ) -> None:
        self.features = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        self.rows = np.asarray(rows, dtype=np.int64)
        self.lookback = lookback
        self.targets = torch.from_numpy(np.asarray(targets))
        self.squeeze_assets = squeeze_assets

    def __len__(self) -> int:
        return len(self.rows)

    def window(self, row: int) -> torch.Tensor:
        x = self.features[row - self.lookback + 1 : row + 1]  # [L, A, F]
        return x[:, 0] if self.squeeze_assets else x.permute(1, 0, 2)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = int(self.rows[i])
        return self.window(row), self.targets[row]

    def inputs(self, rows: Sequence[int]) -> torch.Tensor:
        """Stacked windows of several rows (batched inference)."""
        return torch.stack([self.window(int(r)) for r in rows])


def scale_ends(decision_times: np.ndarray, bar_closes: np.ndarray) -> np.ndarray:
    """For each decision time, the index of the last bar of a scale that had closed by then
    (−1 if none): bars still forming at the decision are never in the window."""
    return np.searchsorted(bar_closes, decision_times, side="right") - 1


class MultiScaleDataset(Dataset):
    """Samples ``({scale: [L_scale, F]}, targets)`` with each scale's window ending at its last
    closed bar at the decision time (see :func:`scale_ends`)."""

    def __init__(
        self,
        scales: dict[str, tuple[np.ndarray, np.ndarray]],  # scale → (bar close times, features)
        lengths: dict[str, int],
        decision_times: np.ndarray,
        targets: dict[str, np.ndarray],
    ) -> None:
        self.scales = list(scales)
        self.features = {s: torch.from_numpy(f.astype(np.float32)) for s, (_, f) in scales.items()}
        self.lengths = lengths
        ends = {s: scale_ends(decision_times, closes) for s, (closes, _) in scales.items()}
        keep = np.all([ends[s] >= lengths[s] - 1 for s in self.scales], axis=0)
        self.index = np.flatnonzero(keep)  # decisions with a full window on every scale
        self.ends = {s: e[self.index] for s, e in ends.items()}
        self.targets = {k: torch.from_numpy(np.asarray(v)[self.index]) for k, v in targets.items()}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        x = {}
        for s in self.scales:
            end = int(self.ends[s][i])
            x[s] = self.features[s][end - self.lengths[s] + 1 : end + 1]
        return x, {k: v[i] for k, v in self.targets.items()}
