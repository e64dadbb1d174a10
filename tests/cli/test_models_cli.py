"""``bot train``, ``bot models``, ``bot explain`` and a backtest with the trained checkpoint,
on real bars (tiny model sizes set in the config, as a user would for a quick try)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.cli.main import main
from bot.store import Store
from models.checkpoint import load_checkpoint
from models.explain import lead_lag_ranking
from tests.modelkit import TINY, real_panel, train_tiny

CONFIG = """
[engine]
symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
interval = "1h"
start = "2024-06-01"
end = "2024-09-01"
[data]
source = "csv"
path = "{data}"
funding = false
[store]
url = "sqlite:///bot.db"
[train]
features = ["log_return", "range", "relative_volume", "momentum_5", "close_position"]
epochs = 1
[train.cross_asset]
seq_len = 24
d_model = 16
n_heads = 2
n_layers = 1
d_ff = 32
max_lag = 3
[[strategies]]
name = "equal_weight"
[instruments.BTCUSDT]
qty_step = 0.001
[instruments.ETHUSDT]
qty_step = 0.01
[instruments.SOLUSDT]
qty_step = 0.1
"""


@pytest.fixture
def workdir(tmp_path: Path, linear_dir: Path) -> Path:
    (tmp_path / "config.toml").write_text(CONFIG.format(data=linear_dir))
    return tmp_path


def run(workdir: Path, *args: str) -> int:
    return main(["--config", str(workdir / "config.toml"), *args])


@pytest.mark.slow
def test_train_registers_a_checkpoint_that_backtests_and_explains(workdir, capsys, caplog):
    out = workdir / "ca.pt"
    threads = torch.get_num_threads()
    try:
        code = run(workdir, "train", "cross_asset", "--no-progress", "--out", str(out),
                   "--threads", "1")  # fmt: skip
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    printed = capsys.readouterr().out
    assert "training cross_asset on 2,208 1h bars" in printed and f"wrote {out}" in printed

    checkpoint = load_checkpoint(out)
    meta = checkpoint.meta
    assert meta["symbols"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"] and meta["interval"] == "1h"
    assert meta["config"]["d_model"] == 16 and meta["config"]["head"] == "portfolio"
    assert meta["data_window"]["bars"] == 2208
    assert meta["training"]["epochs"] == 1 and meta["training"]["optimizer"] == "adam"
    assert meta["metrics"]["train_samples"] > 0 and meta["code_version"]
    assert len(meta["history"]) == 1

    with Store(f"sqlite:///{workdir / 'bot.db'}") as store:
        [registered] = store.list_models()
    assert registered["version"] == checkpoint.version
    assert registered["path"] == str(out.resolve())
    assert registered["data_end"] == meta["data_window"]["end"]

    assert run(workdir, "models") == 0
    assert checkpoint.version in capsys.readouterr().out

    # trade the month after the training window with it: every decision names the model
    report = workdir / "bt.json"
    code = run(workdir, "backtest", "--strategy", "cross_asset", "--param",
               f'checkpoint="{out}"', "--start", "2024-09-01", "--end", "2024-10-01",
               "--no-progress", "--json", str(report))  # fmt: skip
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    run_id = json.loads(report.read_text())["run_id"]
    with Store(f"sqlite:///{workdir / 'bot.db'}") as store:
        decisions = store.decisions(run_id)
    assert len(decisions) > 600
    assert {d["model_version"] for d in decisions} == {checkpoint.version}
    assert "in-sample" not in caplog.text

    # trading bars it was trained on is allowed (a user may want to) but never silent
    assert run(workdir, "backtest", "--strategy", "cross_asset", "--param",
               f'checkpoint="{out}"', "--start", "2024-08-25", "--end", "2024-09-02",
               "--no-progress", "--no-store") == 0  # fmt: skip
    assert "decisions are in-sample" in caplog.text
    capsys.readouterr()

    assert run(workdir, "explain", str(out), "--end", "2024-10-01", "--decisions", "50",
               "--out", str(workdir / "explain")) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "lead-lag ranking" in printed
    pngs = sorted((workdir / "explain").glob("*.png"))
    assert [p.name.removeprefix(checkpoint.version) for p in pngs] == [
        "-attention.png", "-lead-lag.png"]  # fmt: skip
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 10_000 for p in pngs)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "d_modle=8"], "train.cross_asset.d_modle: cross_asset has no such"),
        (["--set", "head='sideways'"], "train.cross_asset:"),
    ],
)
def test_bad_hyperparameters_exit_naming_the_key(workdir, capsys, args, named):
    assert run(workdir, "train", "cross_asset", *args) == 2
    assert named in capsys.readouterr().err


def test_bad_features_and_scales_exit_naming_the_key(workdir, capsys):
    config = workdir / "config.toml"
    text = config.read_text()
    config.write_text(text.replace('"momentum_5"', '"momentum_x"'))
    assert run(workdir, "train", "tabl") == 2
    assert "train.features: unknown feature 'momentum_x'" in capsys.readouterr().err
    config.write_text(text.replace('"momentum_5"', '"funding_rate"'))
    assert run(workdir, "train", "tabl") == 2
    assert "train.features: 'funding_rate' cannot be used" in capsys.readouterr().err
    config.write_text(text)
    assert run(workdir, "train", "multiscale", "--set", 'scales=["30m", "4h"]',
               "--set", "seq_lens=[8, 8]", "--set", "n_layers=[1, 1]",
               "--set", "n_heads=[2, 2]") == 2  # fmt: skip
    assert "train.multiscale.scales: 30m is not a multiple of the base interval 1h" in (
        capsys.readouterr().err
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "files", "printed"),
    [
        ("stockformer", ["-attention.png"], "decisions from"),
        ("tabl", ["-temporal-attention.png"], "most attended bar"),
        ("multiscale", ["-scale-importance.png"], "(prior)"),
    ],
)
def test_explain_renders_each_model(workdir, linear_dir, capsys, model, files, printed):
    checkpoint = train_tiny(model, real_panel(linear_dir, "2024-05-01", "2024-09-01"),
                            workdir / f"{model}.pt", epochs=1)  # fmt: skip
    assert run(workdir, "explain", str(workdir / f"{model}.pt"), "--end", "2024-10-01",
               "--decisions", "40", "--out", str(workdir / "explain")) == 0  # fmt: skip
    assert printed in capsys.readouterr().out
    pngs = sorted((workdir / "explain").glob("*.png"))
    assert [p.name.removeprefix(checkpoint.version) for p in pngs] == files
    assert all(p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 10_000 for p in pngs)
    assert TINY[model][1] == tuple(checkpoint.meta["feature_spec"]["names"])


def test_lead_lag_ranking_puts_the_asset_others_read_with_a_delay_first():
    lead_lag = np.zeros((3, 3, 3))  # [target, source, lag]
    lead_lag[1, 0, 2] = lead_lag[2, 0, 1] = 0.7  # assets 1 and 2 read asset 0's past
    lead_lag[1, 2, 0] = lead_lag[2, 1, 0] = 0.3  # and each other at the same step only
    lead_lag[0, 1, 1] = lead_lag[0, 2, 0] = 0.5
    ranking = lead_lag_ranking(lead_lag)
    assert ranking.argmax() == 0
    assert ranking == pytest.approx([0.7, 0.25, 0.0])
