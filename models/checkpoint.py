"""Checkpoints: a model's weights with everything needed to use it correctly later.

Metadata: the architecture and its hyperparameters, the feature spec and its digest, the
symbols and interval, the normalisation statistics, the data window it was trained on, the
training recipe, the metrics and the code version. Loading checks the feature spec a caller
is about to feed against the one the model learned: a mismatch is a clear error, never a
model silently reading the wrong columns. Files hold plain data and tensors only, so they load
with ``weights_only=True`` (no code runs on load).
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.base import TradingModel
from models.datasets import Normalizer
from models.features import FeatureSpec
from models.registry import build

FORMAT = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint used with features (or data) other than those it was trained on."""


@dataclass
class Checkpoint:
    model: TradingModel
    meta: dict[str, Any]

    @property
    def version(self) -> str:
        """``<model>-<12 hex of the weights>``: recorded with every decision it makes."""
        return self.meta["version"]

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.meta["feature_spec"])

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer.from_dict(self.meta["normalization"])


def weights_digest(model: TradingModel) -> str:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()[:12]


def save_checkpoint(path: Path, model: TradingModel, **meta: Any) -> Checkpoint:
    """Write ``model`` with ``meta`` (must include ``feature_spec`` as a FeatureSpec and
    ``normalizer``); returns the checkpoint as it will load."""
    spec: FeatureSpec = meta.pop("feature_spec")
    normalizer: Normalizer = meta.pop("normalizer")
    full = {
        "format": FORMAT,
        "model": model.name,
        "config": model.hyperparameters(),
        "feature_spec": spec.to_dict(),
        "feature_digest": spec.digest(),
        "normalization": normalizer.to_dict(),
        "version": f"{model.name}-{weights_digest(model)}",
        "created_at": int(time.time() * 1000),
        **meta,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"meta": full, "state_dict": state}, path)
    return Checkpoint(model, full)


def load_checkpoint(path: Path, expected: FeatureSpec | None = None) -> Checkpoint:
    """Load a checkpoint on the CPU; with ``expected``, refuse one trained on other features."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointMismatchError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointMismatchError(
            f"{path}: not a checkpoint of this project ({type(exc).__name__}); "
            "write one with `bot train`"
        ) from None
    if not (isinstance(raw, dict) and isinstance(raw.get("meta"), dict) and "state_dict" in raw):
        raise CheckpointMismatchError(
            f"{path}: not a checkpoint of this project (no metadata); write one with `bot train`"
        )
    meta = raw["meta"]
    if meta.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{path}: checkpoint format {meta.get('format')} unknown")
    if expected is not None and expected.digest() != meta["feature_digest"]:
        trained = FeatureSpec.from_dict(meta["feature_spec"])
        raise CheckpointMismatchError(
            f"{path}: the model was trained on features {list(trained.names)} "
            f"(version {trained.version}) but is being fed {list(expected.names)} "
            f"(version {expected.version}); retrain it or use the matching feature spec"
        )
    model = build(meta["model"], **meta["config"])
    model.load_state_dict(raw["state_dict"])
    model.eval()
    return Checkpoint(model, meta)
