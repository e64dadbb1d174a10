"""Stockformer: cross-asset attention over a multivariate window (chapter 43).

Pipeline for ``x`` ``[B, A, T, F]`` (A assets, T hourly steps, F features per asset):

1. **Token embedding** — a Conv1d over time (kernel 3) maps each asset's F features to
   ``d_model`` tokens, shared by all assets, plus a sinusoidal positional encoding. The
   padding is *causal* (two zeros on the left), not Informer's circular padding: circular
   padding would mix the oldest bar of the window into the token of the newest one — the bar
   the decision reacts to — and invent an adjacency that never happened in the market. With
   causal padding the token of step t is built from bars t-2..t only.
2. **Cross-ticker attention** — at every time step, multi-head attention across the A
   assets (``[B·T, A, d]``), so lead-lag relations are learnt per step rather than after
   pooling time away. Its head-averaged map is ``[B, T, A, A]`` (query asset → key asset).
3. **Encoder** — per asset, ``n_layers`` of ProbSparse (or full) self-attention over time
   with a feed-forward block, and between two layers Informer's *distilling*: Conv1d(k=3) →
   LayerNorm → ELU → MaxPool(3, stride 2), halving the length (168 → 84 → 42).
4. **Head** — from each asset's *last* distilled step (see :meth:`Stockformer.forward`):
   regression ``[B, A]``, direction logits ``[B, A]`` or allocation ``tanh`` ``[B, A]``.

No weight is tied to an asset's slot (no asset embedding): the model is equivariant to
permutations of the assets, and one set of weights serves any asset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from models.base import ModelOutput, TradingModel
from models.probsparse import ProbSparseAttention

StockformerHead = Literal["regression", "direction", "allocation"]
AttentionKind = Literal["full", "probsparse"]


@dataclass(frozen=True)
class StockformerConfig:
    """Hyperparameters; defaults are the chapter's where it gives one.

    From the chapter: ``d_model`` 128, ``n_heads`` 8, ``n_layers`` 3 (``n_encoder_layers``),
    ``dropout`` 0.1, ``attention`` "probsparse", ``head`` "allocation", ``n_assets`` 5 (its
    training config, "03: Model Training"); ``seq_len`` 168 (``lookback`` = 7 days hourly,
    "01: Data Preparation" and the hyperparameter table); ``kernel_size`` 3 (TokenEmbedding);
    ``factor`` 5 (the ProbSparse snippet). Not in the chapter: ``d_ff`` 2·d_model (Informer
    uses 4·d_model, which at the default size adds ~190 MFLOP, ≈ 2 ms on one CPU core, to
    every decision), ``n_features`` 6 (the project's per-asset feature set), ``distil`` True
    (Informer's default).
    """

    n_assets: int = 5
    n_features: int = 6
    seq_len: int = 168
    d_model: int = 128
    n_heads: int = 8
    n_layers: int = 3
    d_ff: int = 256
    dropout: float = 0.1
    kernel_size: int = 3
    factor: int = 5
    attention: AttentionKind = "probsparse"
    distil: bool = True
    head: StockformerHead = "allocation"

    def __post_init__(self) -> None:
        if self.head not in ("regression", "direction", "allocation"):
            raise ValueError(f"unknown Stockformer head {self.head!r}")
        if self.attention not in ("full", "probsparse"):
            raise ValueError(f"unknown attention {self.attention!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if min(self.n_assets, self.n_features, self.seq_len, self.n_layers, self.factor) < 1:
            raise ValueError("n_assets, n_features, seq_len, n_layers and factor must be ≥ 1")

    def encoder_lengths(self) -> list[int]:
        """Sequence length seen by each encoder layer (distilling halves it, rounding up)."""
        lengths = [self.seq_len]
        for _ in range(self.n_layers - 1):
            lengths.append(-(-lengths[-1] // 2) if self.distil else lengths[-1])
        return lengths


def _causal_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` over time of ``x`` ``[N, L, C]`` → ``[N, L, C_out]``, left-padded."""
    padded = nn.functional.pad(x.transpose(1, 2), (conv.kernel_size[0] - 1, 0))
    return conv(padded).transpose(1, 2)


def _sinusoidal_encoding(length: int, d_model: int) -> torch.Tensor:
    """Fixed ``[length, d_model]`` positional encoding (Vaswani et al.); no weights to fit."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model)
    )
    encoding = torch.zeros(length, d_model)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return encoding


class _CrossTickerAttention(nn.Module):
    """Multi-head self-attention across the assets of one time step, ``[M, A, d]``.

    With A ≈ 5 the score tensor is tiny, so it is computed explicitly (one path for the
    prediction and for the explanation maps); ``nn.MultiheadAttention``'s fused inference
    path spends several times longer re-laying out its projections for such short sequences.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        m, n_assets, d_model = x.shape
        q, k, v = self.qkv(x).view(m, n_assets, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) * (q.shape[-1] ** -0.5)).softmax(dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(m, n_assets, d_model)
        return self.out(mixed), weights.mean(dim=1) if need_weights else None


class _EncoderLayer(nn.Module):
    """Pre-norm self-attention + feed-forward block over time.

    Pre-norm (rather than Informer's post-norm) keeps an identity path through the residual
    stream, which trains stably without warm-up on the small, noisy data sets of trading.
    """

    def __init__(self, config: StockformerConfig) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.d_model)
        self.attention = ProbSparseAttention(
            config.d_model,
            config.n_heads,
            factor=config.factor,
            full_queries=config.attention == "full",
        )
        self.feed_forward = nn.Sequential(
            nn.LayerNorm(config.d_model),
            nn.Linear(config.d_model, config.d_ff),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.d_ff, config.d_model),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        attended = self.attention(self.attention_norm(x), need_weights=need_weights)
        x = x + self.dropout(attended.context)
        x = x + self.dropout(self.feed_forward(x))
        return x, attended.weights, attended.queries


class _DistilLayer(nn.Module):
    """Informer's self-attention distilling: Conv1d(k=3) → norm → ELU → MaxPool(3, 2).

    The max-pool keeps the dominant features of each neighbourhood and halves the length
    (⌈L/2⌉), so the next layer costs half. LayerNorm replaces Informer's BatchNorm: it
    normalises each token on its own, so a decision does not depend on which other windows
    share its batch, and training and inference (batch 1) compute the same function.
    """

    def __init__(self, d_model: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel_size)
        self.norm = nn.LayerNorm(d_model)
        self.pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.elu(self.norm(_causal_conv(self.conv, x)))
        return self.pool(x.transpose(1, 2)).transpose(1, 2)


class Stockformer(TradingModel):
    """Cross-ticker + ProbSparse-encoder model for ``[B, A, T, F]`` windows (module docstring)."""

    name: ClassVar[str] = "stockformer"
    input_kind: ClassVar[Literal["assets"]] = "assets"
    config_class: ClassVar[type] = StockformerConfig

    def __init__(self, config: StockformerConfig | None = None) -> None:
        config = config or StockformerConfig()
        super().__init__(config)
        d_model = config.d_model
        self.token_embedding = nn.Conv1d(config.n_features, d_model, config.kernel_size)
        self.register_buffer(
            "positional_encoding", _sinusoidal_encoding(config.seq_len, d_model), persistent=False
        )
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_ticker = _CrossTickerAttention(d_model, config.n_heads)
        self.cross_dropout = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList(_EncoderLayer(config) for _ in range(config.n_layers))
        self.distil = nn.ModuleList(
            _DistilLayer(d_model, config.kernel_size)
            for _ in range(config.n_layers - 1 if config.distil else 0)
        )
        self.final_norm = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> ModelOutput:
        """``x`` ``[B, A, T, F]`` float32 → ``prediction`` ``[B, A]``.

        The head reads each asset's last distilled step: the decision is taken at the close
        of the newest bar, the last token is the one built from it, and every encoder layer
        already mixed the whole window into it (active queries by softmax attention, the
        others by the mean of the values); mean-pooling would weigh a week-old bar as much as
        the newest one.

        With ``return_attention``, ``attention`` holds (H heads, L_i = the length of layer
        i, ``config.encoder_lengths()``; u_i its active queries, = L_i for full attention):

        * ``"cross_ticker"`` ``[B, T, A, A]`` — head-averaged, row = query asset at step t;
        * ``"temporal_{i}"`` ``[B, A, H, u_i, L_i]`` — softmax weights of layer i's active
          queries over its keys (inactive ProbSparse queries attend uniformly:
          :func:`models.probsparse.expand_attention` rebuilds the dense map);
        * ``"temporal_{i}_queries"`` ``[B, A, H, u_i]`` — the active query positions.
        """
        config = self.config
        expected = (config.n_assets, config.seq_len, config.n_features)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected x of shape [B, {', '.join(map(str, expected))}], got {list(x.shape)}"
            )
        batch, n_assets, length, _ = x.shape
        tokens = _causal_conv(self.token_embedding, x.reshape(batch * n_assets, length, -1))
        tokens = self.embedding_dropout(tokens + self.positional_encoding)

        # Cross-ticker attention: one attention over the assets per (sample, time step).
        per_step = tokens.view(batch, n_assets, length, -1).transpose(1, 2)
        per_step = per_step.reshape(batch * length, n_assets, -1)
        mixed, cross_weights = self.cross_ticker(self.cross_norm(per_step), return_attention)
        per_step = per_step + self.cross_dropout(mixed)
        hidden = per_step.view(batch, length, n_assets, -1).transpose(1, 2)
        hidden = hidden.reshape(batch * n_assets, length, -1)

        attention: dict[str, torch.Tensor] = {}
        if cross_weights is not None:
            attention["cross_ticker"] = cross_weights.view(batch, length, n_assets, n_assets)
        for index, layer in enumerate(self.encoder):
            hidden, weights, queries = layer(hidden, need_weights=return_attention)
            if weights is not None and queries is not None:
                attention[f"temporal_{index}"] = weights.unflatten(0, (batch, n_assets))
                attention[f"temporal_{index}_queries"] = queries.unflatten(0, (batch, n_assets))
            if index < len(self.distil):
                hidden = self.distil[index](hidden)

        last = self.final_norm(hidden[:, -1])
        prediction = self.output(last).view(batch, n_assets)
        if config.head == "allocation":
            prediction = torch.tanh(prediction)
        return ModelOutput(prediction=prediction, attention=attention)
