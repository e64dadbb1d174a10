"""ProbSparse self-attention (Zhou et al., 2021, "Informer"), really sub-quadratic.

Most queries of a long sequence attend almost uniformly, so their output is close to the
mean of the values; only a few "active" queries have a peaked attention distribution that is
worth computing. Informer ranks queries by the sparsity measure

    M(q_i, K) = max_j(q_i·k_j / √d) − mean_j(q_i·k_j / √d)

estimated on a random SAMPLE of ``U_part = c·⌈ln L_K⌉`` keys per query, computes full
attention only for the ``u = c·⌈ln L_Q⌉`` queries with the largest measure, and gives every
other query the mean of the values (the cumulative mean under a causal mask: a uniform
attention over the keys it may see). Cost: the sampled scores are O(L_Q·U_part), the active
scores O(u·L_K): O(L ln L) overall, and no L_Q×L_K matrix is ever built. (The chapter's
snippet computes the full QKᵀ to choose the queries, which saves nothing.)

When ``u`` reaches ``L_Q`` (``full_queries=True``, or ``c·⌈ln L⌉ ≥ L`` on short sequences)
every query is active, no sampling happens, and the result is exactly standard scaled
dot-product attention.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import nn


class AttentionResult(NamedTuple):
    """What :func:`probsparse_attention` computes.

    ``context`` is ``[N, H, L_Q, E]``. ``weights`` (``[N, H, u, L_K]``, rows sum to 1) and
    ``queries`` (``[N, H, u]`` int64, ascending positions of the active queries) are only
    filled when asked for: they are for explanations, and keeping them costs memory.
    """

    context: torch.Tensor
    weights: torch.Tensor | None
    queries: torch.Tensor | None


def n_active_queries(length: int, factor: int) -> int:
    """Informer's ``u = min(c·⌈ln L_Q⌉, L_Q)`` (also its ``U_part`` with ``L_K``)."""
    return min(factor * math.ceil(math.log(length)), length) if length > 1 else length


def sample_keys(
    n_queries: int, n_keys: int, n_samples: int, *, causal: bool, generator: torch.Generator | None
) -> torch.Tensor:
    """``[n_queries, n_samples]`` key indices drawn uniformly (with replacement) per query.

    Under a causal mask query ``i`` may only see keys ``0..i``, so its sample is drawn from
    those: the measure then describes the distribution the query will actually attend over,
    and the choice of active queries does not look at keys a query is not allowed to see.
    The same sample serves every batch element and head (as in Informer's code), which keeps
    the model equivariant to permutations of the batch (hence of the assets).
    """
    if causal:
        uniform = torch.rand(n_queries, n_samples, generator=generator, dtype=torch.float64)
        bound = torch.arange(1, n_queries + 1, dtype=torch.float64).unsqueeze(1)
        return (uniform * bound).long().clamp_(max=n_keys - 1)
    return torch.randint(n_keys, (n_queries, n_samples), generator=generator)


def _sampled_scores(q: torch.Tensor, k: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """``q_i·k_j`` for the sampled pairs only, ``[N, H, L_Q, U_part]``.

    A sampled dense-dense matmul (SDDMM): ``torch.sparse.sampled_addmm`` computes just the
    entries a CSR pattern names, without gathering a ``[L_Q, U_part, E]`` copy of the keys
    (which is 3× larger than the whole score matrix at L = 168 and ~8× slower) and without
    the L_Q×L_K product.
    """
    n, h, l_q, e = q.shape
    l_k, per_row = k.shape[2], sample.shape[1]
    batch = n * h
    crow = torch.arange(0, l_q * per_row + 1, per_row, device=q.device)
    pattern_args = (
        crow.expand(batch, -1),
        sample.to(q.device).reshape(1, -1).expand(batch, -1),
        q.new_zeros(batch, l_q * per_row),
    )
    with warnings.catch_warnings():  # the CSR layout is flagged "beta" once per process
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        pattern = torch.sparse_csr_tensor(
            *pattern_args, size=(batch, l_q, l_k), check_invariants=False
        )
    scores = torch.sparse.sampled_addmm(
        pattern, q.reshape(batch, l_q, e), k.reshape(batch, l_k, e).transpose(1, 2), beta=0.0
    )
    return scores.values().view(n, h, l_q, per_row)


def _select_queries(
    q: torch.Tensor,
    k: torch.Tensor,
    n_active: int,
    factor: int,
    causal: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Ascending positions ``[N, H, u]`` of the ``u`` queries with the largest sampled M.

    The 1/√d factor is left out: it is positive and common to every query, so the ranking
    is the same. No gradient flows through a choice of indices, hence ``no_grad``.
    """
    with torch.no_grad():
        l_q, l_k = q.shape[2], k.shape[2]
        sample = sample_keys(
            l_q, l_k, n_active_queries(l_k, factor), causal=causal, generator=generator
        )
        scores = _sampled_scores(q, k, sample)
        measure = scores.amax(dim=-1) - scores.mean(dim=-1)
        return measure.topk(n_active, dim=-1, sorted=False).indices.sort(dim=-1).values


def _lazy_context(v: torch.Tensor, causal: bool) -> torch.Tensor:
    """The output of a query that attends uniformly: mean of V, or its running mean."""
    if causal:
        counts = torch.arange(1, v.shape[2] + 1, device=v.device, dtype=v.dtype)
        return v.cumsum(dim=2) / counts.view(1, 1, -1, 1)
    return v.mean(dim=2, keepdim=True).expand_as(v)


def probsparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    factor: int = 5,
    mask_flag: bool = False,
    full_queries: bool = False,
    generator: torch.Generator | None = None,
    need_weights: bool = False,
) -> AttentionResult:
    """ProbSparse attention on per-head tensors ``[N, H, L, E]`` (see the module docstring).

    ``mask_flag`` applies a causal mask (self-attention only: ``L_Q == L_K``).
    ``generator`` seeds the key sample (the global RNG when ``None``).
    """
    l_q, l_k = q.shape[2], k.shape[2]
    if mask_flag and l_q != l_k:
        raise ValueError(f"a causal mask needs L_Q == L_K, got {l_q} and {l_k}")
    n_active = l_q if full_queries else n_active_queries(l_q, factor)
    if n_active < l_q:
        queries = _select_queries(q, k, n_active, factor, mask_flag, generator)
        q_active = q.gather(2, queries.unsqueeze(-1).expand(-1, -1, -1, q.shape[-1]))
    else:
        queries = torch.arange(l_q, device=q.device).expand(*q.shape[:2], l_q)
        q_active = q
    scores = (q_active * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # [N, H, u, L_K]
    if mask_flag:
        future = torch.arange(l_k, device=q.device) > queries.unsqueeze(-1)
        scores = scores.masked_fill(future, float("-inf"))
    weights = scores.softmax(dim=-1)
    active_context = weights @ v
    if n_active < l_q:
        index = queries.unsqueeze(-1).expand(-1, -1, -1, v.shape[-1])
        context = _lazy_context(v, mask_flag).scatter(2, index, active_context)
    else:
        context = active_context
    if not need_weights:
        return AttentionResult(context, None, None)
    return AttentionResult(context, weights, queries)


def expand_attention(
    weights: torch.Tensor, queries: torch.Tensor, n_queries: int, *, mask_flag: bool
) -> torch.Tensor:
    """The dense ``[..., L_Q, L_K]`` attention map ProbSparse effectively applied.

    Active rows are their softmax weights; every other row is the uniform distribution its
    mean-of-V output amounts to (over all keys, or keys ``0..i`` under a causal mask), so
    ``expand_attention(...) @ V`` reproduces the context. For heatmaps only: it is L².
    """
    n_keys = weights.shape[-1]
    lead = weights.shape[:-2]
    if mask_flag:
        rows = torch.arange(n_queries, device=weights.device).unsqueeze(1)
        visible = torch.arange(n_keys, device=weights.device) <= rows
        dense = visible.to(weights.dtype) / visible.sum(dim=1, keepdim=True)
        dense = dense.expand(*lead, n_queries, n_keys).clone()
    else:
        dense = weights.new_full((*lead, n_queries, n_keys), 1.0 / n_keys)
    index = queries.unsqueeze(-1).expand(*queries.shape, n_keys)
    return dense.scatter(-2, index, weights)


class ProbSparseAttention(nn.Module):
    """Multi-head ProbSparse self-attention over ``[N, L, d_model]``.

    In training the key sample is fresh at every call (from ``generator``, else the global
    RNG), as in Informer. In eval mode, without a ``generator``, the sample comes from a
    generator seeded with ``sample_seed``: the same window then always yields the same
    decision, so a backtest reproduces what the live bot would have done.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        factor: int = 5,
        mask_flag: bool = False,
        full_queries: bool = False,
        sample_seed: int = 0,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.factor = factor
        self.mask_flag = mask_flag
        self.full_queries = full_queries
        self.sample_seed = sample_seed
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(
        self,
        x: torch.Tensor,
        *,
        need_weights: bool = False,
        generator: torch.Generator | None = None,
    ) -> AttentionResult:
        """``x`` ``[N, L, d_model]`` → ``context`` ``[N, L, d_model]`` (projected back).

        ``weights`` ``[N, H, u, L]`` and ``queries`` ``[N, H, u]`` as in
        :class:`AttentionResult` (``u = L`` when every query is active).
        """
        n, length, d_model = x.shape
        if generator is None and not self.training:
            generator = torch.Generator().manual_seed(self.sample_seed)
        # One copy into head-major [3, N, H, L, E] rather than one per later matmul.
        qkv = self.qkv(x).view(n, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.contiguous().unbind(0)
        result = probsparse_attention(
            q,
            k,
            v,
            factor=self.factor,
            mask_flag=self.mask_flag,
            full_queries=self.full_queries,
            generator=generator,
            need_weights=need_weights,
        )
        merged = result.context.transpose(1, 2).reshape(n, length, d_model)
        return result._replace(context=self.out(merged))
