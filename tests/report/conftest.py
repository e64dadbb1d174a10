"""Stored runs on real bars for the report tests: a momentum backtest (quick), a cross-asset
model backtest from a tiny checkpoint trained on the months before it, and a second, smaller
backtest with other cash, all in one store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from backtest.run_data import RunData, load_run
from backtest.runner import run_backtest
from bot.store import Store
from tests.backtest.test_runner import settings_for
from tests.modelkit import SYMBOLS, real_panel, train_tiny


@dataclass
class Stored:
    store: Store
    url: str
    momentum: RunData
    small: RunData
    model: RunData
    checkpoint: Path


@pytest.fixture(scope="session")
def stored(linear_dir: Path, tmp_path_factory) -> Stored:
    folder = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{folder / 'bot.db'}"
    checkpoint = folder / "cross_asset.pt"
    train_tiny("cross_asset", real_panel(linear_dir, "2024-01-01", "2024-03-01"), checkpoint)
    model = {"name": "cross_asset", "params": {"checkpoint": str(checkpoint), "rebalance": "4h"}}
    with Store(url) as store:
        ids = [
            run_backtest(settings_for(linear_dir), store=store).run_id,
            run_backtest(settings_for(linear_dir, **{"portfolio.initial_cash": 5000.0,
                                                     "engine.end": "2024-03-15"}),
                         store=store).run_id,
            run_backtest(settings_for(linear_dir, **{"engine.symbols": list(SYMBOLS),
                                                     "strategies": [model]}), store=store).run_id,
        ]  # fmt: skip
        runs = [load_run(store, run_id) for run_id in ids]
        yield Stored(store, url, *runs, checkpoint)
