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

Each decision's inputs are computed from the bars of its own window only
(:meth:`FeatureSpec.windows`), so a replay block's decisions — one batched forward pass — are
bit for bit those the live daemon makes one bar at a time.
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

from bot.core.context import BatchContext, JobContext, StrategyJob
from bot.core.timeutil import interval_ms, iso, normalize_interval
from models.base import ModelOutput, TradingModel
from models.checkpoint import load_checkpoint, weights_digest
from models.datasets import Normalizer
from models.features import DEFAULT_FEATURES, FeatureSpec
from models.pipeline import TrainOptions, horizon_names
from models.registry import model_class
from models.training import CHAPTER_RECIPES, predict
from strategies.api import VectorStrategy
from strategies.baselines.rebalance import check_period, rebalance_rows
from strategies.model_fitting import fit_on_bars

log = logging.getLogger(__name__)

INFERENCE_CHUNK = 4  # samples per pass: bounds memory; on CPU, larger batches run no faster
PRECISIONS = {"float64": torch.float64, "float32": torch.float32}

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

    By default it computes in float64 and rounds its outputs to float32. In float32 a sample's
    result depends on how many others share its forward pass (matrix kernels block
    differently): a batched replay would differ from live decisions in the last bit and,
    through order rounding, now and then in a trade. In float64 that difference is ~1e-16,
    far inside one float32 step, so both paths round to the same outputs (a value would have
    to lie within 1e-16 of a float32 rounding boundary to differ: about one in 10^9). The
    price is about twice the inference time; ``precision="float32"`` buys the speed back and
    gives up bit-equality (outputs then agree to ~1e-7)."""

    model: TradingModel
    normalizer: Normalizer
    prediction_scale: float
    version: str

    dtype: torch.dtype = torch.float64

    @classmethod
    def of(
        cls,
        model: TradingModel,
        normalizer: Normalizer,
        scale: float,
        version: str,
        precision: str = "float64",
    ) -> Serving:
        dtype = PRECISIONS[precision]
        served = copy.deepcopy(model).to(dtype).eval()
        return cls(served, normalizer, scale, version, dtype)

    def run(self, inputs: Any) -> ModelOutput:
        """Forward pass on float32 inputs (tensor or dict of tensors), outputs as float32.

        At most :data:`INFERENCE_CHUNK` samples go through the model at once: a replay block
        holds thousands of decisions, and the attention maps of all of them at once would take
        tens of GB (cross-asset: ``[B, A, heads, T, T]``) while running no faster."""
        output = predict(self.model, inputs, INFERENCE_CHUNK, self.dtype)
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
    ``precision`` ("float64": replay and live bit-identical; "float32": faster, see
    :class:`Serving`).
    """

    model_name: ClassVar[str]
    default_model: ClassVar[dict[str, Any]] = {}
    default_features: ClassVar[tuple[str, ...]] = DEFAULT_FEATURES

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str = "1h",
        checkpoint: str | None = None,
        retrain_every: str | None = None,
        train_window: int = 4000,
        epochs: int | None = None,
        horizon: int = 1,
        rebalance: str = "bar",
        gross: float = 1.0,
        confidence: float = 0.4,
        model: dict[str, Any] | None = None,
        features: Sequence[str] | None = None,
        seed: int = 7,
        precision: str = "float64",
    ) -> None:
        super().__init__(symbols, interval)
        if precision not in PRECISIONS:
            raise ValueError(f"{self.name}: precision must be one of {list(PRECISIONS)}")
        self.precision = precision
        if (checkpoint is None) == (retrain_every is None):
            raise ValueError(f"{self.name}: give either checkpoint or retrain_every, not both")
        if not 0 < gross <= 10:
            raise ValueError(f"{self.name}: gross must be in (0, 10], got {gross}")
        self.rebalance = check_period(rebalance, self.interval)
        self.gross, self.confidence, self.horizon, self.seed = gross, confidence, horizon, seed
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
        self._serving: Serving | None = None
        self._trained_until: int | None = None  # a checkpoint's last training bar end
        if checkpoint is not None:  # without `features`, the checkpoint's own
            self._serving = self._load(Path(checkpoint), check_features=features is not None)
            self.model_config = self._serving.model.hyperparameters()
        self._declare_history()

    # -- what the engine must keep ---------------------------------------------------------
    def _config_value(self, key: str) -> Any:
        if key in self.model_config:
            return self.model_config[key]
        return model_class(self.model_name).config_class.__dataclass_fields__[key].default

    def _declare_history(self) -> None:
        seq_len = int(self._config_value("seq_len"))
        self.lookback = seq_len + self.spec.warmup
        if self.retrain_every is not None:
            needed = self.lookback + 2 * (seq_len + self.horizon) + 60
            if self.train_window < needed:
                raise ValueError(
                    f"{self.name}: train_window {self.train_window} bars is too short for "
                    f"seq_len {seq_len} and {self.spec.warmup} warm-up bars; use ≥ {needed}"
                )
            self.lookback = max(self.lookback, self.train_window)

    @property
    def serving(self) -> Serving | None:
        return self._serving

    @property
    def model_version(self) -> str | None:  # type: ignore[override]
        serving = self._serving
        return None if serving is None else serving.version

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
            features=self.spec.names, horizon=self.horizon, model=self.model_config, recipe=recipe
        )

    def retrain(self, ctx: JobContext) -> None:
        """Fit a fresh model on the last ``train_window`` bars, then swap it in at once."""
        window = ctx.window(self.train_window)
        if len(window) < self.train_window:
            return  # not enough history yet: keep deciding with what we have (or nothing)
        self._fit(window.starts, np.asarray(window.values, dtype=float), ctx.time)

    def _fit(self, starts: np.ndarray, values: np.ndarray, time: int) -> None:
        """Train on bars ``values[A, T, 5]`` known at ``time`` and serve the result."""
        seed = self.seed + zlib.crc32(str(time).encode()) % 10_000  # fresh yet reproducible
        fitted = fit_on_bars(
            self.model_name,
            starts,
            values.transpose(1, 0, 2),
            self.interval,
            self.train_options(seed),
            rebalance=self.rebalance,
        )
        scale = float(fitted.metrics.get("prediction_scale", 1.0))
        version = f"{self.model_name}-{weights_digest(fitted.model)}"
        self._serving = Serving.of(fitted.model, fitted.normalizer, scale, version, self.precision)

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
        if self._serving is None and self.retrain_every is not None:
            self._first_fit(ctx, due)
        if self._trained_until is not None and len(ctx) and ctx.times[0] < self._trained_until:
            log.warning(
                "%s: deciding at %s with a model trained on bars up to %s: these decisions are "
                "in-sample (start the backtest after the training window)",
                self.name, iso(int(ctx.times[0])), iso(self._trained_until),
            )  # fmt: skip
            self._trained_until = None  # once per run is enough
        return self._serving

    def on_bars(self, ctx: BatchContext) -> np.ndarray | None:
        due = rebalance_rows(ctx, self.rebalance, self.interval)
        serving = self._ready(ctx, due)
        if serving is None:
            return None
        seq_len = serving.model.config.seq_len
        history = ctx.history(seq_len + self.spec.warmup)
        out = np.full((len(ctx), len(self.symbols)), np.nan)
        due &= history.ends >= seq_len + self.spec.warmup - 1
        rows = np.flatnonzero(due)
        if not len(rows):
            return out
        ohlcv = np.asarray(history.values, dtype=float).transpose(1, 0, 2)
        prediction = self._predict(serving, self.model_inputs(serving, ohlcv, history.ends[rows]))
        out[rows] = to_weights(
            serving.model.head, prediction, self.gross, self.confidence, serving.prediction_scale
        )
        return out

    def model_inputs(self, serving: Serving, ohlcv: np.ndarray, ends: np.ndarray) -> torch.Tensor:
        """The model's normalised input for decisions at rows ``ends`` of ``ohlcv[T, A, 5]``:
        ``[B, A, L, F]``, or ``[B·A, L, F]`` for single-series models (assets folded into the
        batch). Also what ``bot explain`` feeds, so explanations show the served inputs."""
        features = self.spec.windows(ohlcv, ends, serving.model.config.seq_len)  # [B, L, A, F]
        windows = torch.from_numpy(serving.normalizer.apply(features)).permute(0, 2, 1, 3)
        if serving.model.input_kind == "assets":
            return windows
        b, a, length, f = windows.shape
        return windows.reshape(b * a, length, f)

    def _predict(self, serving: Serving, inputs: torch.Tensor) -> np.ndarray:
        """One batched forward pass over all decision rows → ``[B, A(, 3)]``."""
        prediction = serving.run(inputs).prediction.double().numpy()
        if serving.model.input_kind == "assets":
            return prediction
        return prediction.reshape(-1, len(self.symbols), *prediction.shape[1:])


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
        warm = self.spec.warmup
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
        self, serving: Serving, bars: dict[str, tuple[np.ndarray, np.ndarray]]
    ) -> dict[str, torch.Tensor]:
        """The model's normalised input ``{scale: [B·A, L_scale, F]}`` for decisions whose
        windows end at rows ``ends`` of each scale's bars (``bars[scale] = (ohlcv[T, A, 5],
        ends)``); also what ``bot explain`` feeds."""
        width = self.spec.size
        inputs = {}
        for k, (scale, length) in enumerate(serving.model.config.window_lengths().items()):
            ohlcv, ends = bars[scale]
            features = self.spec.windows(ohlcv, ends, length)  # [B, L, A, F]
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
        warm = self.spec.warmup
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
            scale: (np.asarray(h.values, dtype=float).transpose(1, 0, 2), h.ends[rows])
            for scale, h in histories.items()
        }
        inputs = self.scale_inputs(serving, bars)
        output = serving.run(inputs)
        b, a = len(rows), len(self.symbols)
        if self.signal == "direction":
            logits = output.extras["direction"].double().numpy().reshape(b, a)
            out[rows] = to_weights("direction", logits, self.gross, self.confidence)
        else:
            column = list(config.horizons).index(self.signal)
            forecast = output.prediction[:, column].double().numpy().reshape(b, a)
            out[rows] = to_weights(
                "regression", forecast, self.gross, self.confidence, serving.prediction_scale
            )
        return out


def strategy_for_model(model_name: str) -> type[ModelStrategy]:
    """The strategy that serves ``model_name`` (its defaults are what ``bot train`` starts from,
    so a trained checkpoint loads into it unchanged)."""
    for cls in (CrossAssetStrategy, StockformerStrategy, TABLStrategy, MultiScaleStrategy):
        if cls.model_name == model_name:
            return cls
    raise KeyError(f"no strategy serves model {model_name!r}")
