"""From bars to a trained model, one way for every caller: ``bot train``, the walk-forward
retraining job of a model-backed strategy, and the evaluation benchmark (they reach it through
``strategies.model_fitting``, which turns the engine's bars into these inputs).

Input is ``ohlcv[T, A, 5]`` of the base interval (NaN where a symbol had no bar) and the rows
at which the strategy decides (``sampled``); the multi-scale model also gets each scale's bars
with the base row at which each completed (:class:`ScaleBars`). The latest ``val_fraction`` of
the decisions validate (early stopping), after an embargo of ``horizon + lookback`` rows;
normalisation is fitted on the training rows only; every target lies strictly after its
decision.

Regression targets are divided by their standard deviation on the training rows (recorded as
``target_scale``): a log return of 1e-3 would otherwise give a loss of 1e-6 that a second head
(the multi-scale model's direction BCE) drowns.

Training knows what trading costs (``cost``, the round trip as a fraction): a move smaller
than it is no signal, so the 3-class "stationary" band is at least the cost and a direction
label is 0.5 (neither) inside it; the portfolio and allocation heads learn the Sharpe ratio
net of half the round trip per unit of weight traded between consecutive decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from models.base import TradingModel
from models.datasets import (
    MultiScaleDataset,
    Normalizer,
    WindowDataset,
    balanced_threshold,
    decision_rows,
    forward_log_returns,
    three_classes,
)
from models.features import DEFAULT_FEATURES, FeatureSpec, fill_gaps
from models.registry import build, model_class
from models.training import CHAPTER_RECIPES, TrainConfig, TrainResult, seed_everything, train

CLOSE = 3


@dataclass(frozen=True)
class TrainOptions:
    """What to learn and how; the defaults are the chapters'."""

    features: tuple[str, ...] = DEFAULT_FEATURES
    horizon: int = 1  # bars ahead of a single-horizon target
    horizons: tuple[int, ...] = (1, 4, 24)  # multi-scale short / medium / long, in bars
    val_fraction: float = 0.2
    cost: float = 0.0  # round trip (fee + slippage, bought and sold) as a fraction
    model: dict[str, Any] = field(default_factory=dict)  # hyperparameters over the defaults
    recipe: TrainConfig | None = None  # None: the chapter's

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(tuple(self.features))


@dataclass
class Fitted:
    model: TradingModel
    normalizer: Normalizer
    spec: FeatureSpec
    target: dict[str, Any]  # what the targets meant: horizon(s), threshold, scale
    result: TrainResult
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ScaleBars:
    """One scale's bars as the engine's buffer holds them: ``visible_at[k]`` is the base row at
    whose close bar ``k`` had completed (so a window never includes a forming bar)."""

    ohlcv: np.ndarray  # [T_s, A, 5]
    visible_at: np.ndarray  # [T_s] ascending base rows
    starts: np.ndarray  # [T_s] bar open times (epoch ms): what decision windows anchor on


@dataclass
class Prepared:
    """A freshly initialised model with its training and validation data, ready to train."""

    model: TradingModel
    train_set: Dataset
    val_set: Dataset
    normalizer: Normalizer
    spec: FeatureSpec
    target: dict[str, Any]
    recipe: TrainConfig


def fit(
    model_name: str,
    ohlcv: np.ndarray,
    options: TrainOptions,
    sampled: np.ndarray | None = None,
    scales: dict[str, ScaleBars] | None = None,
    progress: bool = False,
) -> Fitted:
    """Train ``model_name`` on base bars ``ohlcv[T, A, 5]``, learning from the decisions at
    rows where ``sampled`` is true (default: every row); multi-scale models need ``scales``."""
    prepared = prepare(model_name, ohlcv, options, sampled, scales)
    model, train_set = prepared.model, prepared.train_set
    result = train(model, train_set, prepared.val_set, prepared.recipe, progress=progress)
    metrics = {"best_val_loss": result.best_val_loss, "epochs": len(result.history),
               "train_samples": len(train_set), "val_samples": len(prepared.val_set),
               "samples_per_second": result.samples_per_second,
               "prediction_scale": prediction_scale(model, train_set)}  # fmt: skip
    return Fitted(model, prepared.normalizer, prepared.spec, prepared.target, result, metrics)


def prepare(
    model_name: str,
    ohlcv: np.ndarray,
    options: TrainOptions,
    sampled: np.ndarray | None = None,
    scales: dict[str, ScaleBars] | None = None,
) -> Prepared:
    """The datasets and the seeded, untrained model :func:`fit` trains (see there)."""
    if "funding_rate" in options.features:
        raise ValueError(
            "feature 'funding_rate' is not available to strategies yet (the engine's bar buffer "
            "carries no funding), so a model cannot be trained on it"
        )
    ohlcv = fill_gaps(np.asarray(ohlcv, dtype=float))
    if sampled is None:
        sampled = np.ones(len(ohlcv), dtype=bool)
    if model_class(model_name).input_kind == "scales":
        if scales is None:
            raise ValueError(f"{model_name} needs the bars of each of its scales")
        return _prepare_scales(ohlcv, scales, sampled, options)
    return _prepare_windows(model_name, ohlcv, sampled, options)


def first_complete_row(ohlcv: np.ndarray) -> int:
    """The first row from which every asset has bars (later listings start later)."""
    listed = np.isfinite(ohlcv[..., CLOSE]).all(axis=1)
    if not listed.any():
        raise ValueError("no row has bars for every symbol")
    return int(np.argmax(listed))


def _split(rows: np.ndarray, val_fraction: float, embargo: int) -> tuple[np.ndarray, np.ndarray]:
    cut = int(len(rows) * (1 - val_fraction))
    val = rows[cut:]
    train_rows = rows[:cut][rows[:cut] <= (val[0] - embargo if len(val) else rows[-1])]
    if len(train_rows) < 8 or len(val) < 4:
        raise ValueError(
            f"not enough history to train: {len(rows)} decision rows leave {len(train_rows)} "
            f"for training and {len(val)} for validation (need 8 and 4)"
        )
    return train_rows, val


def targets_for(
    head: str, close: np.ndarray, horizon: int, threshold: float, cost: float = 0.0
) -> np.ndarray:
    """Per-row targets for a head from closes ``[T, ...]`` (see ``TradingModel.loss``)."""
    returns = forward_log_returns(close, horizon)
    if head == "classification":
        return three_classes(returns, threshold)
    if head == "direction":
        return direction_labels(returns, cost)
    if head in ("portfolio", "allocation"):  # what a portfolio earns: simple returns
        return np.expm1(returns)
    return returns


def direction_labels(returns: np.ndarray, cost: float) -> np.ndarray:
    """1.0 up, 0.0 down, 0.5 for a move that would not pay the round trip ``cost``; NaN
    where unknown."""
    labels = np.where(returns > 0, 1.0, 0.0)
    labels = np.where(np.abs(returns) < cost, 0.5, labels)
    return np.where(np.isnan(returns), np.nan, labels)


def _prepare_windows(
    model_name: str, ohlcv: np.ndarray, sampled: np.ndarray, options: TrainOptions
) -> Prepared:
    """Cross-asset and Stockformer (all assets at once), TABL (one series per asset)."""
    cls = model_class(model_name)
    spec, horizon = options.spec, options.horizon
    config = dict(options.model)
    n_rows, n_assets = ohlcv.shape[:2]
    if cls.input_kind == "assets":
        config.setdefault("n_assets", n_assets)
        config.setdefault("n_features", spec.size)
    else:
        config.setdefault("input_dim", spec.size)
    recipe = _recipe(model_name, options)
    seed_everything(recipe.seed)  # the initial weights too: same data and seed, same model
    model = build(model_name, **config)
    if model.head in ("portfolio", "allocation"):
        recipe = replace(recipe, turnover_cost=options.cost / 2)  # one side of the round trip
    lookback = model.config.seq_len
    features = spec.batch(ohlcv)
    warm = first_complete_row(ohlcv) + spec.warmup
    rows = decision_rows(n_rows, lookback, horizon, first_valid=warm)
    rows = rows[sampled[rows]]
    train_rows, val_rows = _split(rows, options.val_fraction, horizon + lookback)
    normalizer = Normalizer.fit(features, train_rows, lookback)
    normalized = normalizer.apply(features)
    close = ohlcv[:, :, CLOSE]
    threshold = max(balanced_threshold(forward_log_returns(close, horizon)[train_rows]),
                    options.cost)  # fmt: skip
    target = targets_for(model.head, close, horizon, threshold, options.cost)
    scale = 1.0
    if model.head == "regression":
        scale = float(np.nanstd(target[train_rows])) or 1.0
        target = target / scale
    if model.head != "classification":
        target = np.nan_to_num(target).astype(np.float32)
    if cls.input_kind == "assets":
        train_set: Dataset = WindowDataset(normalized, train_rows, lookback, target)
        val_set: Dataset = WindowDataset(normalized, val_rows, lookback, target)
    else:  # one sample per (decision row, asset): a single-series model across symbols
        train_set = _per_asset(normalized, train_rows, lookback, target)
        val_set = _per_asset(normalized, val_rows, lookback, target)
    meta = {"horizon": horizon, "threshold": threshold, "target_scale": scale,
            "lookback": lookback, "rows": [int(train_rows[0]), int(val_rows[-1])],
            "validation": [int(val_rows[0]), int(val_rows[-1])]}  # fmt: skip
    return Prepared(model, train_set, val_set, normalizer, spec, meta, recipe)


def _recipe(model_name: str, options: TrainOptions) -> TrainConfig:
    return options.recipe or CHAPTER_RECIPES[model_name]


def _per_asset(features, rows, lookback, target) -> Dataset:
    parts = []
    for asset in range(features.shape[1]):
        valid = rows[target[rows, asset] >= 0] if target.dtype.kind == "i" else rows
        parts.append(WindowDataset(features[:, asset : asset + 1], valid, lookback,
                                   target[:, asset], squeeze_assets=True))  # fmt: skip
    return ConcatDataset(parts)


def prediction_scale(model: TradingModel, dataset: Dataset, samples: int = 512) -> float:
    """Typical size of the model's raw regression outputs on training data: a strategy
    divides by it to turn a return forecast into a position in [-1, 1]."""
    if model.head != "regression":
        return 1.0
    n = min(len(dataset), samples)
    picks = np.linspace(0, len(dataset) - 1, n).astype(int)
    batch = [dataset[int(i)][0] for i in picks]
    if isinstance(batch[0], dict):
        x: Any = {k: torch.stack([b[k] for b in batch]) for k in batch[0]}
    else:
        x = torch.stack(batch)
    model.eval()
    with torch.inference_mode():
        prediction = model(x).prediction
    scale = float(prediction.abs().mean())
    return scale if scale > 0 else 1.0


def horizon_names(count: int) -> tuple[str, ...]:
    """The chapter's short / medium / long heads, or ``h1, h2, ...`` for another count."""
    return ("short", "medium", "long") if count == 3 else tuple(f"h{i + 1}" for i in range(count))


def _finest_window_rows(bars: dict[str, ScaleBars], lengths: dict[str, int]) -> int:
    """Base rows the finest scale's window spans: the embargo's lookback part.

    The coarser windows reach further back (30 daily bars span a month of minutes), so their
    oldest bars may overlap the last training targets; embargoing those spans too would use up
    the whole validation period. They are slow context by design, and the finest window — the
    one that sees the bars a target is made of — is kept clear."""
    spans = []
    for s, b in bars.items():
        step = float(np.median(np.diff(b.visible_at))) if len(b.visible_at) > 1 else 1.0
        spans.append((step, lengths[s] * max(1, round(step))))
    return min(spans)[1]


def _prepare_scales(
    ohlcv: np.ndarray, scales: dict[str, ScaleBars], sampled: np.ndarray, options: TrainOptions
) -> Prepared:
    """The multi-scale model: one sample per (decision, asset), each scale's window ending at
    its last bar completed by the decision; targets at ``options.horizons`` bars ahead."""
    spec = options.spec
    config = {"n_features": spec.size, "horizons": horizon_names(len(options.horizons)),
              **options.model}  # fmt: skip
    recipe = _recipe("multiscale", options)
    seed_everything(recipe.seed)
    model = build("multiscale", **config)
    if len(model.config.horizons) != len(options.horizons):
        raise ValueError(
            f"multiscale has {len(model.config.horizons)} horizon heads but "
            f"{len(options.horizons)} horizons {list(options.horizons)} were given"
        )
    lengths = model.config.window_lengths()
    missing = [s for s in model.config.scales if s not in scales]
    if missing:
        raise ValueError(f"no bars given for scales {missing}")
    bars = {s: replace(scales[s], ohlcv=fill_gaps(scales[s].ohlcv)) for s in lengths}
    features = {s: spec.batch(b.ohlcv) for s, b in bars.items()}
    close = ohlcv[:, :, CLOSE]
    returns = np.stack([forward_log_returns(close, h) for h in options.horizons], axis=-1)
    n_rows = len(ohlcv)
    # decisions with a full, warm window on every scale and known targets
    warm = np.ones(n_rows, dtype=bool)
    for s, b in bars.items():
        visible = np.searchsorted(b.visible_at, np.arange(n_rows), side="right")
        first_full = first_complete_row(b.ohlcv) + spec.warmup + lengths[s]
        warm &= visible >= first_full
    known = np.isfinite(returns).all(axis=(1, 2))
    rows = np.flatnonzero(warm & known & sampled)
    embargo = max(options.horizons) + _finest_window_rows(bars, lengths)
    train_rows, val_rows = _split(rows, options.val_fraction, embargo)
    normalizers = {}
    normalized = {}
    for s, b in bars.items():
        ends = np.searchsorted(b.visible_at, train_rows, side="right") - 1
        used = np.unique(ends)
        normalizers[s] = Normalizer.fit(features[s], used, lengths[s])
        normalized[s] = normalizers[s].apply(features[s])
    scale = np.nanstd(returns[train_rows], axis=(0, 1))
    scale = np.where(scale > 0, scale, 1.0)

    def dataset(rows: np.ndarray) -> Dataset:
        parts = []
        for asset in range(ohlcv.shape[1]):
            targets = {"returns": (returns[rows, asset] / scale).astype(np.float32),
                       "direction": direction_labels(returns[rows, asset, 0], options.cost)
                       .astype(np.float32)}  # fmt: skip
            series = {s: (bars[s].visible_at, normalized[s][:, asset]) for s in bars}
            parts.append(MultiScaleDataset(series, lengths, rows, targets))
        return ConcatDataset(parts)

    train_set, val_set = dataset(train_rows), dataset(val_rows)
    combined = Normalizer(
        np.concatenate([normalizers[s].mean for s in model.config.scales]),
        np.concatenate([normalizers[s].std for s in model.config.scales]),
    )
    meta = {"horizons": list(options.horizons), "target_scale": scale.tolist(),
            "scales": list(model.config.scales),
            "rows": [int(train_rows[0]), int(val_rows[-1])],
            "validation": [int(val_rows[0]), int(val_rows[-1])]}  # fmt: skip
    return Prepared(model, train_set, val_set, combined, spec, meta, recipe)
