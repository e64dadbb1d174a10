"""Cross-asset attention network: shapes, attention maps, causality, equivariance, training."""

import itertools
from collections.abc import Iterator
from dataclasses import replace

import pytest
import torch

from models.base import ModelOutput
from models.cross_asset import (
    CrossAssetAttention,
    CrossAssetAttentionNet,
    CrossAssetConfig,
    HierarchicalContext,
    LeadLagAttention,
    TemporalSelfAttention,
)

SMALL = CrossAssetConfig(
    n_assets=4, n_features=3, seq_len=20, d_model=16, n_heads=2, n_layers=2, d_ff=32,
    dropout=0.0, max_lag=3, groups=(0, 1, 0, 1),
)  # fmt: skip
B, A, T, F = 3, SMALL.n_assets, SMALL.seq_len, SMALL.n_features
H, L, G = SMALL.n_heads, SMALL.max_lag + 1, 2


def make(config: CrossAssetConfig = SMALL, **changes) -> CrossAssetAttentionNet:
    torch.manual_seed(0)
    return CrossAssetAttentionNet(replace(config, **changes)).eval()


def window(batch: int = B, steps: int = T, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, A, steps, F, generator=torch.Generator().manual_seed(seed))


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def run(model: CrossAssetAttentionNet, x: torch.Tensor, attention: bool = False) -> ModelOutput:
    return model(x, return_attention=attention)


def test_default_config_is_the_chapters_and_runs_on_its_window():
    config = CrossAssetConfig()
    assert (config.n_assets, config.n_features, config.seq_len) == (5, 6, 168)
    assert (config.d_model, config.n_heads, config.n_layers) == (64, 4, 2)
    assert (config.dropout, config.max_lag, config.head) == (0.1, 5, "portfolio")
    assert config.sectors == (0,) * 5
    model = CrossAssetAttentionNet(config).eval()
    assert (model.name, model.input_kind) == ("cross_asset", "assets")
    assert run(model, torch.randn(2, 5, 168, 6)).prediction.shape == (2, 5)


@pytest.mark.parametrize(
    ("head", "shape"),
    [("regression", (B, A)), ("classification", (B, A, 3)), ("portfolio", (B, A))],
)
def test_prediction_shape_per_head(head, shape):
    assert run(make(head=head), window()).prediction.shape == shape


def test_portfolio_weights_are_long_only_and_fully_invested():
    weights = run(make(head="portfolio"), window(batch=8)).prediction
    assert (weights >= 0).all()
    assert close(weights.sum(dim=-1), torch.ones(8))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_assets": 1, "groups": None}, "two assets"),
        ({"groups": (0, 2, 0, 2)}, "every sector used"),
        ({"groups": (0, 1, 0)}, "sector"),
        ({"d_model": 15}, "multiple of n_heads"),
        ({"max_lag": 20}, "max_lag"),
        ({"head": "allocation"}, "head must be"),
    ],
)
def test_invalid_configs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(SMALL, **changes)


def test_groups_from_json_become_a_tuple():
    config = replace(SMALL, groups=[0, 1, 0, 1])
    assert config.groups == (0, 1, 0, 1)
    assert hash(config) == hash(replace(SMALL))
    assert CrossAssetConfig(**config.__dict__) == config


def test_attention_maps_only_when_asked_with_documented_shapes():
    model = make()
    assert run(model, window()).attention == {}
    maps = run(model, window(), attention=True).attention
    assert {name: tuple(m.shape) for name, m in maps.items()} == {
        "cross_asset": (B, H, T, A, A),
        "temporal": (B, A, H, T, T),
        "lag_weights": (L,),
        "lead_lag": (B, A, A, L),
        "hierarchy": (B, G, A),
        "hierarchy_market": (B, G),
    }


def test_attention_maps_are_distributions_that_exclude_self_and_the_future():
    maps = run(make(), window(), attention=True).attention
    cross, temporal, lead_lag = maps["cross_asset"], maps["temporal"], maps["lead_lag"]
    assert close(cross.sum(dim=-1), torch.ones(B, H, T, A))
    assert (cross.diagonal(dim1=-2, dim2=-1) == 0).all()
    assert (cross[..., ~torch.eye(A, dtype=torch.bool)] > 0).all()
    assert close(temporal.sum(dim=-1), torch.ones(B, A, H, T))
    assert (temporal.triu(diagonal=1) == 0).all()  # no step reads a later one
    assert close(maps["lag_weights"].sum(), torch.tensor(1.0))
    assert close(lead_lag.sum(dim=(-2, -1)), torch.ones(B, A))  # over (source, lag)
    assert (lead_lag.diagonal(dim1=1, dim2=2) == 0).all()
    assert close(maps["hierarchy"].sum(dim=-1), torch.ones(B, G))
    members = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.bool)
    assert (maps["hierarchy"][:, ~members] == 0).all()
    assert close(maps["hierarchy_market"].sum(dim=-1), torch.ones(B))


def test_cross_asset_attention_is_asymmetric():
    cross = run(make(), window(), attention=True).attention["cross_asset"]
    assert not close(cross, cross.transpose(-2, -1))


def test_representation_at_a_step_ignores_later_steps():
    model, x, t = make(), window(), 11
    later = x.clone()
    later[:, :, t + 1 :] += torch.randn_like(later[:, :, t + 1 :])
    with torch.no_grad():
        before, after = model.encode(x), model.encode(later)
    assert before.shape == (B, A, T, SMALL.d_model)
    assert close(before[:, :, : t + 1], after[:, :, : t + 1])
    assert not close(before[:, :, t + 1], after[:, :, t + 1])
    maps, later_maps = run(model, x, True).attention, run(model, later, True).attention
    assert close(maps["cross_asset"][:, :, : t + 1], later_maps["cross_asset"][:, :, : t + 1])
    assert close(maps["temporal"][..., : t + 1, :], later_maps["temporal"][..., : t + 1, :])
    with torch.no_grad():  # and a shorter window is exactly a prefix of a longer one
        assert close(model.encode(x[:, :, : t + 1]), before[:, :, : t + 1])


@pytest.mark.parametrize("steps", [T, 2])  # 2 < max_lag + 1: lags before the window are unused
def test_decision_path_equals_the_full_encoding(steps):
    model, x = make(head="regression"), window(steps=steps)
    with torch.no_grad():
        full = model.readout(model.encode(x)[:, :, -1])
    assert close(run(model, x).prediction, full)
    assert close(run(model, x, attention=True).prediction, full)


@pytest.mark.parametrize("identity", [True, False])
def test_permuting_assets_permutes_the_outputs(identity):
    """With asset embeddings the embeddings move with their assets; without, nothing else."""
    perm = [2, 0, 3, 1]
    model = make(head="regression", asset_embedding=identity)
    permuted = make(
        head="regression",
        asset_embedding=identity,
        groups=tuple(SMALL.sectors[p] for p in perm),
    )
    state = model.state_dict()
    if identity:
        state["asset_embedding"] = state["asset_embedding"][perm]
    permuted.load_state_dict(state)
    x = window()
    out, out_p = run(model, x, True), run(permuted, x[:, perm], True)
    assert close(out_p.prediction, out.prediction[:, perm])
    with torch.no_grad():
        assert close(permuted.encode(x[:, perm]), model.encode(x)[:, perm])
    cross = out.attention["cross_asset"]
    assert close(out_p.attention["cross_asset"], cross[..., perm, :][..., perm])
    assert close(out_p.attention["lead_lag"], out.attention["lead_lag"][:, perm][:, :, perm])
    # the sector assignment itself matters: the same weights with other groups differ
    regrouped = make(head="regression", asset_embedding=identity, groups=(0, 1, 1, 0))
    regrouped.load_state_dict(state)
    assert not close(run(regrouped, x[:, perm]).prediction, out_p.prediction)


def attend_one(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook formula for one query: softmax(k·q/√d) over the key rows, weighted values."""
    weights = torch.softmax(keys @ q / q.shape[0] ** 0.5, dim=0)
    return weights @ values, weights


# Equivariance cannot see a block that attends with query and key swapped, or reads its own
# values: each block is compared with the formula written out one query at a time.
D, N_HEADS, N_ASSETS, STEPS = 8, 2, 3, 5
DH = D // N_HEADS


def heads() -> Iterator[tuple[int, slice]]:
    return ((h, slice(h * DH, (h + 1) * DH)) for h in range(N_HEADS))


@pytest.mark.parametrize("block", [TemporalSelfAttention.QUERY_BLOCK, 2])
@torch.no_grad()
def test_temporal_attention_matches_the_formula_and_its_tail(block):
    """In one query block and in several (the last one shorter)."""
    torch.manual_seed(0)
    module, z = TemporalSelfAttention(D, N_HEADS, 0.0), torch.randn(2, N_ASSETS, STEPS, D)
    module.QUERY_BLOCK = block
    q, (k, v) = module.query(z), module.key_value(z).chunk(2, dim=-1)
    context, weights = torch.zeros_like(q), torch.zeros(2, N_ASSETS, N_HEADS, STEPS, STEPS)
    for b, a, s in itertools.product(range(2), range(N_ASSETS), range(STEPS)):
        for h, cols in heads():
            seen = slice(0, s + 1)  # the step itself and the earlier ones
            context[b, a, s, cols], weights[b, a, h, s, seen] = attend_one(
                q[b, a, s, cols], k[b, a, seen, cols], v[b, a, seen, cols]
            )
    for n_out in (STEPS, 4):
        out, got = module(z, n_out, need_weights=True)
        assert close(out, module.out(context)[:, :, STEPS - n_out :])
        assert close(got, weights[:, :, :, STEPS - n_out :])
        assert module(z, n_out, need_weights=False)[1] is None


@torch.no_grad()
def test_cross_asset_attention_matches_the_formula_per_step():
    torch.manual_seed(0)
    module = CrossAssetAttention(D, N_HEADS, N_ASSETS, 0.0)
    z = torch.randn(2, N_ASSETS, STEPS, D)
    q, k, v = module.qkv(z).chunk(3, dim=-1)
    context, weights = torch.zeros_like(q), torch.zeros(2, STEPS, N_HEADS, N_ASSETS, N_ASSETS)
    for b, i, t in itertools.product(range(2), range(N_ASSETS), range(STEPS)):
        others = [j for j in range(N_ASSETS) if j != i]
        for h, cols in heads():
            context[b, i, t, cols], weights[b, t, h, i, others] = attend_one(
                q[b, i, t, cols], k[b, others, t, cols], v[b, others, t, cols]
            )
    out, got = module(z)
    assert close(out, module.out(context))
    assert close(got, weights)


@torch.no_grad()
def test_lead_lag_attention_matches_the_formula_per_lag():
    torch.manual_seed(0)
    module = LeadLagAttention(D, N_HEADS, N_ASSETS, max_lag=2, dropout=0.0)
    module.lag_logits.copy_(torch.tensor([0.3, -0.5, 1.0]))
    z = torch.randn(2, N_ASSETS, STEPS, D)
    q, (k, v) = module.query(z), module.key_value(z).chunk(2, dim=-1)
    context, joint = torch.zeros_like(q), torch.zeros(2, N_HEADS, STEPS, N_ASSETS, N_ASSETS, 3)
    for b, i, s in itertools.product(range(2), range(N_ASSETS), range(STEPS)):
        others = [j for j in range(N_ASSETS) if j != i]
        lags = [lag for lag in range(3) if lag <= s]  # no lag reaches before the window
        for lag, lag_weight in zip(lags, module.lag_logits[lags].softmax(dim=0), strict=True):
            for h, cols in heads():
                update, weights = attend_one(
                    q[b, i, s, cols], k[b, others, s - lag, cols], v[b, others, s - lag, cols]
                )
                context[b, i, s, cols] += lag_weight * update
                joint[b, h, s, i, others, lag] = lag_weight * weights
    for n_out in (STEPS, 2):
        out, got = module(z, n_out)
        assert close(out, module.out(context)[:, :, STEPS - n_out :])
        assert close(got, joint[:, :, STEPS - n_out :])


@torch.no_grad()
def test_hierarchical_context_matches_the_formula():
    torch.manual_seed(0)
    sectors = (1, 0, 1, 1)
    module, z = HierarchicalContext(D, sectors), torch.randn(2, 4, STEPS, D)
    expected = torch.zeros_like(z)
    for b, t in itertools.product(range(2), range(STEPS)):
        pooled = []
        for g in (0, 1):
            members = z[b, [a for a in range(4) if sectors[a] == g], t]
            pooled.append(module.asset_score(members).squeeze(-1).softmax(dim=0) @ members)
        by_sector = torch.stack(pooled)
        market = module.sector_score(by_sector).squeeze(-1).softmax(dim=0) @ by_sector
        for a in range(4):
            expected[b, a, t] = module.fuse(torch.cat([by_sector[sectors[a]], market]))
    assert close(module(z)[0], expected)


def test_gradients_reach_every_parameter():
    model = make(head="regression", dropout=0.1).train()
    x, target = window(batch=8), torch.randn(8, A)
    model.loss(model(x), target).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


LEARN = replace(SMALL, n_assets=3, seq_len=8, max_lag=2, groups=None)


def lead_lag_problem(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next returns: asset ``a``'s next return is asset ``a + 1``'s return (feature
    0) on the decision bar, a one-bar lead that only identity-aware cross-asset attention sees."""
    shape = (batch, LEARN.n_assets, LEARN.seq_len, LEARN.n_features)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return x, x[:, [1, 2, 0], -1, 0]


@pytest.mark.parametrize(
    ("head", "bound"),  # bound: well below predicting nothing (MSE 1, CE ~1.09, Sharpe 0)
    [("regression", 0.5), ("classification", 0.7), ("portfolio", -0.5)],
)
def test_training_learns_a_lead_lag_relation(head, bound):
    model = make(LEARN, head=head).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)

    def target(returns: torch.Tensor) -> torch.Tensor:
        if head == "classification":  # down / stationary / up
            return (returns > -0.5).long() + (returns > 0.5).long()
        return returns

    x_test, returns_test = lead_lag_problem(512, seed=-1)

    def held_out_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss = model.loss(model(x_test), target(returns_test)).item()
        model.train()
        return loss

    before = held_out_loss()
    for step in range(40):
        x, returns = lead_lag_problem(128, seed=step)
        optimiser.zero_grad()
        model.loss(model(x), target(returns)).backward()
        optimiser.step()
    after = held_out_loss()
    assert after < min(bound, before), (before, after)
