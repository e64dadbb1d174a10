"""What every model of the project provides, so the trainer, the checkpoints and the
model-backed strategies can treat the four architectures alike.

A model is an ``nn.Module`` built from a frozen config dataclass (its hyperparameters, which a
checkpoint stores and restores it from). ``forward(x, return_attention=False)`` returns a
:class:`ModelOutput`: ``prediction`` is the output of the model's head, ``attention`` holds
the attention maps the chapter's explanations need (only when asked: they cost memory).

Inputs, by ``input_kind``:

* ``"assets"`` — ``x`` is ``[batch, assets, time, features]`` (cross-asset, Stockformer);
* ``"scales"`` — ``x`` is a dict ``{scale: [batch, time_scale, features]}`` (multi-scale);
* ``"sequence"`` — ``x`` is ``[batch, time, features]`` (TABL).

Heads and their ``prediction`` shapes (``A`` = assets):

* ``"regression"`` — future log return, ``[B, A]`` (or ``[B]`` for single-series models;
  multi-horizon models ``[B, H]``);
* ``"classification"`` — logits over (down, stationary, up), ``[B, A, 3]`` or ``[B, 3]``;
* ``"direction"`` — one logit of "up", ``[B, A]`` or ``[B]`` (trained with BCE);
* ``"portfolio"`` — softmax weights over assets, ``[B, A]``, summing to 1 (long only);
* ``"allocation"`` — ``tanh`` positions in [-1, 1], ``[B, A]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

Head = Literal["regression", "classification", "direction", "portfolio", "allocation"]
InputKind = Literal["assets", "scales", "sequence"]
N_CLASSES = 3  # down, stationary, up


@dataclass
class ModelOutput:
    prediction: torch.Tensor
    attention: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. per-horizon outputs


class TradingModel(nn.Module):
    """Base of the project's models (see the module docstring for the contract)."""

    name: ClassVar[str]
    input_kind: ClassVar[InputKind]
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    @property
    def head(self) -> Head:
        return self.config.head

    def hyperparameters(self) -> dict[str, Any]:
        """The config as plain data (stored in checkpoints)."""
        return asdict(self.config)

    def forward(self, x: Any, return_attention: bool = False) -> ModelOutput:
        raise NotImplementedError

    def loss(
        self, output: ModelOutput, target: torch.Tensor, turnover_cost: float = 0.0
    ) -> torch.Tensor:
        """The training loss of the head (override for models with several heads).

        Targets: regression — future log returns (same shape as the prediction);
        classification — class indices (0 down, 1 stationary, 2 up); direction — 1.0 for up,
        0.0 otherwise; portfolio and allocation — the next period's asset returns ``[B, A]``,
        and the loss is the negative Sharpe ratio of the resulting portfolio returns over the
        batch (so the model learns risk-adjusted allocation, not leverage on noise), net
        of ``turnover_cost`` per unit of weight traded between consecutive samples (the
        trainer then feeds batches of consecutive decisions).
        """
        return head_loss(self.head, output.prediction, target, turnover_cost)


def batch_len(inputs: Any) -> int:
    """Samples in a model input or target: a tensor, or a dict of tensors (batch first)."""
    return len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)


def split_batch(inputs: Any, size: int) -> list[Any]:
    """A tensor, or a dict of tensors, cut along the batch into pieces of at most ``size``."""
    if isinstance(inputs, dict):
        pieces = {k: v.split(size) for k, v in inputs.items()}
        return [dict(zip(pieces, part, strict=True)) for part in zip(*pieces.values(), strict=True)]
    return list(inputs.split(size))


def head_loss(
    head: Head, prediction: torch.Tensor, target: torch.Tensor, turnover_cost: float = 0.0
) -> torch.Tensor:
    if head == "regression":
        return nn.functional.mse_loss(prediction, target)
    if head == "classification":
        return nn.functional.cross_entropy(
            prediction.reshape(-1, N_CLASSES), target.reshape(-1).long()
        )
    if head == "direction":
        return nn.functional.binary_cross_entropy_with_logits(prediction, target.float())
    if head in ("portfolio", "allocation"):
        returns = (prediction * target).sum(dim=-1)  # one portfolio return per sample
        if turnover_cost > 0 and len(prediction) > 1:  # samples are consecutive decisions
            traded = (prediction[1:] - prediction[:-1]).abs().sum(dim=-1)
            returns = returns[1:] - turnover_cost * traded
        return -returns.mean() / (returns.std(unbiased=False) + 1e-8)
    raise ValueError(f"unknown head {head!r}")
