"""Cross-asset attention network (chapter 47: cross-attention for multi-asset trading).

Each asset's window of bars is projected to ``d_model`` and encoded by a stack of layers that
alternate two attentions, so every bar of every asset can read both its own past and the other
assets:

1. **temporal self-attention** within each asset, causal (step ``t`` sees steps ``<= t``): the
   decision reads the last step, and causality keeps every earlier step an honest "what was
   known then" representation, so training on windows never leaks a bar into its own past;
2. **cross-asset attention per time step**: at every step ``t`` asset ``i``'s query attends to
   the *other* assets' keys and values at that same step (the diagonal is masked, since the
   temporal attention already covers the asset itself). Queries and keys have separate
   projections, so "i reads j" is learned apart from "j reads i" (asymmetric). The chapter's
   snippets average over time or keep only the last step before attending across assets, which
   throws away *when* the assets moved together; here nothing is pooled over time.

After the stack:

3. **lead–lag (temporal cross-) attention**: asset ``i`` at ``t`` attends to the other assets at
   ``t - k`` for ``k = 0..max_lag``; a softmax within each lag picks the source asset, and a
   learned vector of lag logits (softmaxed) weighs the lags. Their product is a distribution
   over (source asset, lag) per target asset — the ``"lead_lag"`` map the explanations rank;
4. **hierarchical context**: assets are attention-pooled into sector representations (within
   the sectors of ``config.groups``), sectors into a market representation, and each asset gets
   its sector's and the market's representation added back, so a decision can depend on "the
   whole sector is moving" without every asset re-deriving it pairwise.

The heads read the last step's per-asset representation. Every weight is shared across assets
except a learned asset embedding added to the input: attention alone is blind to *which* asset
a row is (an equivariant model cannot learn "BTC leads SOL" unless the features happen to tell
them apart), and the embedding gives it that identity. So the network is permutation-
equivariant: reorder the assets together with their embeddings and ``groups``, and the outputs
reorder the same way. With ``asset_embedding=False`` it is equivariant in the inputs alone, and
lead–lag is learned from what the assets' features do (a model that transfers across universes).

Speed: a decision needs only the last step. The last encoder layer therefore computes queries,
cross-asset attention and feed-forward only at the last ``max_lag + 1`` steps (its keys and
values still span the whole window), and the lead–lag and hierarchy stages only at the last
step; this is exact, not an approximation (``encode`` computes every step and the tests check
the two agree). With ``return_attention=True`` the last layer runs over every step, to return
its full maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.base import N_CLASSES, Head, InputKind, ModelOutput, TradingModel

CROSS_ASSET_HEADS = ("regression", "classification", "portfolio")


@dataclass(frozen=True)
class CrossAssetConfig:
    """Hyperparameters (defaults: the chapter's ``ModelConfig`` and ``TemporalCrossAttention``).

    ``groups[i]`` is asset ``i``'s sector, numbered ``0..n_sectors-1`` with every sector used;
    ``None`` puts all assets in one sector. ``asset_embedding`` adds a learned identity vector
    per asset (see the module docstring). ``d_ff`` and ``asset_embedding`` are not the
    chapter's: twice ``d_model`` keeps a float32 decision near the 5 ms budget at the default
    size (p50 ≈ 4.6 ms on one core; float64 serving takes about twice that, see bench/models.py).
    """

    n_assets: int = 5
    n_features: int = 6
    seq_len: int = 168  # 7 days of hourly bars
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.1
    max_lag: int = 5
    head: Head = "portfolio"
    groups: tuple[int, ...] | None = None
    asset_embedding: bool = True

    def __post_init__(self) -> None:
        if self.groups is not None:  # a checkpoint restored from JSON gives a list
            object.__setattr__(self, "groups", tuple(int(g) for g in self.groups))
        if self.head not in CROSS_ASSET_HEADS:
            raise ValueError(f"head must be one of {CROSS_ASSET_HEADS}, not {self.head!r}")
        if self.n_assets < 2:
            raise ValueError("cross-asset attention needs at least two assets")
        if min(self.n_features, self.d_model, self.n_heads, self.n_layers, self.d_ff) < 1:
            raise ValueError("n_features, d_model, n_heads, n_layers and d_ff must be positive")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if not 0 <= self.max_lag < self.seq_len:
            raise ValueError(f"max_lag must be in [0, seq_len), not {self.max_lag}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.groups is not None and (
            len(self.groups) != self.n_assets
            or set(self.groups) != set(range(max(self.groups) + 1))
        ):
            raise ValueError(
                f"groups must give each of the {self.n_assets} assets a sector in "
                f"0..n_sectors-1 with every sector used, not {self.groups}"
            )

    @property
    def sectors(self) -> tuple[int, ...]:
        """Each asset's sector (all ``0`` when ``groups`` is not set)."""
        return self.groups if self.groups is not None else (0,) * self.n_assets


def sinusoidal_positions(n_steps: int, d_model: int) -> torch.Tensor:
    """The Transformer's fixed sine/cosine encoding, ``[n_steps, d_model]``.

    Fixed rather than learned: it adds no parameters to fit on noisy market data, nearby bars
    get similar codes (a smooth prior over position), and the code of step ``t`` does not
    depend on the window length, so a shorter window is exactly a prefix of a longer one.
    """
    position = torch.arange(n_steps, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    codes = torch.zeros(n_steps, d_model)
    codes[:, 0::2] = torch.sin(position * frequency)
    codes[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return codes


def _causal_bias(
    n_queries: int, n_keys: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Additive mask ``[n_queries, n_keys]`` for queries at the last ``n_queries`` of ``n_keys``
    steps: each sees the steps up to and including its own (0), not later ones (``-inf``)."""
    visible = torch.ones(n_queries, n_keys, dtype=torch.bool, device=device)
    visible = visible.tril(n_keys - n_queries)
    bias = torch.zeros(n_queries, n_keys, device=device, dtype=dtype)
    return bias.masked_fill(~visible, float("-inf"))


class TemporalSelfAttention(nn.Module):
    """Causal multi-head attention over time within each asset.

    Queries are processed in blocks of ``QUERY_BLOCK`` steps, each against only the keys up to
    its last step. That skips most of the masked-out upper triangle (40% of the work at 168
    steps) and keeps each score matrix to a few hundred kB: a full ``T x T`` one is megabytes
    per call, which glibc's allocator hands back to the OS after every forward, and the page
    faults of taking it again cost more than the arithmetic (measured: ~1,000 faults, ~3 ms a
    decision). Batched 3-d matmuls and a softmax rather than the fused
    ``scaled_dot_product_attention``, whose CPU kernel is several times slower at head size 16
    (measured); the explicit form also yields the weights.
    """

    QUERY_BLOCK: ClassVar[int] = 32

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(
        self, z: torch.Tensor, n_out: int, need_weights: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``z`` ``[B, A, T, d]`` -> the last ``n_out`` steps ``[B, A, n_out, d]`` and, if
        asked, the weights ``[B, A, heads, n_out, T]``."""
        B, A, T, d = z.shape
        H, dh = self.n_heads, d // self.n_heads
        # one [time, head size] problem per (sample, asset, head)
        q = self.query(z[:, :, T - n_out :]).view(B, A, n_out, H, dh).transpose(2, 3)
        q = q.reshape(B * A * H, n_out, dh)
        k, v = self.key_value(z).view(B, A, T, 2, H, dh).permute(3, 0, 1, 4, 2, 5)
        k, v = k.reshape(B * A * H, T, dh), v.reshape(B * A * H, T, dh)
        contexts, weights = [], []
        for start in range(0, n_out, self.QUERY_BLOCK):
            stop = min(start + self.QUERY_BLOCK, n_out)
            seen = T - n_out + stop  # keys up to the block's last query
            scores = torch.baddbmm(
                _causal_bias(stop - start, seen, z.device, z.dtype),
                q[:, start:stop],
                k[:, :seen].transpose(1, 2),
                alpha=dh**-0.5,
            )
            block = scores.softmax(dim=-1)
            dropped = nn.functional.dropout(block, self.dropout, self.training)
            contexts.append(torch.bmm(dropped, v[:, :seen]))
            if need_weights:
                weights.append(nn.functional.pad(block, (0, T - seen)))
        context = torch.cat(contexts, dim=1).view(B, A, H, n_out, dh)
        out = self.out(context.transpose(2, 3).reshape(B, A, n_out, d))
        if not need_weights:
            return out, None
        return out, torch.cat(weights, dim=1).view(B, A, H, n_out, T)


class CrossAssetAttention(nn.Module):
    """Per-time-step multi-head attention from each asset to the other assets."""

    def __init__(self, d_model: int, n_heads: int, n_assets: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self_pairs = torch.eye(n_assets, dtype=torch.bool)
        self.register_buffer(
            "others_only",
            torch.zeros(n_assets, n_assets).masked_fill(self_pairs, float("-inf")),
            persistent=False,
        )

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` ``[B, A, n, d]`` -> ``[B, A, n, d]`` and the weights ``[B, n, heads,
        A(query), A(source)]``."""
        B, A, n, d = z.shape
        H, dh = self.n_heads, d // self.n_heads
        # one [assets, head size] problem per (sample, step, head)
        qkv = self.qkv(z).view(B, A, n, 3, H, dh).permute(3, 0, 2, 4, 1, 5)
        q, k, v = qkv.reshape(3, B * n * H, A, dh)
        scores = torch.baddbmm(self.others_only, q, k.transpose(1, 2), alpha=dh**-0.5)
        weights = scores.softmax(dim=-1)
        dropped = nn.functional.dropout(weights, self.dropout, self.training)
        context = torch.bmm(dropped, v).view(B, n, H, A, dh).permute(0, 3, 1, 2, 4)
        return self.out(context.reshape(B, A, n, d)), weights.view(B, n, H, A, A)


class EncoderLayer(nn.Module):
    """Temporal self-attention, cross-asset attention, feed-forward; pre-norm residuals.

    Pre-norm keeps an identity path through the stack, which trains stably without warm-up on
    the small, noisy data sets a trading model sees.
    """

    def __init__(self, config: CrossAssetConfig) -> None:
        super().__init__()
        d = config.d_model
        self.temporal_norm = nn.LayerNorm(d)
        self.temporal = TemporalSelfAttention(d, config.n_heads, config.dropout)
        self.cross_norm = nn.LayerNorm(d)
        self.cross = CrossAssetAttention(d, config.n_heads, config.n_assets, config.dropout)
        self.ff_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, config.d_ff), nn.GELU(), nn.Linear(config.d_ff, d))
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self, z: torch.Tensor, n_out: int, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``z`` ``[B, A, T, d]`` -> its last ``n_out`` steps updated, and the temporal (if
        ``need_weights``) and cross-asset attention weights."""
        update, temporal = self.temporal(self.temporal_norm(z), n_out, need_weights)
        z = z[:, :, z.shape[2] - n_out :] + self.drop(update)
        update, cross = self.cross(self.cross_norm(z))
        z = z + self.drop(update)
        return z + self.drop(self.ff(self.ff_norm(z))), temporal, cross


class LeadLagAttention(nn.Module):
    """Asset ``i`` at ``t`` attends to the other assets at ``t - k``, ``k = 0..max_lag``.

    Within each lag a softmax over the other assets picks the source; the learned lag logits
    (softmaxed over the lags that exist at ``t``) weigh the lags. All lags are one batched
    computation over sliding windows of keys, not a loop.
    """

    def __init__(self, d_model: int, n_heads: int, n_assets: int, max_lag: int, dropout: float):
        super().__init__()
        self.n_heads, self.max_lag, self.dropout = n_heads, max_lag, dropout
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        # zeros = equal lag weights, the chapter's initialisation
        self.lag_logits = nn.Parameter(torch.zeros(max_lag + 1))
        self.register_buffer(
            "self_pairs", torch.eye(n_assets, dtype=torch.bool).unsqueeze(-1), persistent=False
        )

    def lag_weights(self) -> torch.Tensor:
        """The learned weight of each lag, ``[max_lag + 1]``, summing to 1."""
        return self.lag_logits.softmax(dim=0)

    def forward(self, z: torch.Tensor, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` ``[B, A, S, d]`` -> the last ``n_out`` steps ``[B, A, n_out, d]`` and the joint
        (source asset, lag) weights ``[B, heads, n_out, A, A, max_lag + 1]``.

        Step ``s`` of ``z`` only reads lags ``k <= s``: when ``z`` is the tail of a longer
        window, the caller passes at least ``max_lag`` steps before the first output.
        """
        B, A, S, d = z.shape
        H, L = self.n_heads, self.max_lag + 1
        q = self.query(z[:, :, S - n_out :]).view(B, A, n_out, H, d // H)
        # the L steps ending at each output step, zero-padded before the window; index = lag
        key_value = nn.functional.pad(self.key_value(z), (0, 0, L - 1, 0))
        windows = key_value.unfold(2, L, 1)[:, :, S - n_out :].flip(-1)
        k, v = windows.reshape(B, A, n_out, 2, H, d // H, L).unbind(3)
        scores = torch.einsum("bithd,bjthdk->bhtijk", q, k) * (d // H) ** -0.5
        per_lag = scores.masked_fill(self.self_pairs, float("-inf")).softmax(dim=-2)
        steps = torch.arange(S - n_out, S, device=z.device).unsqueeze(1)
        missing = torch.arange(L, device=z.device) > steps  # lags before the window start
        lags = self.lag_logits.masked_fill(missing, float("-inf")).softmax(dim=-1)
        joint = per_lag * lags[:, None, None, :]  # zero weight on the padded keys
        dropped = nn.functional.dropout(joint, self.dropout, self.training)
        context = torch.einsum("bhtijk,bjthdk->bithd", dropped, v)
        return self.out(context.reshape(B, A, n_out, d)), joint


class HierarchicalContext(nn.Module):
    """Attention-pools assets into sectors and sectors into the market, per step, and returns
    each asset's (sector, market) context projected to ``d_model``."""

    def __init__(self, d_model: int, sectors: tuple[int, ...]) -> None:
        super().__init__()
        sector_of = torch.tensor(sectors)
        self.register_buffer("sector_of", sector_of, persistent=False)
        members = nn.functional.one_hot(sector_of, int(sector_of.max()) + 1).T.bool()
        self.register_buffer("non_members", ~members, persistent=False)  # [G, A]
        # no biases: a softmax ignores a constant shift of its scores
        self.asset_score = nn.Linear(d_model, 1, bias=False)
        self.sector_score = nn.Linear(d_model, 1, bias=False)
        self.fuse = nn.Linear(2 * d_model, d_model)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z`` ``[B, A, n, d]`` -> context ``[B, A, n, d]``, asset-in-sector weights
        ``[B, n, G, A]`` and sector-in-market weights ``[B, n, G]``."""
        A = z.shape[1]
        by_step = z.transpose(1, 2)  # [B, n, A, d]
        scores = self.asset_score(by_step).transpose(-2, -1)  # [B, n, 1, A]
        in_sector = scores.masked_fill(self.non_members, float("-inf")).softmax(dim=-1)
        sectors = in_sector @ by_step  # [B, n, G, d]
        in_market = self.sector_score(sectors).squeeze(-1).softmax(dim=-1)  # [B, n, G]
        market = (in_market.unsqueeze(-2) @ sectors).expand(-1, -1, A, -1)
        context = self.fuse(torch.cat([sectors[:, :, self.sector_of], market], dim=-1))
        return context.transpose(1, 2), in_sector, in_market


class CrossAssetAttentionNet(TradingModel):
    """The chapter's cross-attention multi-asset model (see the module docstring).

    ``forward(x)`` takes ``x`` ``[B, A, T, F]`` (``T <= seq_len``; the last step is the
    decision bar). With ``return_attention=True``, ``ModelOutput.attention`` holds (last
    encoder layer, weights as used, before dropout):

    * ``"cross_asset"`` ``[B, heads, T, A, A]`` — per step, query asset (row) over source
      asset (column); rows sum to 1, the diagonal is 0;
    * ``"temporal"`` ``[B, A, heads, T, T]`` — causal self-attention, rows sum to 1;
    * ``"lag_weights"`` ``[max_lag + 1]`` — the learned lag weights (softmax of the logits);
    * ``"lead_lag"`` ``[B, A, A, max_lag + 1]`` — at the decision step, averaged over heads,
      the share of asset ``i``'s lead–lag context read from asset ``j`` at lag ``k`` (lag
      weight times the within-lag attention); sums to 1 over ``(j, k)``, 0 where ``j == i``;
    * ``"hierarchy"`` ``[B, G, A]`` — at the decision step, each sector's pooling weights over
      its assets (0 outside the sector), rows sum to 1;
    * ``"hierarchy_market"`` ``[B, G]`` — at the decision step, the sectors' weights in the
      market representation.
    """

    name: ClassVar[str] = "cross_asset"
    input_kind: ClassVar[InputKind] = "assets"
    config_class: ClassVar[type] = CrossAssetConfig

    def __init__(self, config: CrossAssetConfig | None = None) -> None:
        config = config or CrossAssetConfig()
        super().__init__(config)
        d = config.d_model
        self.embed = nn.Linear(config.n_features, d)  # shared by all assets
        # unit scale, like the positional code: identity is as visible to attention as time
        self.asset_embedding = (
            nn.Parameter(torch.randn(config.n_assets, d)) if config.asset_embedding else None
        )
        self.register_buffer("positions", sinusoidal_positions(config.seq_len, d), persistent=False)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.n_layers))
        self.lead_lag_norm = nn.LayerNorm(d)
        self.lead_lag = LeadLagAttention(
            d, config.n_heads, config.n_assets, config.max_lag, config.dropout
        )
        self.hierarchy_norm = nn.LayerNorm(d)
        self.hierarchy = HierarchicalContext(d, config.sectors)
        self.final_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(config.dropout)
        self.readout_layer = nn.Linear(d, N_CLASSES if config.head == "classification" else 1)

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> ModelOutput:
        z, attention = self._represent(x, n_out=1, need_weights=return_attention)
        return ModelOutput(prediction=self.readout(z[:, :, -1]), attention=attention)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The representation of every step, ``[B, A, T, d_model]``; step ``t`` depends only
        on the input up to ``t``. ``readout(encode(x)[:, :, -1])`` equals ``forward(x)``."""
        return self._represent(x, n_out=x.shape[2], need_weights=False)[0]

    def readout(self, last: torch.Tensor) -> torch.Tensor:
        """The head on the decision step's representation ``[B, A, d_model]``."""
        out = self.readout_layer(last)
        if self.head == "classification":
            return out  # [B, A, 3] logits
        out = out.squeeze(-1)
        return out.softmax(dim=-1) if self.head == "portfolio" else out

    def _represent(
        self, x: torch.Tensor, n_out: int, need_weights: bool
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The representation of the last ``n_out`` steps, ``[B, A, n_out, d]``, and the
        attention maps when ``need_weights``."""
        config = self.config
        if x.dim() != 4 or x.shape[1] != config.n_assets or x.shape[3] != config.n_features:
            raise ValueError(
                f"expected [batch, {config.n_assets}, time, {config.n_features}], "
                f"got {list(x.shape)}"
            )
        n_steps = x.shape[2]
        if n_steps > config.seq_len:
            raise ValueError(f"window of {n_steps} steps is longer than seq_len {config.seq_len}")
        z = self.embed(x) + self.positions[:n_steps]
        if self.asset_embedding is not None:
            z = z + self.asset_embedding.unsqueeze(1)
        z = self.drop(z)
        for layer in self.layers[:-1]:
            z, _, _ = layer(z, n_steps)
        # the lead-lag stage reads max_lag steps before its first output
        n_last = n_steps if need_weights else min(n_steps, n_out + config.max_lag)
        z, temporal, cross = self.layers[-1](z, n_last, need_weights)
        update, joint = self.lead_lag(self.lead_lag_norm(z), n_out)
        z = z[:, :, n_last - n_out :] + self.drop(update)
        context, in_sector, in_market = self.hierarchy(self.hierarchy_norm(z))
        z = self.final_norm(z + self.drop(context))
        if not need_weights:
            return z, {}
        return z, {
            "cross_asset": cross.transpose(1, 2),
            "temporal": temporal,
            "lag_weights": self.lead_lag.lag_weights(),
            "lead_lag": joint[:, :, -1].mean(dim=1),
            "hierarchy": in_sector[:, -1],
            "hierarchy_market": in_market[:, -1],
        }
