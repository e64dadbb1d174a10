"""From bars to a trained model on real Bybit data: a few steps of every model's own loss fit a
batch, training is reproducible from its seed, early stopping keeps the best epoch, validation
decisions are embargoed from training ones, normalisation never sees validation bars, and an
unavailable feature is refused."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, TensorDataset, default_collate

from bot.core.events import Panel
from bot.feeds.loaders import load_panel
from models.checkpoint import weights_digest
from models.datasets import MultiScaleDataset, WindowDataset
from models.features import DEFAULT_FEATURES
from models.pipeline import Prepared, ScaleBars, TrainOptions, prepare
from models.registry import build, model_class
from models.training import TrainConfig, evaluate, train
from strategies.model_backed import MULTISCALE_FEATURES
from strategies.model_fitting import fit_on_bars, scale_bars
from tests.modelkit import TINY, real_panel

MODELS = ("cross_asset", "stockformer", "multiscale", "tabl")
PERIOD = ("2024-09-01", "2024-12-01")  # 1h bars of BTC, ETH, SOL
SHORT_PERIOD = ("2024-09-01", "2024-10-12")  # for the repeated fits
MINUTE_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")
MINUTE_SCALES = ("1m", "5m", "1h", "1d")
#: the multi-scale model on minute bars: the chapter's four scales with short windows (the
#: stored month of 1m bars holds 30 daily bars, 21 of them the features' warm-up)
MULTISCALE_MINUTES = {"scales": MINUTE_SCALES, "seq_lens": (30, 12, 8, 4),
                      "n_layers": (1, 1, 1, 1), "n_heads": (2, 2, 2, 2), "d_model": 32,
                      "cross_heads": 2}  # fmt: skip


@pytest.fixture(scope="module")
def hourly(linear_dir: Path) -> tuple[np.ndarray]:
    """``(ohlcv[T, 3, 5],)`` of three months of 1h bars."""
    return (np.asarray(real_panel(linear_dir, *PERIOD).values, dtype=float),)


@pytest.fixture(scope="module")
def short_hourly(linear_dir: Path) -> Panel:
    return real_panel(linear_dir, *SHORT_PERIOD)


@pytest.fixture(scope="module")
def minutes(linear_dir: Path) -> tuple[np.ndarray, dict[str, ScaleBars], np.ndarray]:
    """``(starts, scales, ohlcv[T, 4, 5])`` of the stored month of 1m bars."""
    missing = [s for s in MINUTE_SYMBOLS if not (linear_dir / "1m" / f"{s}.csv").exists()]
    if missing:
        pytest.skip(f"no 1m bars of {missing} under {linear_dir / '1m'}")
    panel = load_panel(linear_dir, MINUTE_SYMBOLS, "1m")
    starts, ohlcv = np.asarray(panel.starts), np.asarray(panel.values, dtype=float)
    return starts, minute_scales(starts, ohlcv), ohlcv


def minute_scales(starts: np.ndarray, ohlcv: np.ndarray) -> dict[str, ScaleBars]:
    return {s: scale_bars(starts, ohlcv, "1m", s) for s in MINUTE_SCALES}


def base_bars(name: str, request: pytest.FixtureRequest) -> np.ndarray:
    """The multi-scale model learns from 1m bars (and their 5m/1h/1d bars), the others from
    1h bars (fixtures looked up on demand: missing minute data skips only the multi-scale
    cases)."""
    return request.getfixturevalue("minutes" if name == "multiscale" else "hourly")[-1]


def prepare_on(name: str, request, options: TrainOptions, ohlcv=None) -> Prepared:
    """:func:`prepare` on the model's real bars (or on ``ohlcv``, a changed copy of them)."""
    if name != "multiscale":
        return prepare(name, base_bars(name, request) if ohlcv is None else ohlcv, options)
    starts, scales, bars = request.getfixturevalue("minutes")
    if ohlcv is not None:
        bars, scales = ohlcv, minute_scales(starts, ohlcv)
    return prepare(name, bars, options, scales=scales)


def tiny_options(name: str, **changes: Any) -> TrainOptions:
    """The test-sized configuration (multi-scale: on minute bars)."""
    hyper, features, extra = TINY[name]
    if name == "multiscale":
        hyper = MULTISCALE_MINUTES
    return TrainOptions(features=features, model=hyper, **{**extra, **changes})


def decision_rows(dataset: Dataset) -> np.ndarray:
    """The base rows of a dataset's decisions."""
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    rows = []
    for part in parts:
        if isinstance(part, WindowDataset):
            rows.append(part.rows)
        else:
            assert isinstance(part, MultiScaleDataset)
            # the base scale's bars are the base rows (visible_at = arange): its window ends
            # at the decision row itself
            rows.append(np.asarray(part.ends[MINUTE_SCALES[0]]))
    return np.unique(np.concatenate(rows))


def fixed_batch(dataset: Dataset, size: int) -> tuple[Any, Any]:
    picks = np.linspace(0, len(dataset) - 1, size).astype(int)  # across time (and assets)
    return default_collate([dataset[int(i)] for i in picks])


# -- a few steps of the model's own loss fit a batch of real data ------------------------------

#: model → (hyperparameters, features, batch size). Cross-asset and TABL at the chapter's size
#: (heads aside: the portfolio head's loss is a negative Sharpe ratio, not a quantity that
#: shrinks by a factor); Stockformer and multi-scale reduced for speed.
LOSS_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...], int]] = {
    "cross_asset": ({"head": "regression"}, DEFAULT_FEATURES, 8),
    "stockformer": ({"seq_len": 48, "d_model": 32, "n_heads": 4, "n_layers": 2, "d_ff": 64,
                     "head": "regression"}, DEFAULT_FEATURES, 16),
    "tabl": ({}, DEFAULT_FEATURES, 16),
    "multiscale": (MULTISCALE_MINUTES, MULTISCALE_FEATURES, 16),
}  # fmt: skip
SIZED_BY_DATA = {"n_assets", "n_features", "input_dim", "head"}


@pytest.mark.parametrize("name", MODELS)
def test_a_few_training_steps_reduce_the_loss_on_real_data(name, request) -> None:
    hyper, features, batch = LOSS_CASES[name]
    prepared = prepare_on(name, request, TrainOptions(features=features, model=hyper))
    model = prepared.model
    if name in ("cross_asset", "tabl"):  # the chapter's size
        default = asdict(model_class(name).config_class())
        ours = asdict(model.config)
        assert {k: v for k, v in ours.items() if k not in SIZED_BY_DATA} == {
            k: v for k, v in default.items() if k not in SIZED_BY_DATA
        }
    x, y = fixed_batch(prepared.train_set, batch)

    def batch_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(model.loss(model(x), y))

    initial = batch_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(20):
        model.train()
        optimizer.zero_grad()
        model.loss(model(x), y).backward()
        optimizer.step()
    final = batch_loss()
    assert np.isfinite(initial) and initial > 0
    assert final < 0.8 * initial, f"{name}: loss {initial:.4g} -> {final:.4g}"


# -- reproducibility ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_the_same_seed_gives_the_same_weights_and_another_seed_others(name, short_hourly):
    hyper, features, extra = TINY[name]

    def fitted(seed: int):
        recipe = TrainConfig(epochs=1, batch_size=64, seed=seed, device="cpu")
        options = TrainOptions(features=features, model=hyper, recipe=recipe, **extra)
        values = np.asarray(short_hourly.values, dtype=float)
        return fit_on_bars(name, short_hourly.starts, values, "1h", options)

    first = fitted(3)
    torch.manual_seed(12345)  # whatever the global random state was before does not matter
    torch.rand(17)
    np.random.seed(6)
    again = fitted(3)
    other = fitted(4)
    assert weights_digest(again.model) == weights_digest(first.model)
    assert again.result.history == first.result.history
    assert weights_digest(other.model) != weights_digest(first.model)


# -- early stopping ----------------------------------------------------------------------------


@pytest.mark.parametrize("patience", [2, 5])
def test_early_stopping_restores_the_best_epoch_and_waits_patience_epochs(patience) -> None:
    """Training pulls the outputs towards 3 while validation wants 1.5 (one step an epoch):
    the validation loss falls while the outputs approach 1.5, then rises as they pass it."""
    hyper = {**TINY["cross_asset"][0], "n_assets": 3, "n_features": 5, "head": "regression"}
    torch.manual_seed(0)
    model = build("cross_asset", **hyper)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, hyper["seq_len"], 5, generator=generator)
    train_set = TensorDataset(x, torch.full((64, 3), 3.0))
    val_set = TensorDataset(x[:32], torch.full((32, 3), 1.5))
    recipe = TrainConfig(epochs=60, batch_size=64, lr=1e-3, patience=patience, seed=1,
                         scheduler="none", device="cpu")  # fmt: skip
    digests: list[str] = []
    result = train(model, train_set, val_set, recipe, progress=False,
                   on_epoch=lambda _: digests.append(weights_digest(model)))  # fmt: skip

    losses = [row["val_loss"] for row in result.history]
    assert result.stopped_early
    assert len(losses) < recipe.epochs
    assert result.best_epoch == int(np.argmin(losses)) > 0
    assert result.best_val_loss == losses[result.best_epoch]
    # stopped after exactly ``patience`` epochs without a better validation loss
    assert len(losses) == result.best_epoch + patience + 1
    assert min(losses[result.best_epoch + 1 :]) >= result.best_val_loss
    # the best epoch's weights are back, not the last epoch's
    assert weights_digest(model) == digests[result.best_epoch] != digests[-1]
    assert not model.training
    val_loss = evaluate(model, DataLoader(val_set, batch_size=256), torch.device("cpu"))
    assert val_loss == pytest.approx(result.best_val_loss, rel=1e-6, abs=1e-9)


# -- no leakage from the validation period -----------------------------------------------------


def leakage_options(name: str) -> TrainOptions:
    """Test sizes; single-horizon models three bars ahead (so horizon and lookback differ)."""
    return tiny_options(name) if name == "multiscale" else tiny_options(name, horizon=3)


def lookback_of(prepared: Prepared) -> int:
    """Base rows one decision's input window spans (the multi-scale model: its base scale's
    window, the shortest span any of its windows covers)."""
    config = prepared.model.config
    return config.seq_lens[0] if prepared.model.name == "multiscale" else config.seq_len


@pytest.mark.parametrize("name", MODELS)
def test_validation_decisions_follow_training_ones_after_an_embargo(name, request):
    options = leakage_options(name)
    prepared = prepare_on(name, request, options)
    train_rows = decision_rows(prepared.train_set)
    val_rows = decision_rows(prepared.val_set)
    horizon = max(options.horizons) if name == "multiscale" else options.horizon
    embargo = horizon + lookback_of(prepared)
    assert len(train_rows) >= 8 and len(val_rows) >= 4
    assert prepared.target["rows"] == [int(train_rows[0]), int(val_rows[-1])]
    # no training target (up to t + horizon) reaches a validation window
    gap = int(val_rows.min() - train_rows.max())
    assert gap >= embargo, (
        f"{name}: last training decision {train_rows.max()}, first validation decision "
        f"{val_rows.min()}: {gap} rows apart, less than horizon {horizon} + lookback "
        f"{lookback_of(prepared)}"
    )
    # the latest decisions validate (about val_fraction of them)
    share = len(val_rows) / (len(train_rows) + len(val_rows))
    assert share == pytest.approx(options.val_fraction, abs=0.05)


def _normalisation(name: str, request, ohlcv: np.ndarray) -> Prepared:
    return prepare_on(name, request, leakage_options(name), ohlcv)


def base_windows(dataset: Dataset) -> torch.Tensor:
    """A few of a dataset's input windows (the base scale's, for the multi-scale model)."""
    x = fixed_batch(dataset, 4)[0]
    return x[MINUTE_SCALES[0]] if isinstance(x, dict) else x


def _moved(ohlcv: np.ndarray, rows: slice) -> np.ndarray:
    """Prices of ``rows`` moved by up to ±30% (still valid bars), volumes scaled by 5."""
    out = ohlcv.copy()
    noise = np.random.default_rng(2).uniform(0.7, 1.3, size=out[rows].shape[:2])
    out[rows, :, :4] *= noise[..., None]
    out[rows, :, 4] *= 5.0
    return out


@pytest.mark.parametrize("name", MODELS)
def test_normalisation_and_targets_come_from_training_rows_only(name, request):
    base = base_bars(name, request)
    prepared = _normalisation(name, request, base)
    train_rows = decision_rows(prepared.train_set)
    val_start = int(decision_rows(prepared.val_set).min())

    changed = _normalisation(name, request, _moved(base, slice(val_start, None)))
    assert not torch.equal(base_windows(changed.val_set), base_windows(prepared.val_set))
    np.testing.assert_array_equal(changed.normalizer.mean, prepared.normalizer.mean)
    np.testing.assert_array_equal(changed.normalizer.std, prepared.normalizer.std)
    assert changed.target == prepared.target  # threshold and target scale too

    # control: moving bars that training windows read does move the statistics
    middle = int(train_rows[len(train_rows) // 2])
    control = _normalisation(name, request, _moved(base, slice(middle - 5, middle + 1)))
    assert not np.array_equal(control.normalizer.mean, prepared.normalizer.mean)


# -- refused features --------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_the_funding_rate_feature_is_refused_clearly(name, short_hourly) -> None:
    hyper, features, extra = TINY[name]
    options = TrainOptions(features=(*features, "funding_rate"), model=hyper, **extra)
    values = np.asarray(short_hourly.values, dtype=float)
    with pytest.raises(ValueError, match="funding_rate") as error:
        fit_on_bars(name, short_hourly.starts, values, "1h", options)
    assert re.search(r"not available|unavailable|not supported|cannot", str(error.value))
    with pytest.raises(ValueError, match="funding_rate"):
        prepare(name, values, options, scales={})
