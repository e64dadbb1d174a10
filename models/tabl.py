"""Temporal Attention-augmented Bilinear Network (seed chapter 004; Tran, Iosifidis,
Kanniainen, Gabbouj, "Temporal Attention-Augmented Bilinear Network for Financial Time-Series
Data Analysis", IEEE TNNLS 2019, arXiv:1712.00975).

Why bilinear: a window is a matrix ``X ∈ R^{D×T}`` (features × time). A bilinear layer maps it
to ``W1·X·W2 + B`` — ``W1`` mixes features, ``W2`` mixes time — with ``D'·D + T·T'`` weights
instead of the ``D·T·D'·T'`` a dense layer on the flattened window needs, and it keeps the
feature and time axes separate, so what a layer does to time stays readable.

Why temporal attention: the TABL layer learns, per sample and per (projected) feature row, a
softmax over the time steps and mixes the attended and the plain representation with a learned
``λ ∈ [0, 1]``; the softmax shows which steps of the window the decision leaned on.

Where this follows the paper rather than the chapter's code: the chapter's "TABL" is a Bahdanau
attention over the raw input concatenated beside a bilinear projection; the paper's layer
(implemented here) puts the attention *inside* the bilinear map (``X̄ = W1·X``,
``α = softmax_T(X̄·W)``, ``X̃ = λ(X̄ ⊙ α) + (1 − λ)X̄``, ``Y = φ(X̃·W2 + B)``), and the network
ends in the TABL layer whose output is the ``[3 × 1]`` class scores (topologies B/C(TABL)).
Details taken from the authors' reference code (github.com/viebboy/TABL): the diagonal of the
attention matrix ``W`` is held at ``1/T`` with the other entries learnable and initialised to
``1/T`` (so the first attention is exactly uniform), ``λ`` starts at 0.5, the projections are
He-uniform, hidden layers are ReLU + dropout, and the weights carry max-norm constraints
(3 on the projections, 5 on the attention matrix). That code mixes ``λ·X̄ + (1 − λ)·X̄⊙α``;
the paper's equation, used here, puts ``λ`` on the attended term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import torch
from torch import nn

from models.base import N_CLASSES, ModelOutput, TradingModel


def _he_uniform(rows: int, cols: int, fan_in: int) -> nn.Parameter:
    """He-uniform weight (the reference code's initialiser) with an explicit fan-in, because
    the two factors of a bilinear map read their input along different axes."""
    bound = math.sqrt(6.0 / fan_in)
    return nn.Parameter(torch.empty(rows, cols).uniform_(-bound, bound))


def _max_norm(weight: torch.Tensor, limit: float | None, dim: int) -> torch.Tensor:
    """``weight`` with every slice along ``dim`` rescaled to an L2 norm of at most ``limit``.

    The paper trains with max-norm constraints, which Keras applies by projecting the weights
    after each update. Applying the projection in the forward pass instead keeps the constraint
    without a hook in the (shared) trainer; ``torch.renorm`` is differentiable, so the gradient
    simply loses its component that would grow a capped slice.
    """
    return weight if limit is None else torch.renorm(weight, 2, dim, limit)


class BilinearLayer(nn.Module):
    """``φ(W1·X·W2 + B)``: ``[B, D, T] → [B, D', T']``.

    Constraints (as in the reference code): each output feature's weights over the input
    features (a row of ``W1``) and each output step's weights over the input steps (a column of
    ``W2``) have norm at most ``max_norm``.
    """

    def __init__(
        self,
        in_features: int,
        in_steps: int,
        out_features: int,
        out_steps: int,
        activation: nn.Module | None = None,
        max_norm: float | None = None,
    ) -> None:
        super().__init__()
        self.w1 = _he_uniform(out_features, in_features, fan_in=in_features)
        self.w2 = _he_uniform(in_steps, out_steps, fan_in=in_steps)
        self.bias = nn.Parameter(torch.zeros(out_features, out_steps))
        self.activation = activation if activation is not None else nn.Identity()
        self.max_norm = max_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w1 = _max_norm(self.w1, self.max_norm, dim=0)
        w2 = _max_norm(self.w2, self.max_norm, dim=1)
        return self.activation(w1 @ x @ w2 + self.bias)


class TemporalAttention(nn.Module):
    """The paper's temporal attention and λ mix, for ``n_heads`` independent heads at once.

    Each head ``h`` has its own ``W_h ∈ R^{T×T}`` and ``λ_h``. For a projected window
    ``X̄ ∈ R^{D'×T}``: ``α_h = softmax over time of X̄·W_h`` (one distribution per feature row)
    and ``X̃_h = λ_h(X̄ ⊙ α_h) + (1 − λ_h)X̄``.

    ``W_h``'s diagonal is fixed at ``1/T`` and its other entries start at ``1/T``: every column
    of ``X̄·W_h`` is then the row mean, so the first attention is uniform and training, not the
    initialisation, decides where to look. ``λ_h = sigmoid(logit)`` keeps it in [0, 1] without
    clipping after each step (which the trainer would have to do); it starts at 0.5 like the
    reference code. Each row of ``W_h`` (one input step's influence on every score) has norm at
    most ``max_norm``.
    """

    def __init__(self, steps: int, n_heads: int = 1, max_norm: float | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((n_heads, steps, steps), 1.0 / steps))
        self.lambda_logit = nn.Parameter(torch.zeros(n_heads))
        self.max_norm = max_norm
        eye = torch.eye(steps)
        # Derived from ``steps``, so not part of the state dict.
        self.register_buffer("off_diagonal", 1.0 - eye, persistent=False)
        self.register_buffer("diagonal", eye / steps, persistent=False)

    @property
    def lam(self) -> torch.Tensor:
        """``[n_heads]`` mixing weights λ in [0, 1]."""
        return torch.sigmoid(self.lambda_logit)

    def forward(self, xbar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``xbar`` ``[B, D', T]`` → (``X̃`` ``[B, H, D', T]``, ``α`` ``[B, H, D', T]``)."""
        heads, steps, _ = self.weight.shape
        free = self.weight * self.off_diagonal
        free = _max_norm(free.reshape(heads * steps, steps), self.max_norm, dim=0)
        weight = free.reshape(heads, steps, steps) + self.diagonal
        xbar = xbar.unsqueeze(1)  # one copy per head: [B, 1, D', T]
        alpha = torch.softmax(xbar @ weight, dim=-1)
        lam = self.lam.view(heads, 1, 1)
        return lam * (xbar * alpha) + (1.0 - lam) * xbar, alpha


class TABLLayer(nn.Module):
    """Temporal Attention-augmented Bilinear Layer: ``[B, D, T] → [B, D', T']``.

    ``X̄ = W1·X``; ``α = softmax_T(X̄·W)``; ``X̃ = λ(X̄ ⊙ α) + (1 − λ)X̄``;
    ``Y = φ(X̃·W2 + B)``. ``forward`` returns ``(Y, α)`` with ``α`` ``[B, D', T]`` (each row a
    distribution over the ``T`` input steps); ``lam`` is the scalar λ.
    """

    def __init__(
        self,
        in_features: int,
        in_steps: int,
        out_features: int,
        out_steps: int,
        activation: nn.Module | None = None,
        max_norm: float | None = None,
        attention_max_norm: float | None = None,
    ) -> None:
        super().__init__()
        self.w1 = _he_uniform(out_features, in_features, fan_in=in_features)
        self.attention = TemporalAttention(in_steps, 1, attention_max_norm)
        self.w2 = _he_uniform(in_steps, out_steps, fan_in=in_steps)
        self.bias = nn.Parameter(torch.zeros(out_features, out_steps))
        self.activation = activation if activation is not None else nn.Identity()
        self.max_norm = max_norm

    @property
    def lam(self) -> torch.Tensor:
        """The scalar λ in [0, 1] (0: plain bilinear layer, 1: fully attended)."""
        return self.attention.lam[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xbar = _max_norm(self.w1, self.max_norm, dim=0) @ x
        mixed, alpha = self.attention(xbar)
        w2 = _max_norm(self.w2, self.max_norm, dim=1)
        return self.activation(mixed[:, 0] @ w2 + self.bias), alpha[:, 0]


class MultiHeadTABL(nn.Module):
    """Several TABL attention heads over one shared feature projection: ``[B, D, T] → [B, D',
    T']``.

    As in the chapter's multi-head TABL, the projection ``X̄ = W1·X`` is shared, each head
    attends on its own (``W_h``, ``λ_h``), and the heads are concatenated and projected back:
    the ``H`` attended windows ``X̃_h ∈ R^{D'×T}`` are stacked along the feature axis and mapped
    by ``P ∈ R^{D'×H·D'}`` before the temporal projection, ``Y = φ((P·[X̃_1; …; X̃_H])·W2 + B)``.
    Concatenation + projection rather than an average because it lets each output feature take
    what it needs from each head (an average forces every head into the same role with equal
    weight, so heads that specialise — recent steps vs. an older event — would blur together).
    ``forward`` returns ``(Y, α)`` with ``α`` ``[B, H, D', T]``; ``lam`` is ``[H]``.
    """

    def __init__(
        self,
        in_features: int,
        in_steps: int,
        out_features: int,
        out_steps: int,
        n_heads: int,
        activation: nn.Module | None = None,
        max_norm: float | None = None,
        attention_max_norm: float | None = None,
    ) -> None:
        super().__init__()
        self.w1 = _he_uniform(out_features, in_features, fan_in=in_features)
        self.attention = TemporalAttention(in_steps, n_heads, attention_max_norm)
        self.combine = _he_uniform(out_features, n_heads * out_features, n_heads * out_features)
        self.w2 = _he_uniform(in_steps, out_steps, fan_in=in_steps)
        self.bias = nn.Parameter(torch.zeros(out_features, out_steps))
        self.activation = activation if activation is not None else nn.Identity()
        self.max_norm = max_norm

    @property
    def lam(self) -> torch.Tensor:
        """``[n_heads]`` λ values in [0, 1]."""
        return self.attention.lam

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xbar = _max_norm(self.w1, self.max_norm, dim=0) @ x
        mixed, alpha = self.attention(xbar)  # [B, H, D', T]
        stacked = mixed.flatten(1, 2)  # heads along the feature axis: [B, H·D', T]
        combined = _max_norm(self.combine, self.max_norm, dim=0) @ stacked
        w2 = _max_norm(self.w2, self.max_norm, dim=1)
        return self.activation(combined @ w2 + self.bias), alpha


@dataclass(frozen=True)
class TABLConfig:
    """Hyperparameters of :class:`TABLNet` (stored in checkpoints).

    Topology: the paper's B/C(TABL) — input ``[input_dim × seq_len]``, one bilinear layer per
    entry of ``hidden`` (``(features, steps)`` each, ReLU + dropout), then a TABL layer to the
    ``[3 × 1]`` class scores. The paper's C(TABL) for 10-level LOB data is
    ``[40×10] → [60×10] → [120×5] → [3×1]`` (``input_dim=40, seq_len=10,
    hidden=((60, 10), (120, 5))``); an empty ``hidden`` is its A(TABL).

    Defaults are the chapter's: its training config (``seq_len=100``, ``input_dim=6`` OHLCV
    features, ``hidden_T=20``, ``hidden_D=32``, ``n_heads=4``, ``dropout=0.2``), with its one
    hidden size used for both of C(TABL)'s hidden layers. The chapter's ``attention_dim`` has
    no counterpart: the paper's attention matrix is ``T×T``. ``max_norm=3`` (projections) and
    ``attention_max_norm=5`` are the reference code's constraints; ``None`` disables one.
    ``n_heads=1`` is the paper's single-head TABL layer.
    """

    input_dim: int = 6
    seq_len: int = 100
    hidden: tuple[tuple[int, int], ...] = ((32, 20), (32, 20))
    n_heads: int = 4
    dropout: float = 0.2
    max_norm: float | None = 3.0
    attention_max_norm: float | None = 5.0
    head: str = "classification"

    def __post_init__(self) -> None:
        # A config rebuilt from JSON has lists; tuples keep it hashable and equal to the original.
        object.__setattr__(self, "hidden", tuple((int(d), int(t)) for d, t in self.hidden))
        if self.head != "classification":
            raise ValueError(f"TABL predicts down/stationary/up only, got head {self.head!r}")
        sizes = (self.input_dim, self.seq_len, self.n_heads, *(n for s in self.hidden for n in s))
        if min(sizes) < 1:
            raise ValueError(f"sizes must be positive, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def attention_steps(self) -> int:
        """Length of the time axis the TABL layer attends over: ``seq_len`` without hidden
        layers, else the last hidden layer's steps (each a learned mix of the window's bars)."""
        return self.hidden[-1][1] if self.hidden else self.seq_len


class TABLNet(TradingModel):
    """TABL network (chapter 004): ``[B, seq_len, input_dim]`` windows → ``[B, 3]`` logits of
    (down, stationary, up).

    With ``return_attention=True``, ``attention`` holds:

    * ``"temporal"`` — the TABL attention averaged over its feature rows, ``[B, S]`` (one head)
      or ``[B, n_heads, S]``, each row summing to 1, where ``S = config.attention_steps``
      (``seq_len`` for A(TABL), so each weight is one bar of the window);
    * ``"lambda"`` — λ, a scalar tensor (one head) or ``[n_heads]``.
    """

    name: ClassVar[str] = "tabl"
    input_kind: ClassVar[str] = "sequence"
    config_class: ClassVar[type] = TABLConfig

    def __init__(self, config: TABLConfig) -> None:
        super().__init__(config)
        shapes = [(config.input_dim, config.seq_len), *config.hidden]
        self.hidden = nn.ModuleList(
            BilinearLayer(d_in, t_in, d_out, t_out, nn.ReLU(), config.max_norm)
            for (d_in, t_in), (d_out, t_out) in pairwise(shapes)
        )
        self.dropout = nn.Dropout(config.dropout)
        d_in, t_in = shapes[-1]
        self.tabl: TABLLayer | MultiHeadTABL
        if config.n_heads == 1:
            self.tabl = TABLLayer(
                d_in,
                t_in,
                N_CLASSES,
                out_steps=1,
                max_norm=config.max_norm,
                attention_max_norm=config.attention_max_norm,
            )
        else:
            self.tabl = MultiHeadTABL(
                d_in,
                t_in,
                N_CLASSES,
                out_steps=1,
                n_heads=config.n_heads,
                max_norm=config.max_norm,
                attention_max_norm=config.attention_max_norm,
            )

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> ModelOutput:
        expected = (self.config.seq_len, self.config.input_dim)
        if x.dim() != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected [batch, {expected[0]}, {expected[1]}], got {tuple(x.shape)}"
            )
        h = x.transpose(1, 2)  # the paper's D×T orientation
        for layer in self.hidden:
            h = self.dropout(layer(h))
        scores, alpha = self.tabl(h)  # [B, 3, 1]; the paper's final softmax is in the loss
        output = ModelOutput(prediction=scores.squeeze(-1))
        if return_attention:
            output.attention = {"temporal": alpha.mean(dim=-2), "lambda": self.tabl.lam}
        return output
