"""Training: the chapters' optimisers and schedules, clipped gradients, early stopping.

One loop serves every model: it asks the model for its loss (:meth:`TradingModel.loss`, the
right one for its head), so the trainer knows nothing about heads. Runs are reproducible on
the CPU: everything random is seeded and torch is asked for deterministic algorithms. CUDA is
used when present (``device="auto"``).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from models.base import ModelOutput, TradingModel, batch_len, split_batch


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw"] = "adam"
    scheduler: Literal["plateau", "cosine_restarts", "none"] = "plateau"
    grad_clip: float = 1.0
    patience: int = 10  # early stopping: epochs without a better validation loss
    seed: int = 7
    device: str = "auto"
    #: Cost per unit of weight traded between consecutive decisions, charged by portfolio
    #: and allocation losses; > 0 makes batches runs of consecutive samples.
    turnover_cost: float = 0.0

    def with_overrides(self, **changes: Any) -> TrainConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


#: What each chapter trains its model with (optimiser, schedule, batch size, clipping).
CHAPTER_RECIPES: dict[str, TrainConfig] = {
    "cross_asset": TrainConfig(batch_size=32),  # Adam 1e-3, plateau 0.5/5, clip 1.0
    "stockformer": TrainConfig(batch_size=32),  # same recipe
    "multiscale": TrainConfig(  # AdamW 1e-3 wd 0.01, cosine warm restarts T0=10 Tmult=2
        batch_size=64, optimizer="adamw", weight_decay=0.01, scheduler="cosine_restarts"
    ),
    "tabl": TrainConfig(batch_size=32),  # Adam 1e-3, plateau 0.5/5, clip 1.0
}


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    seconds: float = 0.0
    samples_per_second: float = 0.0
    stopped_early: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_device(value: Any, device: torch.device, dtype: torch.dtype | None = None) -> Any:
    """A tensor (or dict of tensors) on ``device``, cast to ``dtype`` when given."""
    if isinstance(value, dict):
        return {k: to_device(v, device, dtype) for k, v in value.items()}
    return value.to(device=device, dtype=dtype)


def _optimizer(model: TradingModel, config: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=5)
    if config.scheduler == "cosine_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=10, T_mult=2)
    return None


class ConsecutiveBatches(Sampler[list[int]]):
    """Batches of consecutive samples (a loss that charges the turnover between decisions
    needs each sample's predecessor beside it), cut at a random offset and visited in a
    random order each epoch, so the model still sees varied batches."""

    def __init__(self, size: int, batch_size: int, generator: torch.Generator) -> None:
        self.size, self.batch_size, self.generator = size, batch_size, generator

    def __iter__(self) -> Iterator[list[int]]:
        offset = int(torch.randint(self.batch_size, (1,), generator=self.generator))
        cuts = [0, *range(offset or self.batch_size, self.size, self.batch_size), self.size]
        order = torch.randperm(len(cuts) - 1, generator=self.generator).tolist()
        for k in order:
            if cuts[k + 1] - cuts[k] > 1:  # a lone sample has no turnover to learn from
                yield list(range(cuts[k], cuts[k + 1]))

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size) + 1


def evaluate(
    model: TradingModel, loader: DataLoader, device: torch.device, turnover_cost: float = 0.0
) -> float:
    """Mean loss over a loader (weighted by batch size)."""
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for x, y in loader:
            output = model(to_device(x, device))
            n = batch_len(y)
            total += float(model.loss(output, to_device(y, device), turnover_cost)) * n
            count += n
    return total / max(count, 1)


def train(
    model: TradingModel,
    train_set: Dataset,
    val_set: Dataset,
    config: TrainConfig,
    progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place; returns with the best validation epoch's weights loaded."""
    generator = seed_everything(config.seed)
    device = pick_device(config.device)
    model.to(device)
    cost = config.turnover_cost
    if cost > 0:
        batches = ConsecutiveBatches(len(train_set), config.batch_size, generator)  # type: ignore[arg-type]
        train_loader = DataLoader(train_set, batch_sampler=batches)
    else:
        train_loader = DataLoader(
            train_set, batch_size=config.batch_size, shuffle=True, generator=generator
        )
    val_loader = DataLoader(val_set, batch_size=max(config.batch_size, 256))
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config)
    result = TrainResult()
    best_state = copy.deepcopy(model.state_dict())
    started = time.perf_counter()
    samples = 0
    bar = tqdm(range(config.epochs), desc=f"train {model.name}", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for step, (x, y) in enumerate(train_loader):
            optimizer.zero_grad(set_to_none=True)
            loss = model.loss(model(to_device(x, device)), to_device(y, device), cost)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if config.scheduler == "cosine_restarts":
                scheduler.step(epoch + step / max(len(train_loader), 1))
            n = batch_len(y)
            total += float(loss.detach()) * n
            count += n
        samples += count
        val_loss = evaluate(model, val_loader, device, cost)
        if config.scheduler == "plateau":
            scheduler.step(val_loss)
        row = {"epoch": epoch, "train_loss": total / max(count, 1), "val_loss": val_loss,
               "lr": optimizer.param_groups[0]["lr"]}  # fmt: skip
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        bar.set_postfix(train=f"{row['train_loss']:.4g}", val=f"{val_loss:.4g}")
        if val_loss < result.best_val_loss:
            result.best_val_loss, result.best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - result.best_epoch >= config.patience:
            result.stopped_early = True
            break
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - started
    result.samples_per_second = samples / result.seconds if result.seconds else 0.0
    return result


def contiguous(value: Any) -> Any:
    """A tensor (or dict of tensors) laid out contiguously (itself when it already is)."""
    if isinstance(value, dict):
        return {k: v.contiguous() for k, v in value.items()}
    return value.contiguous()


def predict(
    model: TradingModel, inputs: Any, batch_size: int = 512, dtype: torch.dtype | None = None
) -> ModelOutput:
    """Run ``model`` over many samples at once (``inputs``: a tensor or a dict of tensors with
    the batch first), batch by batch, each cast to ``dtype`` when given (a batch at a time, so
    a float64 copy of all inputs never exists); returns one concatenated output.

    Each batch is made contiguous first: its layout would otherwise depend on how the inputs
    were assembled (a view of a few samples, or a slice of a block's copy), and kernels may
    take other paths, summing in another order, on other strides."""
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        chunks = [
            model(contiguous(to_device(part, device, dtype)))
            for part in split_batch(inputs, batch_size)
        ]
    extras = {k: torch.cat([c.extras[k] for c in chunks]) for k in chunks[0].extras}
    return ModelOutput(torch.cat([c.prediction for c in chunks]), extras=extras)
