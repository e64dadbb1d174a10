"""``[models] threads``: checked like every other key, and given to torch by each command that
runs a model before it computes anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bot.cli.common import UsageError
from bot.cli.main import main
from bot.config import ModelsConfig

CONFIG = """
[engine]
symbols = ["AAAUSDT"]
interval = "1h"
[data]
source = "synthetic"
synthetic_bars = 200
[store]
url = "sqlite:///bot.db"
{models}
[[strategies]]
name = "equal_weight"
[instruments.AAAUSDT]
qty_step = 0.01
"""


@pytest.fixture(autouse=True)
def torch_threads() -> Iterator[None]:
    """The commands set torch's process-wide thread count: later tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def config(tmp_path: Path, models: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(models=models))
    return path


def test_automatic_threads_are_one_on_small_machines_and_half_the_cores_on_big_ones():
    auto = ModelsConfig()
    assert [auto.torch_threads(cpus) for cpus in (1, 2, 4, 6, 8, 32)] == [1, 1, 1, 3, 4, 8]
    assert ModelsConfig(threads=3).torch_threads(cpus=2) == 3


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ("[models]\nthreads = -1", "models.threads: Input should be greater than or equal to 0"),
        ('[models]\nthreads = "two"', "models.threads: Input should be a valid integer"),
        ("[models]\nthreads = 1.5", "models.threads: Input should be a valid integer"),
        ("[models]\nthreads = 5000", "models.threads: Input should be less than or equal to 1024"),
        ("[models]\nthread = 2", "unknown key 'models.thread' (did you mean 'threads'?)"),
    ],
)
def test_a_bad_threads_value_exits_2_naming_the_key(tmp_path, capsys, models, message):
    path = config(tmp_path, models)
    assert main(["--config", str(path), "backtest", "--no-store", "--no-progress"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "work", "models", "expected"),
    [
        (["backtest", "--no-store"], "bot.cli.backtest_cmd.run_backtest", "threads = 3", 3),
        (["paper"], "bot.cli.paper_cmd.PaperDaemon", "threads = 3", 3),
        (["live", "--check"], "bot.cli.live_cmd.check_mainnet_allowed", "threads = 3", 3),
        (["train", "tabl"], "bot.cli.train_cmd.load_history", "threads = 3", 3),
        (["train", "tabl", "--threads", "2"], "bot.cli.train_cmd.load_history", "threads = 3", 2),
        (["demo", "--strategy", "equal_weight"], "bot.cli.exchange_cmd.ExchangeServer",
         "threads = 3", 3),
        (["backtest", "--no-store"], "bot.cli.backtest_cmd.run_backtest", "", 1),  # 2 cores
    ],
)  # fmt: skip
def test_each_command_gives_torch_its_threads_before_the_work_begins(
    tmp_path, capsys, monkeypatch, argv, work, models, expected
):
    seen: list[int] = []

    def begin(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise UsageError("stopped where the work begins")

    monkeypatch.setattr(work, begin)
    monkeypatch.setattr("os.cpu_count", lambda: 2)  # the automatic count of a small machine
    torch.set_num_threads(5)  # neither the configured count nor the automatic one
    path = config(tmp_path, f"[models]\n{models}")
    if argv[0] == "demo":
        argv = [*argv, "--store", str(tmp_path / "demo.db")]
    assert main(["--config", str(path), *argv]) == 2
    assert "stopped where the work begins" in capsys.readouterr().err
    assert seen == [expected]
