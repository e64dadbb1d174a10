"""Tiny versions of the four models, trained for a moment on real bars, for strategy tests.

The sizes are far below the chapters' (tests must be fast); the code paths are the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.core.events import Panel
from bot.core.timeutil import to_ms
from bot.feeds.loaders import load_panel
from models.checkpoint import Checkpoint, save_checkpoint
from models.pipeline import TrainOptions
from models.training import TrainConfig
from strategies.model_backed import MULTISCALE_FEATURES
from strategies.model_fitting import fit_on_bars

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SHORT_FEATURES = ("log_return", "range", "relative_volume", "momentum_5", "close_position")

#: model → (hyperparameters, features, extra training options)
TINY: dict[str, tuple[dict, tuple[str, ...], dict]] = {
    "cross_asset": (
        {"seq_len": 24, "d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32, "max_lag": 3},
        SHORT_FEATURES,
        {},
    ),
    "stockformer": (
        {"seq_len": 24, "d_model": 16, "n_heads": 2, "n_layers": 2, "d_ff": 32},
        SHORT_FEATURES,
        {},
    ),
    "tabl": (
        {"seq_len": 24, "hidden": ()},
        ("log_return", "intraday_return", "range", "rsi_14", "macd"),  # EMA-based ones too
        {},
    ),
    "multiscale": (
        {"scales": ("1h", "4h", "1d"), "seq_lens": (12, 6, 5), "n_layers": (1, 1, 1),
         "n_heads": (2, 2, 2), "d_model": 16, "cross_heads": 2},
        MULTISCALE_FEATURES,
        {"horizons": (1, 4, 24)},
    ),
}  # fmt: skip


def real_panel(linear_dir: Path, start: str, end: str, symbols=SYMBOLS) -> Panel:
    return load_panel(linear_dir, tuple(symbols), "1h", to_ms(start), to_ms(end))


def train_tiny(model: str, panel: Panel, path: Path, epochs: int = 2) -> Checkpoint:
    """Fit ``model`` at its tiny size on ``panel`` and write a checkpoint to ``path``."""
    hyper, features, extra = TINY[model]
    options = TrainOptions(
        features=features,
        model=hyper,
        recipe=TrainConfig(epochs=epochs, batch_size=64, seed=3),
        **extra,
    )
    fitted = fit_on_bars(model, panel.starts, np.asarray(panel.values), "1h", options)
    return save_checkpoint(
        path,
        fitted.model,
        feature_spec=fitted.spec,
        normalizer=fitted.normalizer,
        symbols=list(panel.symbols),
        interval="1h",
        target=fitted.target,
        metrics=fitted.metrics,
    )
