"""--worker-memory is a bound, not a hint: a trial whose worker holds more stops and fails."""

from __future__ import annotations

import asyncio

import pytest

from backtest.runner import load_history, replay_async
from backtest.sweep import SweepSpec, run_sweep
from backtest.sweep_memory import MemoryBoundError, MemoryGuard, resident_bytes
from backtest.sweep_pool import RayPool
from backtest.sweep_space import parse_space
from backtest.sweep_trial import TrialTask, run_trial
from bot.assembly import make_strategies
from bot.config import load_settings
from bot.core.journal import NullJournal
from bot.store import Store
from tests.conftest import ROOT

MB = 1024**2


def synthetic(**overrides):
    momentum = {"name": "momentum", "params": {"lookback": 24}}
    values = {"data.source": "synthetic", "data.synthetic_bars": 2_000,
              "engine.symbols": ["BTCUSDT", "ETHUSDT"], "strategies": [momentum],
              **overrides}  # fmt: skip
    return load_settings(ROOT / "config.toml", values)


def test_the_guard_reads_this_process_and_names_the_bound():
    held = resident_bytes()
    assert held is not None and 10 * MB < held < 20_000 * MB  # a Python with numpy and torch
    MemoryGuard(None).check()
    MemoryGuard(held * 4).check()
    with pytest.raises(MemoryBoundError, match=r"above --worker-memory 0\.00 GB"):
        MemoryGuard(MB).check()


def test_a_trial_over_its_bound_fails_and_one_within_it_runs():
    task = TrialTask(0, "all", "r" * 16, synthetic())
    over = run_trial(task, memory_bytes=MB)
    assert over.error is not None and over.error.startswith("MemoryBoundError")
    assert over.calls is None and over.row is None  # nothing of it reaches the store
    within = run_trial(task, memory_bytes=64 * 1024 * MB)
    assert within.error is None and within.metrics["bars"] > 0
    unbounded = run_trial(task)
    assert unbounded.metrics == within.metrics


def test_the_replay_is_watched_after_every_block():
    settings = synthetic(**{"engine.block_rows": 256})
    _, panel, funding = load_history(settings)
    blocks = []
    replay = replay_async(settings, "w" * 16, NullJournal(), make_strategies(settings), panel,
                          funding=funding, watch=lambda: blocks.append(1))  # fmt: skip
    asyncio.run(replay)
    assert len(blocks) >= len(panel) // 256


@pytest.mark.slow
def test_on_ray_each_trial_is_held_to_its_bound(tmp_path):
    """Two trials on local Ray with a bound no worker can meet: both rows fail naming it, the
    sweep goes on to its end, and the store holds no run of them."""
    pytest.importorskip("ray", reason="ray is not installed")
    space = ["lookback=12,24"]
    spec = SweepSpec(dims=parse_space(space), space=space)
    with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        pool = RayPool(None, 2, 8 * MB)
        try:
            result = run_sweep(synthetic(), spec, store, pool)
        finally:
            pool.close()
        assert store.list_runs() == []
    assert len(result.trials) == 2
    for trial in result.trials:
        assert "MemoryBoundError" in trial.error and "--worker-memory 0.01 GB" in trial.error
