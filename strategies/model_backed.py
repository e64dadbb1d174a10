"""Strategies that decide with the seed chapters' models.

A model-backed strategy turns a model's outputs into target weights:

* ``portfolio`` (softmax over assets): the weights themselves, long only, scaled to ``gross``;
* ``allocation`` (tanh positions in [-1, 1]): scaled down to the gross cap when they exceed it;
* ``regression`` (return forecasts): divided by their typical size on the training data,
  clipped to [-1, 1], then scaled down to the gross cap;
* ``classification`` (down / stationary / up) and ``direction`` (p(up)): the signed
  confidence (p(up) − p(down), or 2·p(up) − 1) where the more likely side reaches
  ``confidence``, else flat; scaled down to the gross cap.

The model comes from a checkpoint (``bot train``), or is **retrained walk-forward**: a first
model is fitted on the ``train_window`` bars before the first decision, then every
``retrain_every`` (a schedule such as ``"every 720h"``) a job on the engine clock fits a fresh
one on the last ``train_window`` bars closed by its fire time and swaps it in with one
assignment; decisions from the next bar until the next retrain use it, and each records its
model version. Being an engine job, it fires at
the same instants in a backtest as in the paper daemon (where it holds the engine while it
trains: decisions wait, none is skipped).

Each decision's features are computed from an anchor fixed by bar times
(:meth:`FeatureSpec.windows`; live, carried forward a bar at a time by
:class:`~models.features.DecisionFeatures`), and the model sees one decision per forward pass
(:class:`Serving`), so a replay block's decisions are bit for bit those the live daemon makes
one bar at a time, in float32 as in float64.
"""

from __future__ import annotations

import copy
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from bot.core.context import BatchContext, JobContext, StrategyHalt, StrategyJob
from bot.core.events import CLOSE
from bot.core.timeutil import interval_ms, iso, normalize_interval
from models.base import ModelOutput, TradingModel
from models.checkpoint import load_checkpoint, weights_digest
from models.datasets import Normalizer, forward_log_returns
from models.features import DEFAULT_FEATURES, DecisionFeatures, FeatureSpec
from models.pipeline import TrainOptions, horizon_names
from models.registry import model_class
from models.training import CHAPTER_RECIPES, predict
from strategies.api import VectorStrategy
from strategies.baselines.rebalance import check_period, rebalance_rows
from strategies.decision_layer import AUTO, DecisionLayer, DecisionRules
from strategies.model_fitting import decision_mask, fit_on_bars, scale_bars
from strategies.model_health import HealthConfig, HealthMonitor
from strategies.selection import choose, layer_rules, selection_grid

log = logging.getLogger(__name__)

#: Samples per forward pass unless the strategy says one decision holds more (see
#: :meth:`Serving.run`): one decision of a cross-asset model.
INFERENCE_CHUNK = 1
PRECISIONS = {"float32": torch.float32, "float64": torch.float64}
DEFAULT_PRECISION = "float32"

#: Features a strategy cannot compute: the engine's bar buffer holds no funding rates.
UNAVAILABLE_FEATURES = ("funding_rate",)


def to_weights(
    head: str, prediction: np.ndarray, gross: float, confidence: float, scale: float = 1.0
) -> np.ndarray:
    """Model outputs ``[B, A(, 3)]`` → target weights ``[B, A]`` (see the module docstring)."""
    if head == "portfolio":
        return prediction * gross
    if head == "allocation":
        signal = prediction
    elif head == "regression":
        signal = np.clip(prediction / scale, -1.0, 1.0)
    elif head == "classification":
        p = np.exp(prediction - prediction.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        down, up = p[..., 0], p[..., 2]
        signal = np.where(np.maximum(down, up) >= confidence, up - down, 0.0)
    elif head == "direction":
        up = 1.0 / (1.0 + np.exp(-prediction))
        signal = np.where(np.maximum(up, 1 - up) >= confidence, 2 * up - 1, 0.0)
    else:
        raise ValueError(f"unknown head {head!r}")
    total = np.abs(signal).sum(axis=-1, keepdims=True)
    return signal * gross / np.maximum(total, 1.0)


@dataclass(frozen=True)
class Serving:
    """The model a strategy decides with, swapped as one object (never half-updated).

    It computes in float32 by default. A float32 result depends on the shape of the forward
    pass that computes it (matrix kernels block and sum differently for another batch size), so
    a replay block never puts more samples through one pass than one live decision does (see
    :meth:`run`): its decisions are then the daemon's bit for bit, the same kernels on the same
    inputs pass for pass (at the same torch thread count: ``[models] threads``).
    ``precision="float64"`` computes in float64, about twice the time, and rounds the outputs
    to float32."""

    model: TradingModel
    normalizer: Normalizer
    prediction_scale: float
    version: str

    dtype: torch.dtype = PRECISIONS[DEFAULT_PRECISION]

    @classmethod
    def of(
        cls,
        model: TradingModel,
        normalizer: Normalizer,
        scale: float,
        version: str,
        precision: str = DEFAULT_PRECISION,
    ) -> Serving:
        dtype = PRECISIONS[precision]
        served = copy.deepcopy(model).to(dtype).eval()
        return cls(served, normalizer, scale, version, dtype)

    def run(self, inputs: Any, per_pass: int = INFERENCE_CHUNK) -> ModelOutput:
        """Forward passes on float32 inputs (tensor or dict of tensors, batch first), outputs
        as float32.

        ``per_pass`` samples go through the model at a time: what one live decision puts
        through it (one sample of a cross-asset model; one per symbol of a single-series one,
        whose strategy says so), so that a replay block repeats the live passes exactly. It
        also bounds memory: the attention maps of a block's thousands of decisions at once
        would take tens of GB (cross-asset: ``[B, A, heads, T, T]``)."""
        output = predict(self.model, inputs, per_pass, self.dtype)
        return ModelOutput(
            output.prediction.float(), extras={k: v.float() for k, v in output.extras.items()}
        )


class ModelStrategy(VectorStrategy):
    """Base of the model-backed strategies (one subclass per model).

    Parameters: ``checkpoint`` (a file from ``bot train``) or ``retrain_every`` (walk-forward,
    with ``train_window`` bars, ``epochs`` per fit, ``seed``); ``rebalance`` ("bar" or a
    period such as "1d"); ``gross`` (sum of |weights|); ``confidence`` (classification and
    direction heads); ``horizon`` (bars ahead the retrained targets look); ``model``
    (hyperparameters over the chapter's defaults); ``features`` (names, see models.features;
    with a checkpoint, default: the ones it was trained on, and if given they must match);
    ``precision`` ("float32", or "float64" at twice the cost; replay and live decisions are
    bit-identical in both, see :class:`Serving`); ``health`` (the model-health checks that
    halt the strategy on feature drift or a collapsed model: a table of
    :class:`~strategies.model_health.HealthConfig` settings, or false to turn them off).
    """

    model_name: ClassVar[str]
    default_model: ClassVar[dict[str, Any]] = {}
    default_features: ClassVar[tuple[str, ...]] = DEFAULT_FEATURES
    _monitored: tuple[Serving, ...] | None = None  # the models _screen's monitors watch
    _monitors: tuple[HealthMonitor, ...] = ()

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str = "1h",
        checkpoint: str | None = None,
        retrain_every: str | None = None,
        train_window: int = 4000,
        epochs: int | None = None,
        horizon: int | None = None,
        rebalance: str = "bar",
        gross: float = 1.0,
        confidence: float = 0.4,
        model: dict[str, Any] | None = None,
        features: Sequence[str] | None = None,
        seed: int = 7,
        precision: str = DEFAULT_PRECISION,
        ensemble: int = 1,
        band: float | str = 0.0,
        band_scale: float = 1.0,
        round_trip_bp: float = 13.0,
        smoothing: int = 1,
        min_hold: str | None = None,
        market_neutral: bool = False,
        turnover_budget: float | None = None,
        select: dict[str, Sequence[Any]] | None = None,
        health: dict[str, Any] | bool | None = None,
    ) -> None:
        super().__init__(symbols, interval)
        self.health = HealthConfig.of(health)  # model-health checks: see _screen
        if precision not in PRECISIONS:
            raise ValueError(f"{self.name}: precision must be one of {list(PRECISIONS)}")
        self.precision = precision
        if (checkpoint is None) == (retrain_every is None):
            raise ValueError(f"{self.name}: give either checkpoint or retrain_every, not both")
        if not 0 < gross <= 10:
            raise ValueError(f"{self.name}: gross must be in (0, 10], got {gross}")
        self.rebalance = check_period(rebalance, self.interval)
        self.gross, self.confidence, self.seed = gross, confidence, seed
        if int(ensemble) != ensemble or not 1 <= ensemble <= 32:
            raise ValueError(f"{self.name}: ensemble must be a whole number of models in [1, 32]")
        self.ensemble = int(ensemble)
        self.rules = DecisionRules(
            band=band, band_scale=band_scale, round_trip_bp=round_trip_bp, smoothing=smoothing,
            min_hold=min_hold, market_neutral=market_neutral, gross=gross,
            turnover_budget=turnover_budget,
        )  # fmt: skip
        self.layer = DecisionLayer(self.rules, len(self.symbols))
        self.horizon = self._holding_bars() if horizon is None else int(horizon)
        self.grid = selection_grid(select, self.rules)
        if retrain_every is None and (self.grid or band == AUTO):
            raise ValueError(
                f"{self.name}: `select` and band='auto' are tuned at each walk-forward fit; "
                "with a checkpoint give the band as a weight"
            )
        self.retrain_every = retrain_every
        self.train_window, self.epochs = train_window, epochs
        self.model_config = {**self.default_model, **(model or {})}
        self.spec = FeatureSpec(tuple(features or self.default_features))
        blocked = sorted(set(self.spec.names) & set(UNAVAILABLE_FEATURES))
        if blocked:
            raise ValueError(
                f"{self.name}: feature {blocked[0]!r} is not available to strategies (the bar "
                "buffer holds no funding rates); remove it from `features`"
            )
        self._members: tuple[Serving, ...] = ()
        self._version: str | None = None
        self._trained_until: int | None = None  # a checkpoint's last training bar end
        self._windows: dict[tuple[str, int], DecisionFeatures] = {}  # by (interval, length)
        if checkpoint is not None:  # without `features`, the checkpoint's own
            loaded = self._load(Path(checkpoint), check_features=features is not None)
            self._serve((loaded,), loaded.version)
            self.model_config = loaded.model.hyperparameters()
        self._declare_history()

    # -- what the engine must keep ---------------------------------------------------------
    def _config_value(self, key: str) -> Any:
        if key in self.model_config:
            return self.model_config[key]
        return model_class(self.model_name).config_class.__dataclass_fields__[key].default

    def _declare_history(self) -> None:
        seq_len = int(self._config_value("seq_len"))
        self.lookback = seq_len + self.spec.lead
        if self.retrain_every is not None:
            needed = self.lookback + 2 * (seq_len + self.horizon) + 60
            if self.train_window < needed:
                raise ValueError(
                    f"{self.name}: train_window {self.train_window} bars is too short for "
                    f"seq_len {seq_len} and {self.spec.lead} bars of feature warm-up; use ≥ "
                    f"{needed}"
                )
            self.lookback = max(self.lookback, self.train_window)

    def _holding_bars(self) -> int:
        """Bars a position is held: the rebalance period (and at least ``min_hold``), the
        horizon walk-forward targets look ahead by default."""
        bar = interval_ms(self.interval)
        period = bar if self.rebalance == "bar" else interval_ms(self.rebalance)
        return max(1, max(period, self.rules.min_hold_ms) // bar)

    @property
    def serving(self) -> Serving | None:
        """The model deciding (the first member of an ensemble)."""
        return self._members[0] if self._members else None

    @property
    def members(self) -> tuple[Serving, ...]:
        """Every model whose signals are averaged (one unless ``ensemble`` > 1)."""
        return self._members

    @property
    def model_version(self) -> str | None:  # type: ignore[override]
        return self._version

    def _serve(self, members: tuple[Serving, ...], version: str) -> None:
        """Swap the models in as one assignment pair (read together only by the engine thread)."""
        self._members, self._version = members, version

    # -- the model ------------------------------------------------------------------------
    def _load(self, path: Path, check_features: bool) -> Serving:
        checkpoint = load_checkpoint(path, expected=self.spec if check_features else None)
        self.spec = checkpoint.feature_spec
        if checkpoint.model.name != self.model_name:
            raise ValueError(f"{path}: a {checkpoint.model.name} model, not {self.model_name}")
        trained_on = checkpoint.meta.get("symbols")
        if model_class(self.model_name).input_kind == "assets" and trained_on is not None \
                and list(trained_on) != list(self.symbols):  # fmt: skip
            raise ValueError(
                f"{path}: trained on symbols {trained_on}, strategy has {list(self.symbols)} "
                "(this model reads the assets in order)"
            )
        trained_interval = checkpoint.meta.get("interval")
        if trained_interval is not None and trained_interval != self.interval:
            raise ValueError(f"{path}: trained on {trained_interval} bars, not {self.interval}")
        scale = float(checkpoint.meta.get("metrics", {}).get("prediction_scale", 1.0))
        self._trained_until = checkpoint.meta.get("data_window", {}).get("end")
        return Serving.of(
            checkpoint.model, checkpoint.normalizer, scale, checkpoint.version, self.precision
        )

    def jobs(self) -> list[StrategyJob]:
        if self.retrain_every is None:
            return []
        trigger = self.retrain_every
        if not trigger.startswith(("every ", "cron ")):
            trigger = f"every {trigger}"  # "720h" reads as "every 720h"
        return [StrategyJob("retrain", trigger, self.retrain)]

    def train_options(self, seed: int) -> TrainOptions:
        recipe = CHAPTER_RECIPES[self.model_name].with_overrides(epochs=self.epochs, seed=seed)
        return TrainOptions(
            features=self.spec.names, horizon=self.horizon, model=self.model_config,
            recipe=recipe, cost=self.rules.round_trip,
        )  # fmt: skip

    def retrain(self, ctx: JobContext) -> None:
        """Fit a fresh model on the last ``train_window`` bars, then swap it in at once."""
        window = ctx.window(self.train_window)
        if len(window) < self.train_window:
            return  # not enough history yet: keep deciding with what we have (or nothing)
        self._fit(window.starts, np.asarray(window.values, dtype=float), ctx.time)

    def _fit(self, starts: np.ndarray, values: np.ndarray, time: int) -> None:
        """Train on bars ``values[A, T, 5]`` known at ``time`` (``ensemble`` models, one seed
        each), tune the decision layer on the fit's validation slice, and serve the result."""
        seed = self.seed + zlib.crc32(str(time).encode()) % 10_000  # fresh yet reproducible
        members = []
        for k in range(self.ensemble):
            fitted = fit_on_bars(
                self.model_name,
                starts,
                values.transpose(1, 0, 2),
                self.interval,
                self.train_options(seed + k),
                rebalance=self.rebalance,
            )
            scale = float(fitted.metrics.get("prediction_scale", 1.0))
            version = f"{self.model_name}-{weights_digest(fitted.model)}"
            members.append(
                Serving.of(fitted.model, fitted.normalizer, scale, version, self.precision)
            )
        version = members[0].version
        if len(members) > 1:  # the members' digests, in seed order, name the ensemble
            digest = zlib.crc32(" ".join(m.version for m in members).encode())
            version = f"{self.model_name}-ens{len(members)}-{digest:08x}"
        choice = self._tune(tuple(members), starts, values, fitted.target["validation"])
        self._serve(tuple(members), f"{version}+{choice}" if choice else version)

    def _tune(
        self, members: tuple[Serving, ...], starts: np.ndarray, values: np.ndarray,
        validation: Sequence[int],
    ) -> str:  # fmt: skip
        """Calibrate an automatic band and choose among ``select``'s settings on the
        validation decisions of this fit's window (bars ``values[A, T, 5]``); returns the
        choice's label for the model version ("" when nothing was chosen)."""
        if not self.grid and self.rules.band != AUTO:
            return ""
        close = values[:, :, CLOSE].T  # [T, A]
        rows = np.flatnonzero(decision_mask(starts, self.interval, self.rebalance))
        rows = rows[(rows >= validation[0]) & (rows <= validation[1])]
        if len(rows) < 3:
            return ""
        predictions = [self._window_predictions(m, starts, values, rows) for m in members]
        typical_move = float(np.nanmean(np.abs(forward_log_returns(close, self.horizon))))
        if not self.grid:
            raw = self._signal(members, predictions, self.confidence)
            self.layer.calibrate(float(np.abs(raw).mean()), typical_move)
            return ""
        asset_returns = np.nan_to_num(close[rows[1:]] / close[rows[:-1]] - 1.0)
        choice = choose(
            self.grid,
            self.rules,
            lambda c: self._signal(members, predictions, c.get("confidence", self.confidence))[:-1],
            starts[rows[:-1]],
            asset_returns,
            typical_move,
        )
        self.confidence = choice.settings.get("confidence", self.confidence)
        self.layer.retune(layer_rules(self.rules, choice.settings), choice.band)
        log.info("%s: refit chose %s (band %.4f) on its validation slice", self.name,
                 choice.label(), choice.band)  # fmt: skip
        return choice.label()

    def _window_predictions(
        self, serving: Serving, starts: np.ndarray, values: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        """The model's outputs for decisions at ``rows`` of a training window's bars."""
        ohlcv = values.transpose(1, 0, 2)
        return self._predict(serving, self.model_inputs(serving, ohlcv, starts, rows))

    def _signal(
        self, members: Sequence[Serving], predictions: Sequence[np.ndarray], confidence: float
    ) -> np.ndarray:
        """Raw target weights: the mean of each member's weights from its outputs."""
        weights = [
            to_weights(self._head(m), p, self.gross, confidence, m.prediction_scale)
            for m, p in zip(members, predictions, strict=True)
        ]
        return weights[0] if len(weights) == 1 else np.mean(weights, axis=0)

    def _head(self, serving: Serving) -> str:
        """How the served outputs become weights (see :func:`to_weights`)."""
        return serving.model.head

    def _first_fit(self, ctx: BatchContext, due: np.ndarray) -> None:
        """Walk-forward: train before the first decision on the bars known at it (the
        schedule then refits every period). Earlier rows of the block are not decided: the
        model has seen bars after them."""
        history = ctx.history(self.train_window)
        ready = np.flatnonzero(due & (history.ends >= self.train_window - 1))
        due[: ready[0] if len(ready) else len(due)] = False
        if not len(ready):
            return
        end = int(history.ends[ready[0]])
        values = np.asarray(history.values[:, end - self.train_window + 1 : end + 1], dtype=float)
        starts = history.starts[end - self.train_window + 1 : end + 1]
        self._fit(starts, values, int(ctx.times[ready[0]]))

    # -- deciding ------------------------------------------------------------------------
    def _ready(self, ctx: BatchContext, due: np.ndarray) -> Serving | None:
        """The model to decide with, fitting the first one when walking forward (``due`` then
        loses the rows before that fit)."""
        if not self._members and self.retrain_every is not None:
            self._first_fit(ctx, due)
        if self._trained_until is not None and len(ctx) and ctx.times[0] < self._trained_until:
            log.warning(
                "%s: deciding at %s with a model trained on bars up to %s: these decisions are "
                "in-sample (start the backtest after the training window)",
                self.name, iso(int(ctx.times[0])), iso(self._trained_until),
            )  # fmt: skip
            self._trained_until = None  # once per run is enough
        return self.serving

    def on_bars(self, ctx: BatchContext) -> np.ndarray | None:
        due = rebalance_rows(ctx, self.rebalance, self.interval)
        serving = self._ready(ctx, due)
        if serving is None:
            return None
        seq_len = serving.model.config.seq_len
        history = ctx.history(seq_len + self.spec.lead)
        out = np.full((len(ctx), len(self.symbols)), np.nan)
        due &= history.ends >= seq_len + self.spec.lead - 1
        rows = np.flatnonzero(due)
        if not len(rows):
            return out
        ohlcv = np.asarray(history.values, dtype=float).transpose(1, 0, 2)
        ends = history.ends[rows]
        members = self._members
        starts = history.starts
        predictions = [
            self._predict(m, self.model_inputs(m, ohlcv, starts, ends), ctx.times[rows])
            for m in members
        ]
        out[rows] = self._signal(members, predictions, self.confidence)
        return self.layer.apply(ctx.times, out)

    def decision_features(self, interval: str, length: int) -> DecisionFeatures:
        """The features of this strategy's windows of ``length`` bars of ``interval``: one
        object per window shape, kept from decision to decision so that the live path carries
        its feature recursions forward a bar at a time instead of recomputing them."""
        key = (interval, length)
        if key not in self._windows:
            self._windows[key] = DecisionFeatures(self.spec, length, interval_ms(interval))
        return self._windows[key]

    def model_inputs(
        self, serving: Serving, ohlcv: np.ndarray, starts: np.ndarray, ends: np.ndarray
    ) -> torch.Tensor:
        """The model's normalised input for decisions at rows ``ends`` of ``ohlcv[T, A, 5]``
        (bar open times ``starts``): ``[B, A, L, F]``, or ``[B·A, L, F]`` for single-series
        models (assets folded into the batch). Also what ``bot explain`` feeds, so
        explanations show the served inputs."""
        source = self.decision_features(self.interval, serving.model.config.seq_len)
        features = source.windows(ohlcv, starts, ends)  # [B, L, A, F]
        windows = torch.from_numpy(serving.normalizer.apply(features)).permute(0, 2, 1, 3)
        if serving.model.input_kind == "assets":
            return windows
        b, a, length, f = windows.shape
        return windows.reshape(b * a, length, f)

    def decision_samples(self, serving: Serving) -> int:
        """Samples one decision puts through the model: one for a cross-asset model, one per
        symbol for a single-series one (the forward pass :meth:`Serving.run` repeats)."""
        return 1 if serving.model.input_kind == "assets" else len(self.symbols)

    def _predict(
        self, serving: Serving, inputs: torch.Tensor, times: np.ndarray | None = None
    ) -> np.ndarray:
        """The model's outputs for all decision rows, a decision per pass → ``[B, A(, 3)]``;
        screened by the model-health checks when they are the decisions at ``times``."""
        prediction = serving.run(inputs, self.decision_samples(serving)).prediction
        prediction = prediction.double().numpy()
        if serving.model.input_kind != "assets":
            prediction = prediction.reshape(-1, len(self.symbols), *prediction.shape[1:])
        return prediction if times is None else self._screen(serving, inputs, prediction, times)

    def _screen(
        self, serving: Serving, inputs: Any, outputs: np.ndarray, times: np.ndarray
    ) -> np.ndarray:
        """Model health (:mod:`strategies.model_health`): feed the decisions at ``times`` —
        the served model's inputs (their latest bar) and ``outputs`` — to its checks, in order.
        At the first that fails, ask the engine to flatten and halt the strategy there
        (``self.halt``); outputs from it on are never traded, and are zeroed.

        Each model has its own checks, started afresh when a refit swaps the models in: the
        state follows the decisions one by one, so a replay block and a live run agree."""
        if not self.health.enabled or not len(times):
            return outputs
        if self._monitored is not self._members:
            self._monitored = self._members
            self._monitors = tuple(HealthMonitor(self.health) for _ in self._members)
        pairs = zip(self._members, self._monitors, strict=True)
        monitor = next(c for m, c in pairs if m is serving)
        b, a = len(times), len(self.symbols)
        parts = inputs if isinstance(inputs, dict) else {"": inputs}
        latest = np.concatenate(
            [x[..., -1, :].double().numpy().reshape(b, a, -1) for x in parts.values()], axis=-1
        )
        names = [f"{k}:{n}" if k else n for k in parts for n in self.spec.names]
        found = monitor.screen(latest, outputs.reshape(b, -1), self.symbols, names)
        if found is None:
            return outputs
        row, finding = found
        if self.halt is None or times[row] < self.halt.time:  # the earliest of an ensemble's
            detail = {**finding.detail, "model_version": self.model_version}
            self.halt = StrategyHalt(int(times[row]), "model_health", finding.reason, detail)
        outputs = outputs.copy()
        outputs[row:] = 0.0
        return outputs


class CrossAssetStrategy(ModelStrategy):
    """The cross-asset attention network over all symbols at once (portfolio head)."""

    name = "cross_asset"
    model_name = "cross_asset"


class StockformerStrategy(ModelStrategy):
    """Stockformer over all symbols at once (tanh allocation head)."""

    name = "stockformer"
    model_name = "stockformer"


class TABLStrategy(ModelStrategy):
    """TABL per symbol (3-class), attending straight over the bars (no bilinear layers before
    the TABL layer) so its temporal attention reads as "which bars mattered"."""

    name = "tabl"
    model_name = "tabl"
    default_model: ClassVar[dict[str, Any]] = {"hidden": ()}


#: Finite-window features (no EMA): a daily scale needs only weeks of history to be exact.
MULTISCALE_FEATURES = (
    "log_return", "intraday_return", "range", "close_position", "relative_volume",
    "volatility", "momentum_5", "momentum_10", "ma_ratio_5", "ma_ratio_10", "ma_ratio_20",
)  # fmt: skip


class MultiScaleStrategy(ModelStrategy):
    """The multi-scale model per symbol: each scale's window (aggregated from the base
    interval by the engine, closed bars only) → the direction head (the chapter's signal:
    trade when |2·p(up) − 1| clears ``confidence``), or a horizon's forecast with
    ``signal = "short" | "medium" | "long"``."""

    name = "multiscale"
    model_name = "multiscale"
    default_features = MULTISCALE_FEATURES
    default_model: ClassVar[dict[str, Any]] = {
        "scales": ("1h", "4h", "1d"),
        "seq_lens": (48, 42, 30),
        "n_layers": (2, 2, 2),
        "n_heads": (4, 4, 4),
        "d_model": 64,
        "cross_heads": 4,
    }

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str = "1h",
        horizons: Sequence[int] = (1, 4, 24),
        signal: str = "direction",
        confidence: float = 0.1,
        **kwargs: Any,
    ) -> None:
        self.horizons = tuple(int(h) for h in horizons)
        self.signal = signal
        super().__init__(symbols, interval, confidence=confidence, **kwargs)
        self.model_config.setdefault("horizons", horizon_names(len(self.horizons)))
        names = tuple(self._config_value("horizons"))
        if signal != "direction" and signal not in names:
            raise ValueError(f"{self.name}: signal must be 'direction' or one of {list(names)}")

    def _declare_history(self) -> None:
        scales = [normalize_interval(s) for s in self._config_value("scales")]
        lengths = [int(n) for n in self._config_value("seq_lens")]
        base = interval_ms(self.interval)
        warm = self.spec.lead
        extra: dict[str, int] = {}
        self.lookback = 1
        span_ms = 0
        for scale, length in zip(scales, lengths, strict=True):
            if interval_ms(scale) % base:
                raise ValueError(f"{self.name}: scale {scale} is not a multiple of {self.interval}")
            if scale == self.interval:
                self.lookback = max(self.lookback, length + warm)
            else:
                extra[scale] = length + warm
            span_ms = max(span_ms, (length + warm + 1) * interval_ms(scale))
        self.extra_intervals = extra
        self.warmup = span_ms // base  # base bars before every scale's window is full
        if self.retrain_every is not None:
            if self.train_window < 2 * self.warmup:
                raise ValueError(
                    f"{self.name}: train_window {self.train_window} bars is too short: the "
                    f"scales' windows alone take {self.warmup} bars; use ≥ {2 * self.warmup}"
                )
            self.lookback = max(self.lookback, self.train_window)

    def train_options(self, seed: int) -> TrainOptions:
        options = super().train_options(seed)
        return TrainOptions(**{**options.__dict__, "horizons": self.horizons})

    def scale_inputs(
        self, serving: Serving, bars: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> dict[str, torch.Tensor]:
        """The model's normalised input ``{scale: [B·A, L_scale, F]}`` for decisions whose
        windows end at rows ``ends`` of each scale's bars (``bars[scale] = (ohlcv[T, A, 5],
        starts[T], ends)``); also what ``bot explain`` feeds."""
        width = self.spec.size
        inputs = {}
        for k, (scale, length) in enumerate(serving.model.config.window_lengths().items()):
            ohlcv, starts, ends = bars[scale]
            source = self.decision_features(normalize_interval(scale), length)
            features = source.windows(ohlcv, starts, ends)  # [B, L, A, F]
            stats = Normalizer(
                serving.normalizer.mean[k * width : (k + 1) * width],
                serving.normalizer.std[k * width : (k + 1) * width],
            )
            x = torch.from_numpy(stats.apply(features)).permute(0, 2, 1, 3)  # [B, A, L, F]
            inputs[scale] = x.reshape(-1, length, width)
        return inputs

    def on_bars(self, ctx: BatchContext) -> np.ndarray | None:
        due = rebalance_rows(ctx, self.rebalance, self.interval)
        serving = self._ready(ctx, due)
        if serving is None:
            return None
        config = serving.model.config
        warm = self.spec.lead
        histories = {}
        for scale, length in config.window_lengths().items():
            interval = None if normalize_interval(scale) == self.interval else scale
            histories[scale] = ctx.history(length + warm, interval)
            due &= histories[scale].ends >= length + warm - 1
        out = np.full((len(ctx), len(self.symbols)), np.nan)
        rows = np.flatnonzero(due)
        if not len(rows):
            return out
        bars = {
            scale: (np.asarray(h.values, dtype=float).transpose(1, 0, 2), h.starts, h.ends[rows])
            for scale, h in histories.items()
        }
        members = self._members
        times = ctx.times[rows]
        predictions = [self._scale_predictions(m, bars, len(rows), times) for m in members]
        out[rows] = self._signal(members, predictions, self.confidence)
        return self.layer.apply(ctx.times, out)

    def _scale_predictions(
        self,
        serving: Serving,
        bars: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
        count: int,
        times: np.ndarray | None = None,
    ) -> np.ndarray:
        """The served output ``[B, A]``: the direction logit, or the chosen horizon's
        forecast (``signal``); screened by the model-health checks when they are the decisions
        at ``times``."""
        inputs = self.scale_inputs(serving, bars)
        output = serving.run(inputs, self.decision_samples(serving))
        if self.signal == "direction":
            served = output.extras["direction"].double().numpy()
        else:
            column = list(serving.model.config.horizons).index(self.signal)
            served = output.prediction[:, column].double().numpy()
        served = served.reshape(count, len(self.symbols))
        return served if times is None else self._screen(serving, inputs, served, times)

    def _head(self, serving: Serving) -> str:
        """The direction logit, or a horizon's return forecast (``signal``)."""
        return "direction" if self.signal == "direction" else "regression"

    def _window_predictions(
        self, serving: Serving, starts: np.ndarray, values: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        ohlcv = values.transpose(1, 0, 2)
        warm = self.spec.lead
        bars = {}
        for scale, length in serving.model.config.window_lengths().items():
            scaled = scale_bars(starts, ohlcv, self.interval, scale)
            ends = np.searchsorted(scaled.visible_at, rows, side="right") - 1
            if (ends < length + warm - 1).any():
                raise ValueError(f"{self.name}: validation before the {scale} window fills")
            bars[scale] = (scaled.ohlcv, scaled.starts, ends)
        return self._scale_predictions(serving, bars, len(rows))


def strategy_for_model(model_name: str) -> type[ModelStrategy]:
    """The strategy that serves ``model_name`` (its defaults are what ``bot train`` starts from,
    so a trained checkpoint loads into it unchanged)."""
    for cls in (CrossAssetStrategy, StockformerStrategy, TABLStrategy, MultiScaleStrategy):
        if cls.model_name == model_name:
            return cls
    raise KeyError(f"no strategy serves model {model_name!r}")
