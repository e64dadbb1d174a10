"""Checkpoints: every model round-trips bit for bit with its metadata, a checkpoint refuses
features other than those it learned, and unusable files (missing, foreign, pickled code) are
clear errors; the files hold plain data and tensors only (``weights_only=True`` loads them)."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from models.base import TradingModel
from models.checkpoint import (
    CheckpointMismatchError,
    load_checkpoint,
    save_checkpoint,
    weights_digest,
)
from models.datasets import Normalizer
from models.features import FeatureSpec
from models.registry import build, model_class
from models.training import CHAPTER_RECIPES
from tests.modelkit import SYMBOLS, TINY

MODELS = ("cross_asset", "stockformer", "multiscale", "tabl")
BATCH = 5


def tiny_model(name: str, seed: int = 0) -> tuple[TradingModel, FeatureSpec]:
    """A tiny ``name`` whose weights are nowhere near a fresh initialisation (so a load that
    silently kept the freshly built weights could not pass for a round trip)."""
    hyper, features, _ = TINY[name]
    spec = FeatureSpec(features)
    config = dict(hyper)
    kind = model_class(name).input_kind
    if kind == "assets":
        config.update(n_assets=len(SYMBOLS), n_features=spec.size)
    elif kind == "sequence":
        config["input_dim"] = spec.size
    else:
        config["n_features"] = spec.size
    torch.manual_seed(seed)
    model = build(name, **config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model.eval(), spec


def inputs_for(model: TradingModel, seed: int = 0) -> Any:
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    if model.input_kind == "assets":
        shape = (BATCH, config.n_assets, config.seq_len, config.n_features)
        return torch.randn(shape, generator=generator)
    if model.input_kind == "sequence":
        return torch.randn(BATCH, config.seq_len, config.input_dim, generator=generator)
    return {
        scale: torch.randn(BATCH, length, config.n_features, generator=generator)
        for scale, length in config.window_lengths().items()
    }


def metadata(spec: FeatureSpec) -> dict[str, Any]:
    """Everything ``bot train`` records besides the weights."""
    rng = np.random.default_rng(4)
    normalizer = Normalizer(rng.normal(size=spec.size), rng.uniform(0.5, 2.0, size=spec.size))
    return {
        "feature_spec": spec,
        "normalizer": normalizer,
        "symbols": list(SYMBOLS),
        "interval": "1h",
        "data_window": {"start": 1_725_148_800_000, "end": 1_735_689_600_000, "bars": 2928},
        "target": {"horizon": 1, "threshold": 0.0021, "target_scale": 0.0087, "rows": [40, 2900]},
        "metrics": {"best_val_loss": 0.8125, "epochs": 7, "prediction_scale": 0.25},
        "training": {**asdict(CHAPTER_RECIPES["cross_asset"]), "best_epoch": 3},
        "code_version": "0123abcd",
    }


def predictions(model: TradingModel, x: Any) -> list[torch.Tensor]:
    model.eval()
    with torch.inference_mode():
        output = model(x)
    return [output.prediction, *(output.extras[k] for k in sorted(output.extras))]


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_restores_weights_predictions_and_metadata(name: str, tmp_path: Path) -> None:
    model, spec = tiny_model(name)
    meta = metadata(spec)
    path = tmp_path / "nested" / f"{name}.pt"
    saved = save_checkpoint(path, model, **dict(meta))
    assert path.is_file()

    torch.manual_seed(99)  # the loader builds a fresh model: it must not keep those weights
    loaded = load_checkpoint(path, expected=spec)
    assert type(loaded.model) is type(model)
    assert not loaded.model.training  # ready to predict

    original, restored = model.state_dict(), loaded.model.state_dict()
    assert list(restored) == list(original)
    for key, tensor in original.items():
        assert restored[key].dtype == tensor.dtype, key
        assert restored[key].device.type == "cpu", key
        assert torch.equal(restored[key], tensor), key

    x = inputs_for(model)
    for expected, got in zip(predictions(model, x), predictions(loaded.model, x), strict=True):
        assert torch.equal(got, expected)

    assert loaded.model.config == model.config
    assert loaded.model.hyperparameters() == model.hyperparameters()
    assert loaded.meta["config"] == model.hyperparameters()
    assert loaded.meta["model"] == name
    assert re.fullmatch(rf"{name}-[0-9a-f]{{12}}", loaded.version)
    assert loaded.version == saved.version == f"{name}-{weights_digest(model)}"
    assert weights_digest(loaded.model) == weights_digest(model)
    assert loaded.feature_spec == spec
    assert loaded.meta["feature_digest"] == spec.digest()
    np.testing.assert_array_equal(loaded.normalizer.mean, meta["normalizer"].mean)
    np.testing.assert_array_equal(loaded.normalizer.std, meta["normalizer"].std)
    for key in ("symbols", "interval", "data_window", "target", "metrics", "training",
                "code_version"):  # fmt: skip
        assert loaded.meta[key] == meta[key], key
    assert isinstance(loaded.meta["created_at"], int)
    assert loaded.meta == saved.meta  # the returned checkpoint is the one that loads


def test_version_names_the_weights() -> None:
    model, _ = tiny_model("cross_asset")
    before = weights_digest(model)
    assert weights_digest(model) == before  # a digest, not a timestamp or a counter
    assert weights_digest(tiny_model("cross_asset", seed=1)[0]) != before
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert weights_digest(model) != before


def test_a_mismatched_feature_spec_is_refused_naming_both_feature_lists(tmp_path: Path) -> None:
    model, spec = tiny_model("tabl")
    path = tmp_path / "tabl.pt"
    save_checkpoint(path, model, **metadata(spec))
    assert load_checkpoint(path, expected=FeatureSpec(spec.names)).version.startswith("tabl-")
    assert load_checkpoint(path).feature_spec == spec  # no expectation: no check

    other = FeatureSpec(("log_return", "range", "relative_volume", "momentum_5", "macd"))
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(path, expected=other)
    message = str(error.value)
    assert str(list(spec.names)) in message
    assert str(list(other.names)) in message
    assert str(path) in message

    reordered = FeatureSpec(tuple(reversed(spec.names)))  # same columns, other order
    with pytest.raises(CheckpointMismatchError, match="trained on features"):
        load_checkpoint(path, expected=reordered)
    redefined = FeatureSpec(spec.names, version=spec.version + 1)  # a feature changed meaning
    with pytest.raises(CheckpointMismatchError, match="version"):
        load_checkpoint(path, expected=redefined)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "never-written.pt"
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)
    assert re.search(r"no such|not found|does not exist|missing", str(error.value), re.I)


def test_a_newer_checkpoint_format_is_a_clear_error(tmp_path: Path) -> None:
    model, spec = tiny_model("tabl")
    path = tmp_path / "tabl.pt"
    save_checkpoint(path, model, **metadata(spec))
    raw = torch.load(path, weights_only=True)
    raw["meta"]["format"] = 99
    torch.save(raw, path)
    with pytest.raises(CheckpointMismatchError, match=r"format 99") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def _bare_state_dict(path: Path) -> None:
    torch.save(tiny_model("tabl")[0].state_dict(), path)  # weights without the metadata


def _text(path: Path) -> None:
    path.write_text('{"model": "tabl"}\n')


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("write", [_bare_state_dict, _text, _empty], ids=["state_dict", "text",
                                                                        "empty"])  # fmt: skip
def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(write, tmp_path: Path) -> None:
    """Not a ``KeyError: 'meta'``, an ``EOFError`` with no message or an unpickling error
    suggesting ``weights_only=False``: an error of the checkpoint module naming the file."""
    path = tmp_path / "foreign.pt"
    write(path)
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


class _Payload:
    """Unpickling this (with code allowed) would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_files_hold_plain_data_and_no_pickled_code_runs_on_load(tmp_path: Path) -> None:
    model, spec = tiny_model("multiscale")
    path = tmp_path / "multiscale.pt"
    save_checkpoint(path, model, **metadata(spec))
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no code objects inside
    assert set(raw) == {"meta", "state_dict"}
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return all(plain(v) for v in value)
        return value is None or type(value) in (str, int, float, bool)

    assert plain(raw["meta"])

    marker = tmp_path / "code-ran"
    raw["meta"]["payload"] = _Payload(marker)
    hostile = tmp_path / "hostile.pt"
    torch.save(raw, hostile)
    with pytest.raises(Exception):  # noqa: B017 - any refusal, as long as nothing ran
        load_checkpoint(hostile)
    assert not marker.exists()
