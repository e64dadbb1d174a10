"""The TABL network: shapes, the attention and λ contracts, the λ mix against a plain bilinear
layer, the max-norm constraint, gradients, and that training lowers the loss and teaches the
attention where the signal is."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch

from models.tabl import BilinearLayer, MultiHeadTABL, TABLConfig, TABLLayer, TABLNet

SMALL = TABLConfig(input_dim=5, seq_len=12, hidden=((8, 10), (6, 7)), n_heads=1, dropout=0.0)


def make_model(config: TABLConfig = SMALL, seed: int = 0) -> TABLNet:
    torch.manual_seed(seed)
    return TABLNet(config)


def windows(config: TABLConfig, batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, config.seq_len, config.input_dim, generator=generator)


def test_default_config_follows_the_chapter() -> None:
    config = TABLConfig()
    assert (config.input_dim, config.seq_len, config.n_heads, config.dropout) == (6, 100, 4, 0.2)
    assert config.hidden == ((32, 20), (32, 20))
    assert (config.max_norm, config.attention_max_norm) == (3.0, 5.0)
    assert config.attention_steps == 20
    assert TABLNet.name == "tabl" and TABLNet.input_kind == "sequence"
    assert TABLNet(config).head == "classification"


@pytest.mark.parametrize("n_heads", [1, 4])
def test_shapes_and_attention_only_when_asked(n_heads: int) -> None:
    config = TABLConfig(n_heads=n_heads)
    model = make_model(config).eval()
    x = windows(config, 3)
    with torch.inference_mode():
        plain = model(x)
        explained = model(x, return_attention=True)
    assert plain.prediction.shape == (3, 3)
    assert plain.attention == {}
    assert set(explained.attention) == {"temporal", "lambda"}
    torch.testing.assert_close(explained.prediction, plain.prediction)
    steps = config.attention_steps
    if n_heads == 1:
        assert explained.attention["temporal"].shape == (3, steps)
        assert explained.attention["lambda"].shape == ()
    else:
        assert explained.attention["temporal"].shape == (3, n_heads, steps)
        assert explained.attention["lambda"].shape == (n_heads,)


def test_a_tabl_attends_over_the_raw_window() -> None:
    config = TABLConfig(input_dim=4, seq_len=9, hidden=(), n_heads=2, dropout=0.0)
    out = make_model(config)(windows(config, 2), return_attention=True)
    assert config.attention_steps == 9
    assert out.attention["temporal"].shape == (2, 2, 9)


def test_attention_rows_are_distributions_over_time_and_start_uniform() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 5, 7)  # [B, D, T]
    single = TABLLayer(5, 7, 3, 2, max_norm=3.0, attention_max_norm=5.0)
    multi = MultiHeadTABL(5, 7, 3, 2, n_heads=3, max_norm=3.0, attention_max_norm=5.0)
    for layer, shape in ((single, (4, 3, 7)), (multi, (4, 3, 3, 7))):
        y, alpha = layer(x)
        assert y.shape == (4, 3, 2)
        assert alpha.shape == shape
        # The 1/T initialisation makes every score column equal: exactly uniform attention.
        torch.testing.assert_close(alpha, torch.full(shape, 1 / 7))
        with torch.no_grad():
            layer.attention.weight.normal_()
        alpha = layer(x)[1]
        assert (alpha >= 0).all()
        torch.testing.assert_close(alpha.sum(-1), torch.ones(shape[:-1]))
        assert alpha.std() > 0.01  # no longer uniform, still normalised over time
    out = make_model()(windows(SMALL, 4), return_attention=True)
    torch.testing.assert_close(out.attention["temporal"].sum(-1), torch.ones(4))


def test_lambda_zero_is_a_plain_bilinear_layer_on_the_projection() -> None:
    """λ = 0 must leave X̄ = W1·X untouched (Y = φ(W1·X·W2 + B)); λ = 1 must use only the
    attended X̄ ⊙ α, with the α the layer returns."""
    torch.manual_seed(1)
    x = torch.randn(4, 5, 7)
    tabl = TABLLayer(5, 7, 3, 2, activation=torch.nn.ReLU(), max_norm=3.0)
    bilinear = BilinearLayer(5, 7, 3, 2, activation=torch.nn.ReLU(), max_norm=3.0)
    with torch.no_grad():
        tabl.attention.weight.normal_()  # a non-uniform attention, so λ must matter
        tabl.bias.normal_()
        bilinear.w1.copy_(tabl.w1)
        bilinear.w2.copy_(tabl.w2)
        bilinear.bias.copy_(tabl.bias)
        tabl.attention.lambda_logit.fill_(-math.inf)
        assert tabl.lam.item() == 0.0
        torch.testing.assert_close(tabl(x)[0], bilinear(x))

        tabl.attention.lambda_logit.fill_(math.inf)
        assert tabl.lam.item() == 1.0
        y, alpha = tabl(x)
        xbar = tabl.w1 @ x  # within the max norm, so the effective weight
        attended = torch.relu((xbar * alpha) @ tabl.w2 + tabl.bias)
        torch.testing.assert_close(y, attended)
        assert (y - bilinear(x)).abs().max() > 1e-3


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_lambda_stays_in_unit_interval_under_any_push(direction: float) -> None:
    model = make_model(TABLConfig(**{**asdict(SMALL), "n_heads": 3}))
    optimiser = torch.optim.SGD(model.parameters(), lr=1e3)
    x = windows(SMALL, 4)
    for _ in range(5):
        optimiser.zero_grad()
        lam = model(x, return_attention=True).attention["lambda"]
        (-direction * lam.sum()).backward()
        optimiser.step()
    lam = model(x, return_attention=True).attention["lambda"].detach()
    assert ((lam >= 0) & (lam <= 1)).all()
    assert (lam > 0.99).all() if direction > 0 else (lam < 0.01).all()  # it was pushed hard


def test_max_norm_caps_the_effective_weights() -> None:
    """Scaling a weight that is already past its cap changes nothing (the layer uses the
    renormalised weight); without the cap the output doubles."""
    torch.manual_seed(2)
    x = torch.randn(2, 4, 6)
    for limit, unchanged in ((1.0, True), (None, False)):
        layer = BilinearLayer(4, 6, 3, 2, max_norm=limit)
        with torch.no_grad():
            layer.w1.mul_(50.0)  # every row far past a norm of 1
            first = layer(x)
            layer.w1.mul_(2.0)
            assert torch.allclose(first, layer(x)) is unchanged


@pytest.mark.parametrize("n_heads", [1, 4])
def test_gradients_reach_every_parameter(n_heads: int) -> None:
    config = TABLConfig(**{**asdict(SMALL), "n_heads": n_heads})
    model = make_model(config).train()
    target = torch.tensor([0, 1, 2, 1, 0, 2, 2, 1])
    model.loss(model(windows(config, 8)), target).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def fixed_step_task(n: int, steps: int, informative: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Feature 0 is noise except at step ``informative``, whose value's tercile is the label
    (down / stationary / up); feature 1 is a constant (a level the projection can use as an
    offset, which is what lets a content-based score prefer a position); feature 2 is noise."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, 3, generator=generator)
    x[..., 1] = 1.0
    signal = x[:, informative, 0]
    y = torch.ones(n, dtype=torch.long)
    y[signal < -0.43] = 0
    y[signal > 0.43] = 2
    return x, y


def test_training_lowers_the_loss() -> None:
    config = TABLConfig(input_dim=3, seq_len=8, hidden=((8, 8),), n_heads=2, dropout=0.0)
    model = make_model(config)
    x, y = fixed_step_task(256, 8, informative=5, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    initial = model.loss(model(x), y).item()
    for _ in range(60):
        optimiser.zero_grad()
        model.loss(model(x), y).backward()
        optimiser.step()
    assert model.loss(model(x), y).item() < 0.5 * initial


@pytest.mark.parametrize("n_heads", [1, 3])
def test_attention_learns_the_informative_step(n_heads: int) -> None:
    """A(TABL) on raw bars, with ``W2`` frozen to a plain sum over time: a free ``W2`` could
    pick the informative step by itself (a bilinear layer solves a fixed-step task), so the
    frozen sum leaves the attention as the only way to single it out."""
    informative, steps = 5, 8
    config = TABLConfig(input_dim=3, seq_len=steps, hidden=(), n_heads=n_heads, dropout=0.0)
    model = make_model(config)
    with torch.no_grad():
        model.tabl.w2.fill_(1.0)  # norm √8 < 3: the max-norm leaves it as is
    model.tabl.w2.requires_grad_(False)
    x, y = fixed_step_task(512, steps, informative, seed=0)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    initial = model.loss(model(x), y).item()
    for _ in range(100):
        optimiser.zero_grad()
        model.loss(model(x), y).backward()
        optimiser.step()
    out = model(x, return_attention=True)
    assert model.loss(out, y).item() < 0.2 * initial
    attention = out.attention["temporal"].detach().mean(0)  # over samples
    if n_heads > 1:
        attention = attention.mean(0)  # over heads
    assert attention.argmax().item() == informative
    assert attention[informative] > 1.5 / steps  # uniform would be 1/8
    assert (out.attention["lambda"] > 0.5).all()  # the attended term gained weight


def test_input_shape_is_checked() -> None:
    model = make_model()
    with pytest.raises(ValueError, match=r"expected \[batch, 12, 5\]"):
        model(torch.randn(2, 11, 5))
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(12, 5))


def test_config_round_trips_through_json_and_validates() -> None:
    model = make_model().eval()
    config = TABLConfig(**json.loads(json.dumps(model.hyperparameters())))
    assert config == SMALL
    rebuilt = TABLNet(config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = windows(SMALL, 2)
    torch.testing.assert_close(rebuilt(x).prediction, model(x).prediction)
    with pytest.raises(ValueError, match="down/stationary/up"):
        TABLConfig(head="regression")
    with pytest.raises(ValueError, match="positive"):
        TABLConfig(hidden=((0, 4),))
    with pytest.raises(ValueError, match="dropout"):
        TABLConfig(dropout=1.0)


def test_module_imports_neither_bot_nor_strategies() -> None:
    code = (
        "import sys, models.tabl; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('bot', 'strategies')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
