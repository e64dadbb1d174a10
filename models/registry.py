"""The models by name, for the CLI, checkpoints and strategies."""

from __future__ import annotations

import importlib
from typing import Any

from models.base import TradingModel

#: name → "module:Class"; imported lazily so one model's import cost is paid only when used.
MODELS = {
    "cross_asset": "models.cross_asset:CrossAssetAttentionNet",
    "stockformer": "models.stockformer:Stockformer",
    "multiscale": "models.multiscale:MultiScaleAttentionNet",
    "tabl": "models.tabl:TABLNet",
}


def model_class(name: str) -> type[TradingModel]:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    module, _, attr = MODELS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def build(name: str, **config: Any) -> TradingModel:
    """A model from its hyperparameters (unknown ones are an error naming them)."""
    cls = model_class(name)
    fields = cls.config_class.__dataclass_fields__
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise TypeError(f"model {name!r} has no hyperparameter {unknown[0]!r}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    return cls(cls.config_class(**values))
