"""Multi-scale attention network (seed chapter 003, "Multi-Scale Attention for Financial Time
Series"): one transformer encoder per bar interval, a cross-scale attention in which each
scale's latest state reads every scale's whole window, a gated fusion of the scales and
multi-horizon regression plus direction heads.

Why several scales: a 1m window sees microstructure but not the trend, a 1d window sees the
trend but not the entry; the model reads both and learns, per decision, how much each matters.

Input alignment: at a decision time the dataset hands each scale a window that ends with that
scale's last *closed* bar, so the windows do not end at the same timestamp (the 1h bar still
forming at a 1m decision is absent). Nothing here assumes a common end time: positional
encodings are per scale and count bars back from each window's own end, and the cross-scale
attention is content based (no positional alignment between scales).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from models.base import InputKind, ModelOutput, TradingModel

_SEQUENCE_FIELDS = ("scales", "seq_lens", "n_layers", "n_heads", "horizons")


@dataclass(frozen=True)
class MultiScaleConfig:
    """Hyperparameters of :class:`MultiScaleAttentionNet` (stored in checkpoints).

    Per-scale fields (``seq_lens``, ``n_layers``, ``n_heads``) are tuples aligned with
    ``scales``. Defaults follow the chapter's "scale-specific configurations" table —
    window (layers, heads): 1m 1440 (2, 4), 5m 288 (3, 8), 1h 168 (4, 8), 1d 252 (4, 8) —
    and its model code: ``d_model=128``, ``cross_heads=8``, ``dropout=0.1``, feed-forward
    ``4·d_model``; ``n_features=16`` is the size of its per-scale feature set. (Its
    architecture figure draws shorter 1h/1d windows, L=24 and L=30.) These sizes cost tens of
    milliseconds per decision on one CPU thread — the 1m encoder alone attends over 1440
    steps; a per-minute budget of a few milliseconds needs e.g. ``seq_lens=(60, 48, 24, 30)``,
    ``d_model=64`` and one layer per scale.
    """

    scales: tuple[str, ...] = ("1m", "5m", "1h", "1d")
    seq_lens: tuple[int, ...] = (1440, 288, 168, 252)
    n_layers: tuple[int, ...] = (2, 3, 4, 4)
    n_heads: tuple[int, ...] = (4, 8, 8, 8)
    n_features: int = 16
    d_model: int = 128
    ff_mult: int = 4
    cross_heads: int = 8
    dropout: float = 0.1
    horizons: tuple[str, ...] = ("short", "medium", "long")
    head: str = "regression"
    regression_weight: float = 1.0
    direction_weight: float = 1.0

    def __post_init__(self) -> None:
        # A config rebuilt from JSON has lists; tuples keep it hashable and equal to the original.
        for name in _SEQUENCE_FIELDS:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.head != "regression":
            raise ValueError(f"multiscale horizon outputs are regression only, got {self.head!r}")
        if not self.scales or len(set(self.scales)) != len(self.scales):
            raise ValueError(f"scales must be non-empty and unique, got {self.scales}")
        for name in ("seq_lens", "n_layers", "n_heads"):
            if len(getattr(self, name)) != len(self.scales):
                raise ValueError(f"{name} needs one value per scale {self.scales}")
        if min(self.seq_lens) < 1 or min(self.n_layers) < 1:
            raise ValueError("seq_lens and n_layers must be positive")
        for heads in (*self.n_heads, self.cross_heads):
            if heads < 1 or self.d_model % heads:
                raise ValueError(f"d_model={self.d_model} is not divisible by {heads} heads")
        if not self.horizons or len(set(self.horizons)) != len(self.horizons):
            raise ValueError(f"horizons must be non-empty and unique, got {self.horizons}")

    def window_lengths(self) -> dict[str, int]:
        """``{scale: bars in its input window}`` — what the dataset must provide."""
        return dict(zip(self.scales, self.seq_lens, strict=True))


class ScaleEncoder(nn.Module):
    """Encodes one scale's window: projection, learnable positions, pre-LN transformer.

    Positions are learned (not sinusoidal) because a bar's meaning depends on how many bars
    ago it closed in *this* scale; pre-LN (``norm_first``) keeps deep stacks trainable without
    warm-up, and the final LayerNorm gives every scale outputs on the same footing for the
    cross-scale attention.
    """

    def __init__(
        self,
        seq_len: int,
        n_features: int,
        d_model: int,
        n_layers: int,
        n_heads: int,
        ff_mult: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.input_proj = nn.Linear(n_features, d_model)
        self.positions = nn.Parameter(torch.randn(seq_len, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=ff_mult * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` → ``[B, T, d_model]``."""
        return self.norm(self.encoder(self.input_proj(x) + self.positions))


class CrossScaleAttention(nn.Module):
    """Each scale's latest state queries every scale's full encoded window.

    Queries use one projection per query scale, keys/values one per key scale, so a daily
    context can inform a minute decision and vice versa. The softmax runs separately over each
    key scale's steps: a joint softmax over the concatenated windows would let the longest
    window (1440 minute bars) swamp a 30-bar daily one by sheer count. The per-key-scale
    contexts are concatenated and projected, so the model — not a fixed mean — decides how
    much each key scale contributes.
    """

    def __init__(self, n_scales: int, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.query_projs = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(n_scales))
        self.kv_projs = nn.ModuleList(nn.Linear(d_model, 2 * d_model) for _ in range(n_scales))
        self.out_proj = nn.Linear(n_scales * d_model, d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, windows: list[torch.Tensor], need_weights: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``windows[i]`` ``[B, T_i, D]`` → (states ``[B, S, D]``, weights).

        ``weights[j]`` is ``[B, S, T_j]``: how each query scale spread its attention over key
        scale ``j``'s steps (mean over heads); empty unless ``need_weights``.
        """
        batch, d_model = windows[0].shape[0], windows[0].shape[-1]
        head_dim = d_model // self.n_heads
        latest = torch.stack([w[:, -1] for w in windows], dim=1)  # [B, S, D]
        queries = torch.stack([proj(latest[:, i]) for i, proj in enumerate(self.query_projs)], 1)
        queries = queries.view(batch, -1, self.n_heads, head_dim).transpose(1, 2)  # [B, H, S, d]
        contexts, weights = [], []
        for window, kv_proj in zip(windows, self.kv_projs, strict=True):
            keys, values = (
                t.view(batch, -1, self.n_heads, head_dim).transpose(1, 2)  # [B, H, T, d]
                for t in kv_proj(window).chunk(2, dim=-1)
            )
            attn = torch.softmax(queries @ keys.transpose(-2, -1) * head_dim**-0.5, dim=-1)
            contexts.append((attn @ values).transpose(1, 2).reshape(batch, -1, d_model))
            if need_weights:
                weights.append(attn.mean(dim=1))
        mixed = self.out_proj(torch.cat(contexts, dim=-1))
        return self.norm(latest + self.dropout(mixed)), weights


class GatedScaleFusion(nn.Module):
    """Fuses the scale states with learned importance × dynamic gates.

    The importance is a global prior over scales (a softmaxed parameter vector); the gates
    (a small MLP per scale, sigmoid) let the current market state turn a scale down. Their
    normalised product weights a *sum* of the scale states, so the effective weights reported
    for explanations are exactly the mixing weights of the fused representation. The product is
    normalised in log space (log-softmax + log-sigmoid), which cannot underflow to 0/0 when
    every gate is closed.
    """

    def __init__(self, n_scales: int, d_model: int, dropout: float) -> None:
        super().__init__()
        self.importance_logits = nn.Parameter(torch.zeros(n_scales))
        hidden = max(d_model // 4, 1)
        self.gates = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, 1))
            for _ in range(n_scales)
        )
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 2 * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(2 * d_model, d_model),
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, states: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, S, D]`` → (fused ``[B, D]``, importance ``[S]``, gates ``[B, S]``,
        effective weights ``[B, S]``)."""
        gate_logits = torch.cat([gate(states[:, i]) for i, gate in enumerate(self.gates)], -1)
        log_importance = torch.log_softmax(self.importance_logits, dim=0)
        effective = torch.softmax(log_importance + nn.functional.logsigmoid(gate_logits), dim=-1)
        pooled = (effective.unsqueeze(-1) * states).sum(dim=1)
        fused = self.norm(pooled + self.mlp(pooled))
        return fused, log_importance.exp(), torch.sigmoid(gate_logits), effective


def _mlp_head(d_model: int, dropout: float) -> nn.Sequential:
    """One scalar output with its own hidden layer, so horizons do not share a readout."""
    hidden = max(d_model // 2, 1)
    return nn.Sequential(
        nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
    )


class MultiScaleAttentionNet(TradingModel):
    """Multi-scale attention network (chapter 003).

    ``forward(x)`` takes ``{scale: [B, T_scale, n_features]}`` and returns a
    :class:`ModelOutput` whose ``prediction`` is ``[B, len(horizons)]`` future log returns
    (columns in ``config.horizons`` order) and ``extras["direction"]`` the ``[B]`` logit of
    "up". With ``return_attention=True``, ``attention`` holds:

    * ``"scale_importance"`` ``[S]`` — the softmaxed learned importance (sums to 1);
    * ``"gates"`` ``[B, S]`` — the dynamic sigmoid gates;
    * ``"effective_scale_weights"`` ``[B, S]`` — importance × gate, normalised per sample:
      the weights that actually mix the scales, to plot as "scale importance";
    * ``"cross_scale"`` — ``{query_scale: {key_scale: [B, T_key]}}``, the head-averaged
      attention of the query scale's latest state over the key scale's window (rows sum to 1).
    """

    name: ClassVar[str] = "multiscale"
    input_kind: ClassVar[InputKind] = "scales"
    config_class: ClassVar[type] = MultiScaleConfig

    def __init__(self, config: MultiScaleConfig) -> None:
        super().__init__(config)
        d = config.d_model
        self.encoders = nn.ModuleDict(
            {
                scale: ScaleEncoder(
                    seq_len, config.n_features, d, layers, heads, config.ff_mult, config.dropout
                )
                for scale, seq_len, layers, heads in zip(
                    config.scales, config.seq_lens, config.n_layers, config.n_heads, strict=True
                )
            }
        )
        self.cross_scale = CrossScaleAttention(
            len(config.scales), d, config.cross_heads, config.dropout
        )
        self.fusion = GatedScaleFusion(len(config.scales), d, config.dropout)
        self.horizon_heads = nn.ModuleList(_mlp_head(d, config.dropout) for _ in config.horizons)
        self.direction_head = _mlp_head(d, config.dropout)

    def forward(self, x: Mapping[str, torch.Tensor], return_attention: bool = False) -> ModelOutput:
        self._check_inputs(x)
        windows = [self.encoders[scale](x[scale]) for scale in self.config.scales]
        states, cross_weights = self.cross_scale(windows, need_weights=return_attention)
        fused, importance, gates, effective = self.fusion(states)
        prediction = torch.cat([head(fused) for head in self.horizon_heads], dim=-1)
        output = ModelOutput(
            prediction=prediction, extras={"direction": self.direction_head(fused).squeeze(-1)}
        )
        if return_attention:
            scales = self.config.scales
            output.attention = {
                "scale_importance": importance,
                "gates": gates,
                "effective_scale_weights": effective,
                "cross_scale": {
                    query: {key: w[:, i] for key, w in zip(scales, cross_weights, strict=True)}
                    for i, query in enumerate(scales)
                },
            }
        return output

    def loss_terms(
        self, output: ModelOutput, target: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The unweighted parts of :meth:`loss`, for logging each head's progress.

        ``target["returns"]`` ``[B, H]`` future log returns at the horizons,
        ``target["direction"]`` ``[B]`` 1.0 for up, 0.0 otherwise.
        """
        missing = {"returns", "direction"} - set(target)
        if missing:
            raise KeyError(f"multiscale target lacks {sorted(missing)}")
        returns, direction = target["returns"], target["direction"]
        if returns.shape != output.prediction.shape:
            raise ValueError(
                f"target returns {tuple(returns.shape)} != prediction "
                f"{tuple(output.prediction.shape)} (one column per horizon {self.config.horizons})"
            )
        logits = output.extras["direction"]
        if direction.shape != logits.shape:
            raise ValueError(f"target direction {tuple(direction.shape)} != {tuple(logits.shape)}")
        return {
            "regression": nn.functional.mse_loss(
                output.prediction, returns.to(output.prediction.dtype)
            ),
            "direction": nn.functional.binary_cross_entropy_with_logits(
                logits, direction.to(logits.dtype)
            ),
        }

    def loss(self, output: ModelOutput, target: Any, turnover_cost: float = 0.0) -> torch.Tensor:
        """MSE over the horizons + BCE on the direction, weighted by the config (forecasts
        carry no turnover: costs enter through the direction labels)."""
        terms = self.loss_terms(output, target)
        return (
            self.config.regression_weight * terms["regression"]
            + self.config.direction_weight * terms["direction"]
        )

    def _check_inputs(self, x: Mapping[str, torch.Tensor]) -> None:
        """Fail with the expected layout rather than a shape error deep inside an encoder."""
        cfg = self.config
        if not isinstance(x, Mapping):
            raise TypeError(f"multiscale expects {{scale: [B, T, F]}}, got {type(x).__name__}")
        missing = [s for s in cfg.scales if s not in x]
        unexpected = [s for s in x if s not in cfg.scales]
        if missing or unexpected:
            raise ValueError(
                f"multiscale needs scales {list(cfg.scales)}: missing {missing}, "
                f"unexpected {unexpected}"
            )
        batch = x[cfg.scales[0]].shape[0]
        for scale, seq_len in cfg.window_lengths().items():
            expected = (batch, seq_len, cfg.n_features)
            if tuple(x[scale].shape) != expected:
                raise ValueError(
                    f"scale {scale!r}: expected [B, T, F] = {expected}, got {tuple(x[scale].shape)}"
                )
