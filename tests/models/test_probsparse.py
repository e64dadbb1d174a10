"""ProbSparse attention: exact when every query is active, Informer's lazy queries otherwise,
and genuinely sub-quadratic (checked on the tensors it creates, not on a stopwatch)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from models.probsparse import (
    ProbSparseAttention,
    expand_attention,
    n_active_queries,
    probsparse_attention,
    sample_keys,
)


def _qkv(n: int, h: int, length: int, e: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, h, length, e, generator=generator) for _ in range(3)]


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces (sparse tensors count their nnz)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.op = ""

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                size = tensor._nnz() if tensor.layout != torch.strided else tensor.numel()
                if size > self.largest:
                    self.largest, self.op = size, str(func)
        return out


@pytest.mark.parametrize("mask_flag", [False, True])
@pytest.mark.parametrize(("n", "h", "length", "e"), [(1, 1, 1, 4), (2, 4, 16, 8), (3, 2, 97, 16)])
def test_all_queries_active_equals_full_attention(
    mask_flag: bool, n: int, h: int, length: int, e: int
) -> None:
    q, k, v = _qkv(n, h, length, e)
    result = probsparse_attention(q, k, v, mask_flag=mask_flag, full_queries=True)
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=mask_flag)
    torch.testing.assert_close(result.context, reference, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mask_flag", [False, True])
def test_short_sequences_are_full_attention_without_being_forced(mask_flag: bool) -> None:
    length = 20  # c·⌈ln 20⌉ = 21 ≥ 20 with c = 7: every query is active
    assert n_active_queries(length, 7) == length
    q, k, v = _qkv(2, 2, length, 8, seed=1)
    result = probsparse_attention(q, k, v, factor=7, mask_flag=mask_flag, need_weights=True)
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=mask_flag)
    torch.testing.assert_close(result.context, reference, atol=1e-6, rtol=1e-5)
    assert result.queries is not None
    assert torch.equal(result.queries[0, 0], torch.arange(length))


def test_module_with_full_queries_equals_multi_head_attention() -> None:
    torch.manual_seed(0)
    d_model, n_heads = 16, 4
    module = ProbSparseAttention(d_model, n_heads, full_queries=True).eval()
    x = torch.randn(3, 40, d_model)
    q, k, v = module.qkv(x).view(3, 40, 3, n_heads, -1).permute(2, 0, 3, 1, 4)
    context = (
        torch.nn.functional.scaled_dot_product_attention(q, k, v)
        .transpose(1, 2)
        .reshape(3, 40, d_model)
    )
    torch.testing.assert_close(module(x).context, module.out(context), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mask_flag", [False, True])
def test_lazy_queries_get_the_mean_of_the_values(mask_flag: bool) -> None:
    length, factor = 600, 2
    u = factor * math.ceil(math.log(length))  # 14
    q, k, v = _qkv(2, 3, length, 8, seed=2)
    result = probsparse_attention(
        q,
        k,
        v,
        factor=factor,
        mask_flag=mask_flag,
        generator=torch.Generator().manual_seed(0),
        need_weights=True,
    )
    assert result.weights is not None and result.queries is not None
    assert result.queries.shape == (2, 3, u)
    assert result.weights.shape == (2, 3, u, length)
    torch.testing.assert_close(result.weights.sum(-1), torch.ones(2, 3, u))

    active = torch.zeros(2, 3, length, dtype=torch.bool)
    active.scatter_(2, result.queries, True)
    assert int(active.sum()) == 2 * 3 * u  # distinct positions
    if mask_flag:
        counts = torch.arange(1, length + 1, dtype=v.dtype).view(1, 1, -1, 1)
        lazy = v.cumsum(2) / counts
    else:
        lazy = v.mean(2, keepdim=True).expand_as(v)
    torch.testing.assert_close(result.context[~active], lazy[~active], atol=1e-6, rtol=1e-5)

    # The active rows are exact attention: softmax over every key (or every past key).
    index = result.queries.unsqueeze(-1).expand(-1, -1, -1, 8)
    scores = q.gather(2, index) @ k.transpose(-2, -1) / math.sqrt(8)
    if mask_flag:
        scores = scores.masked_fill(
            torch.arange(length) > result.queries.unsqueeze(-1), float("-inf")
        )
    exact = scores.softmax(-1) @ v
    torch.testing.assert_close(result.context.gather(2, index), exact, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mask_flag", [False, True])
def test_expanded_map_reproduces_the_output(mask_flag: bool) -> None:
    q, k, v = _qkv(1, 2, 200, 8, seed=3)
    result = probsparse_attention(
        q, k, v, factor=1, mask_flag=mask_flag, generator=torch.Generator(), need_weights=True
    )
    assert result.weights is not None and result.queries is not None
    dense = expand_attention(result.weights, result.queries, 200, mask_flag=mask_flag)
    assert dense.shape == (1, 2, 200, 200)
    torch.testing.assert_close(dense @ v, result.context, atol=1e-6, rtol=1e-5)


def test_selects_the_queries_with_peaked_attention() -> None:
    """Half of the keys point along d, half against it: queries along d have a large
    max − mean, near-zero queries a tiny one. The sampled measure must pick the former."""
    length, e = 300, 8
    generator = torch.Generator().manual_seed(4)
    d = torch.randn(e, generator=generator)
    signs = torch.ones(length, 1)
    signs[length // 2 :] = -1.0
    k = signs * d + 0.1 * torch.randn(length, e, generator=generator)
    q = 0.01 * torch.randn(length, e, generator=generator)
    peaked = [7, 50, 123, 201, 299]
    q[peaked] = 5.0 * d
    result = probsparse_attention(
        q[None, None], k[None, None], k[None, None], generator=generator, need_weights=True
    )
    assert result.queries is not None
    assert result.queries.shape[-1] == 30  # 5·⌈ln 300⌉ of 300
    assert set(peaked) <= set(result.queries[0, 0].tolist())


def test_causal_samples_only_visible_keys() -> None:
    sample = sample_keys(50, 50, 400, causal=True, generator=torch.Generator().manual_seed(0))
    assert bool((sample <= torch.arange(50).unsqueeze(1)).all())
    assert set(sample[49].tolist()) == set(range(50))  # and uniformly over all of them


@pytest.mark.parametrize("mask_flag", [False, True])
def test_no_quadratic_intermediate(mask_flag: bool) -> None:
    n, h, length, e = 1, 2, 4096, 8
    q, k, v = (t.requires_grad_() for t in _qkv(n, h, length, e, seed=5))
    u = n_active_queries(length, 1)  # ⌈ln 4096⌉ = 9
    with LargestTensor() as monitor:
        result = probsparse_attention(
            q, k, v, factor=1, mask_flag=mask_flag, generator=torch.Generator().manual_seed(0)
        )
        result.context.sum().backward()
    # Sampled scores [N, H, L, U_part] and active scores [N, H, u, L] are the largest.
    assert monitor.largest <= n * h * length * max(u, e), monitor.op
    assert monitor.largest * 100 < n * h * length * length


def test_gradients_flow_to_projections_and_input() -> None:
    torch.manual_seed(0)
    module = ProbSparseAttention(16, 4, factor=1).train()
    x = torch.randn(2, 120, 16, requires_grad=True)
    module(x, generator=torch.Generator().manual_seed(0)).context.square().mean().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name


def test_sampling_is_seeded() -> None:
    torch.manual_seed(0)
    module = ProbSparseAttention(16, 2, factor=1)
    x = torch.randn(1, 300, 16)

    def active(generator: torch.Generator | None) -> torch.Tensor:
        queries = module(x, need_weights=True, generator=generator).queries
        assert queries is not None
        return queries

    module.train()
    first = active(torch.Generator().manual_seed(1))
    assert torch.equal(first, active(torch.Generator().manual_seed(1)))
    assert not torch.equal(first, active(torch.Generator().manual_seed(2)))
    module.eval()  # no generator in eval: a fixed sample, so the same input → same output
    assert torch.equal(active(None), active(None))
    assert torch.equal(module(x).context, module(x).context)
