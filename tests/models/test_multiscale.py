"""The multi-scale attention network: shapes, attention outputs, input checks, the learnable
positions and pre-LN encoders, gradients and that training lowers both parts of its loss."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import pytest
import torch

from models.base import ModelOutput
from models.multiscale import MultiScaleAttentionNet, MultiScaleConfig

SMALL = MultiScaleConfig(
    seq_lens=(8, 6, 4, 5),
    n_layers=(1, 1, 2, 2),
    n_heads=(2, 2, 2, 2),
    n_features=5,
    d_model=16,
    cross_heads=2,
    dropout=0.0,
)


def make_inputs(config: MultiScaleConfig, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        scale: torch.randn(batch, seq_len, config.n_features, generator=generator)
        for scale, seq_len in config.window_lengths().items()
    }


def make_model(config: MultiScaleConfig = SMALL, seed: int = 0) -> MultiScaleAttentionNet:
    torch.manual_seed(seed)
    return MultiScaleAttentionNet(config)


def test_default_config_follows_the_chapter_table() -> None:
    config = MultiScaleConfig()
    assert config.window_lengths() == {"1m": 1440, "5m": 288, "1h": 168, "1d": 252}
    assert config.n_layers == (2, 3, 4, 4)
    assert config.n_heads == (4, 8, 8, 8)
    assert config.d_model == 128
    assert config.horizons == ("short", "medium", "long")
    assert MultiScaleAttentionNet.name == "multiscale"
    assert MultiScaleAttentionNet.input_kind == "scales"
    assert MultiScaleAttentionNet.config_class is MultiScaleConfig


def test_default_config_shapes() -> None:
    config = MultiScaleConfig()
    model = make_model(config).eval()
    with torch.inference_mode():
        output = model(make_inputs(config, batch=2))
    assert isinstance(output, ModelOutput)
    assert output.prediction.shape == (2, 3)
    assert output.extras["direction"].shape == (2,)
    assert output.attention == {}


@pytest.mark.parametrize(
    ("scales", "horizons", "batch"),
    [(("1m", "5m", "1h", "1d"), ("short", "medium", "long"), 3), (("5m", "1h"), ("h1",), 1)],
)
def test_small_config_shapes(
    scales: tuple[str, ...], horizons: tuple[str, ...], batch: int
) -> None:
    n = len(scales)
    config = MultiScaleConfig(
        scales=scales,
        seq_lens=(7,) * n,
        n_layers=(1,) * n,
        n_heads=(2,) * n,
        n_features=3,
        d_model=8,
        cross_heads=2,
        horizons=horizons,
    )
    output = make_model(config).eval()(make_inputs(config, batch), return_attention=True)
    assert output.prediction.shape == (batch, len(horizons))
    assert output.extras["direction"].shape == (batch,)
    assert output.attention["effective_scale_weights"].shape == (batch, n)
    assert torch.isfinite(output.prediction).all()


def test_attention_outputs_are_consistent() -> None:
    model = make_model().eval()
    batch = 4
    with torch.no_grad():
        attention = model(make_inputs(SMALL, batch), return_attention=True).attention
    n_scales = len(SMALL.scales)

    importance = attention["scale_importance"]
    assert importance.shape == (n_scales,)
    torch.testing.assert_close(importance.sum(), torch.tensor(1.0))

    gates = attention["gates"]
    assert gates.shape == (batch, n_scales)
    assert ((gates > 0) & (gates < 1)).all()

    effective = attention["effective_scale_weights"]
    assert effective.shape == (batch, n_scales)
    torch.testing.assert_close(effective.sum(dim=-1), torch.ones(batch))
    product = importance * gates
    torch.testing.assert_close(effective, product / product.sum(dim=-1, keepdim=True))

    cross = attention["cross_scale"]
    assert set(cross) == set(SMALL.scales)
    for query in SMALL.scales:
        assert set(cross[query]) == set(SMALL.scales)
        for key, seq_len in SMALL.window_lengths().items():
            weights = cross[query][key]
            assert weights.shape == (batch, seq_len)
            assert (weights >= 0).all()
            torch.testing.assert_close(weights.sum(dim=-1), torch.ones(batch))


def test_trained_importance_is_reported_softmaxed() -> None:
    model = make_model().eval()
    with torch.no_grad():
        model.fusion.importance_logits.copy_(torch.tensor([2.0, 0.0, -1.0, 0.5]))
        attention = model(make_inputs(SMALL, 2), return_attention=True).attention
    expected = torch.softmax(torch.tensor([2.0, 0.0, -1.0, 0.5]), dim=0)
    torch.testing.assert_close(attention["scale_importance"], expected)


def test_missing_or_unexpected_scale_is_a_clear_error() -> None:
    model = make_model()
    inputs = make_inputs(SMALL, 2)
    del inputs["1h"]
    with pytest.raises(ValueError, match=r"missing \['1h'\]"):
        model(inputs)
    inputs = make_inputs(SMALL, 2) | {"4h": torch.zeros(2, 3, SMALL.n_features)}
    with pytest.raises(ValueError, match=r"unexpected \['4h'\]"):
        model(inputs)
    with pytest.raises(TypeError, match="scale"):
        model(torch.zeros(2, 8, SMALL.n_features))


def test_wrong_sequence_length_or_features_is_a_clear_error() -> None:
    model = make_model()
    inputs = make_inputs(SMALL, 2)
    inputs["5m"] = inputs["5m"][:, 1:]
    with pytest.raises(ValueError, match=r"scale '5m': expected \[B, T, F\] = \(2, 6, 5\)"):
        model(inputs)
    inputs = make_inputs(SMALL, 2)
    inputs["1d"] = torch.zeros(2, 5, SMALL.n_features + 1)
    with pytest.raises(ValueError, match="scale '1d'"):
        model(inputs)


def test_learnable_positions_make_time_order_matter() -> None:
    """Reordering all but the latest 1h bar changes the output only through the positions:
    without them the encoder is permutation-equivariant and the cross-scale attention sums
    over steps, so the same shuffle must leave the output unchanged."""
    model = make_model().eval()
    inputs = make_inputs(SMALL, 3)
    shuffled = dict(inputs)
    order = torch.tensor([2, 0, 1, 3])  # the latest bar (index 3) stays last
    shuffled["1h"] = inputs["1h"][:, order]
    assert isinstance(model.encoders["1h"].positions, torch.nn.Parameter)
    with torch.no_grad():
        base, moved = model(inputs).prediction, model(shuffled).prediction
        assert not torch.allclose(base, moved, atol=1e-4)
        model.encoders["1h"].positions.zero_()
        torch.testing.assert_close(model(inputs).prediction, model(shuffled).prediction)


def test_scale_encoders_are_pre_ln() -> None:
    model = make_model()
    for scale, n_layers in zip(SMALL.scales, SMALL.n_layers, strict=True):
        encoder = model.encoders[scale]
        layers = encoder.encoder.layers
        assert len(layers) == n_layers
        assert all(layer.norm_first for layer in layers)
        assert isinstance(encoder.norm, torch.nn.LayerNorm)


def test_latest_state_reads_other_scales_whole_windows() -> None:
    """The 1m query must see older daily bars, not only the daily latest state."""
    model = make_model().eval()
    windows = [torch.randn(2, t, SMALL.d_model) for t in SMALL.seq_lens]
    changed = [w.clone() for w in windows]
    changed[3][:, 0] += 1.0  # the oldest daily step only
    with torch.no_grad():
        base, _ = model.cross_scale(windows, need_weights=False)
        moved, _ = model.cross_scale(changed, need_weights=False)
    assert not torch.allclose(base[:, 0], moved[:, 0], atol=1e-4)


def test_gradients_reach_every_parameter() -> None:
    model = make_model().train()
    inputs = make_inputs(SMALL, 4)
    target = {"returns": torch.randn(4, 3), "direction": torch.tensor([0.0, 1.0, 1.0, 0.0])}
    model.loss(model(inputs), target).backward()
    dead = [
        name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()
    ]
    assert dead == []


def test_training_lowers_both_loss_parts() -> None:
    """A learnable synthetic task: the returns are linear in the latest 1m and 1d features,
    the direction is the sign of the short return."""
    config = MultiScaleConfig(
        seq_lens=(6, 5, 4, 4),
        n_layers=(1, 1, 1, 1),
        n_heads=(2, 2, 2, 2),
        n_features=4,
        d_model=16,
        cross_heads=2,
        dropout=0.0,
    )
    model = make_model(config)
    inputs = make_inputs(config, batch=32, seed=1)
    signal = inputs["1m"][:, -1, :2] @ torch.tensor([[1.0, 0.5, 0.0], [0.0, -0.5, 1.0]])
    returns = signal + 0.5 * inputs["1d"][:, -1, :1]
    target = {"returns": returns, "direction": (returns[:, 0] > 0).float()}

    def terms() -> dict[str, float]:
        with torch.no_grad():
            return {k: v.item() for k, v in model.loss_terms(model(inputs), target).items()}

    before = terms()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        optimiser.zero_grad()
        model.loss(model(inputs), target).backward()
        optimiser.step()
    after = terms()
    assert after["regression"] < 0.5 * before["regression"]
    assert after["direction"] < 0.5 * before["direction"]


def test_loss_weights_and_target_checks() -> None:
    output = ModelOutput(
        prediction=torch.tensor([[0.1, 0.2, 0.3]]), extras={"direction": torch.tensor([0.5])}
    )
    target = {"returns": torch.zeros(1, 3), "direction": torch.ones(1)}
    model = make_model()
    mse = (0.01 + 0.04 + 0.09) / 3
    bce = torch.nn.functional.softplus(torch.tensor(-0.5)).item()
    assert model.loss(output, target).item() == pytest.approx(mse + bce)
    weighted = make_model(MultiScaleConfig(**(asdict(SMALL) | {"direction_weight": 0.0})))
    assert weighted.loss(output, target).item() == pytest.approx(mse)
    with pytest.raises(KeyError, match="direction"):
        model.loss(output, {"returns": torch.zeros(1, 3)})
    with pytest.raises(ValueError, match="horizon"):
        model.loss(output, {"returns": torch.zeros(1, 2), "direction": torch.ones(1)})


def test_config_round_trips_and_validates() -> None:
    model = make_model()
    as_json = {
        k: list(v) if isinstance(v, tuple) else v for k, v in model.hyperparameters().items()
    }
    assert MultiScaleConfig(**as_json) == SMALL
    with pytest.raises(ValueError, match="seq_lens"):
        MultiScaleConfig(seq_lens=(60, 48))
    with pytest.raises(ValueError, match="regression"):
        MultiScaleConfig(head="classification")
    with pytest.raises(ValueError, match="divisible"):
        MultiScaleConfig(d_model=12, cross_heads=8)


def test_module_imports_neither_bot_nor_strategies() -> None:
    code = (
        "import sys, models.multiscale; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('bot', 'strategies')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
