"""``bot train <model>``: fit one of the seed models on history and register the checkpoint.

The bars are loaded exactly as ``bot backtest`` loads them (``[engine]`` symbols, interval and
window, ``[data]`` source), the model starts from the same defaults its strategy serves with
(so ``bot backtest --strategy <model> --param checkpoint=<file>`` uses the result as is), and
``[train]`` / ``[train.<model>]`` override the recipe and the hyperparameters. Every mistake in
those is reported naming its key before any training starts.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from backtest.runner import load_history
from bot.cli.common import (
    HISTORY_FLAGS,
    Overrides,
    UsageError,
    apply_torch_threads,
    flag_overrides,
    output_path,
    parse_params,
    settings_from,
)
from bot.config import ConfigError, Settings, TrainSettings
from bot.core.events import Panel
from bot.core.timeutil import interval_ms, iso, normalize_interval
from bot.store import Store
from bot.version import code_version
from models.checkpoint import Checkpoint, save_checkpoint
from models.features import FeatureSpec
from models.pipeline import TrainOptions, horizon_names
from models.registry import MODELS, model_class
from models.training import CHAPTER_RECIPES, TrainConfig
from strategies.model_backed import UNAVAILABLE_FEATURES, ModelStrategy, strategy_for_model
from strategies.model_fitting import fit_on_bars

#: multi-scale hyperparameters with one entry per scale
PER_SCALE = ("seq_lens", "n_layers", "n_heads")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train a model on history and save a checkpoint")
    p.add_argument("model", choices=list(MODELS), help="which of the seed models")
    p.add_argument("--symbols", help="comma-separated symbols (default: config engine.symbols)")
    p.add_argument("--interval", help="base bar interval (default: config engine.interval)")
    p.add_argument("--start", help="first training bar (date or ISO time, UTC)")
    p.add_argument("--end", help="end of the training data (exclusive)")
    p.add_argument("--source", choices=["csv", "parquet", "store", "synthetic"])
    p.add_argument("--data", type=Path, help="data folder for csv/parquet sources")
    p.add_argument("--epochs", type=int, help="override the chapter recipe's epochs")
    p.add_argument("--horizon", type=int, help="target: log return this many bars ahead")
    p.add_argument("--seed", type=int, help="random seed (same seed, same weights)")
    p.add_argument("--device", help="cpu, cuda or auto (default: config train.device)")
    p.add_argument("--threads", type=int, help="torch CPU threads (0: [models] threads)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="hyper",
                   help="hyperparameter over [train.<model>], e.g. --set d_model=32")  # fmt: skip
    p.add_argument("--out", type=output_path, help="checkpoint file (default: train.out_dir/...)")
    p.add_argument("--store", help="SQLAlchemy URL of the store (default: config store.url)")
    p.add_argument("--no-register", action="store_true", help="do not register in the store")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def overrides(args: argparse.Namespace) -> Overrides:
    out = flag_overrides(args, {
        **HISTORY_FLAGS, "epochs": "train.epochs", "horizon": "train.horizon",
        "seed": "train.seed", "device": "train.device", "threads": "train.threads",
    })  # fmt: skip
    for key, value in parse_params(args.hyper, "--set").items():
        out.set(f"train.{args.model}.{key}", value, f"--set {key}")
    return out


def hyperparameters(model: str, train: TrainSettings, strategy: type[ModelStrategy]) -> dict:
    """The strategy's defaults overlaid with ``[train.<model>]``, every key checked."""
    given: dict[str, Any] = getattr(train, model)
    known = {f.name for f in fields(model_class(model).config_class)}
    for key in given:
        if key not in known:
            raise ConfigError(
                f"train.{model}.{key}: {model} has no such hyperparameter; "
                f"known: {', '.join(sorted(known))}"
            )
    defaults = dict(strategy.default_model)
    if "scales" in given:  # other scales: per-scale defaults would not line up with them
        for key in PER_SCALE:
            defaults.pop(key, None)
    config = {**defaults, **given}
    if model == "multiscale":
        config.setdefault("horizons", horizon_names(len(train.horizons)))
    return config


def feature_names(train: TrainSettings, strategy: type[ModelStrategy]) -> tuple[str, ...]:
    names = tuple(train.features) if train.features is not None else strategy.default_features
    try:
        FeatureSpec(names)
    except ValueError as exc:
        raise ConfigError(f"train.features: {exc}") from None
    blocked = sorted(set(names) & set(UNAVAILABLE_FEATURES))
    if blocked:
        raise ConfigError(
            f"train.features: {blocked[0]!r} cannot be used yet (the engine's bar buffer holds "
            "no funding rates, so no strategy could serve such a model)"
        )
    return names


def check_scales(model: str, config: dict[str, Any], interval: str) -> None:
    """Multi-scale windows are aggregated from the base bars: each scale must be a multiple."""
    if model_class(model).input_kind != "scales":
        return
    base = interval_ms(interval)
    for scale in config.get("scales", ()):
        try:
            size = interval_ms(normalize_interval(scale))
        except ValueError as exc:
            raise ConfigError(f"train.{model}.scales: {exc}") from None
        if size % base:
            raise ConfigError(
                f"train.{model}.scales: {scale} is not a multiple of the base interval "
                f"{interval} (train a 1m model with --interval 1m)"
            )


def recipe(model: str, train: TrainSettings) -> TrainConfig:
    return CHAPTER_RECIPES[model].with_overrides(
        epochs=train.epochs, batch_size=train.batch_size, lr=train.lr, patience=train.patience,
        seed=train.seed, device=train.device,
    )  # fmt: skip


def plan(model: str, settings: Settings) -> TrainOptions:
    """Everything ``fit`` needs besides the bars, validated against the model."""
    train = settings.train
    strategy = strategy_for_model(model)
    config = hyperparameters(model, train, strategy)
    check_scales(model, config, settings.engine.interval)
    try:  # the hyperparameters' own checks (sizes, heads) before loading any data
        model_class(model).config_class(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"train.{model}: {exc}") from None
    return TrainOptions(
        features=feature_names(train, strategy),
        horizon=train.horizon,
        horizons=tuple(train.horizons),
        val_fraction=train.val_fraction,
        model=config,
        recipe=recipe(model, train),
        cost=2 * (settings.portfolio.fee_bp + settings.portfolio.slippage_bp) / 1e4,
    )


def finite(value: Any) -> Any:
    """JSON for the store: NaN and infinities (e.g. a loss that never validated) become null."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, overrides(args))
    options = plan(args.model, settings)
    apply_torch_threads(settings, settings.train.threads)
    store = Store(settings.store.url) if settings.data.source == "store" else None
    try:
        _, panel, _ = load_history(settings, store)
    finally:
        if store is not None:
            store.close()
    interval = settings.engine.interval
    first, end = int(panel.starts[0]), int(panel.starts[-1]) + panel.interval_ms
    print(f"training {args.model} on {len(panel):,} {interval} bars of "
          f"{', '.join(panel.symbols)} from {iso(first)} to {iso(end)}")  # fmt: skip
    out = args.out or Path(settings.train.out_dir) / f"{args.model}-{interval}-{first}-{end}.pt"
    try:
        checkpoint = train_checkpoint(
            args.model, panel, interval, options, settings.train.rebalance, out,
            progress=not args.no_progress,
        )  # fmt: skip
    except ValueError as exc:  # too little data for the windows, and the like
        raise UsageError(f"cannot train {args.model}: {exc}") from None
    report(checkpoint, out)
    if not args.no_register:
        register_checkpoint(settings.store.url, checkpoint, out)
    print(f"use it: bot backtest --strategy {args.model} --param checkpoint={out} "
          f"--start {iso(end)[:10]}   (later bars than it was trained on)")  # fmt: skip
    return 0


def train_checkpoint(
    model: str,
    panel: Panel,
    interval: str,
    options: TrainOptions,
    rebalance: str,
    out: Path,
    progress: bool = False,
) -> Checkpoint:
    """Fit ``model`` on ``panel`` and write its checkpoint to ``out``, with the metadata its
    strategy and the store read back. One path for ``bot train`` and for ``bot demo``, which
    fits its model before its market opens. Raises ``ValueError`` when the bars are too few
    for the model's windows."""
    fitted = fit_on_bars(
        model, panel.starts, panel.values, interval, options, rebalance=rebalance,
        progress=progress,
    )  # fmt: skip
    first, end = int(panel.starts[0]), int(panel.starts[-1]) + panel.interval_ms
    training = {**asdict(options.recipe), "horizon": options.horizon,
                "horizons": list(options.horizons), "val_fraction": options.val_fraction,
                "rebalance": rebalance,
                "best_epoch": fitted.result.best_epoch,
                "stopped_early": fitted.result.stopped_early,
                "seconds": fitted.result.seconds}  # fmt: skip
    meta = {
        "symbols": list(panel.symbols),
        "interval": interval,
        "data_window": {"start": first, "end": end, "bars": len(panel)},
        "target": fitted.target,
        "metrics": finite(fitted.metrics),
        "training": finite(training),
        "history": finite(fitted.result.history),
        "code_version": code_version(),
    }
    return save_checkpoint(
        out, fitted.model, feature_spec=fitted.spec, normalizer=fitted.normalizer, **meta
    )


def report(checkpoint: Checkpoint, path: Path) -> None:
    metrics, training = checkpoint.meta["metrics"], checkpoint.meta["training"]
    val = metrics.get("best_val_loss")
    print(f"version {checkpoint.version}: best epoch {training['best_epoch'] + 1} of "
          f"{metrics['epochs']}, validation loss {val if val is None else f'{val:.6g}'}, "
          f"{metrics['train_samples']:,} training / {metrics['val_samples']:,} validation "
          f"samples, {metrics['samples_per_second']:,.0f} samples/s")  # fmt: skip
    print(f"wrote {path}")


def register_checkpoint(url: str, checkpoint: Checkpoint, path: Path) -> None:
    meta = checkpoint.meta
    store = Store(url)
    try:
        store.register_model({
            "version": checkpoint.version, "model": meta["model"],
            "path": str(path.resolve()), "feature_digest": meta["feature_digest"],
            "symbols": meta["symbols"], "interval": meta["interval"],
            "data_start": meta["data_window"]["start"], "data_end": meta["data_window"]["end"],
            "hyperparameters": finite(meta["config"]), "training": meta["training"],
            "metrics": meta["metrics"], "code_version": meta["code_version"],
            "created_at": meta["created_at"],
        })  # fmt: skip
    finally:
        store.close()
    print(f"registered {checkpoint.version} in the store")
