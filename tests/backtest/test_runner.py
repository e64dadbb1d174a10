"""The backtest runner: warm-up before the start date, funding from the store."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.runner import run_backtest
from bot.config import load_settings, parse_settings
from bot.core.timeutil import HOUR_MS, to_ms
from bot.feeds.loaders import DataError, read_bars
from bot.store import Store
from tests.conftest import ROOT

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
START = to_ms("2024-03-01")


def settings_for(linear_dir: Path, **overrides):
    momentum = {"name": "momentum", "params": {"lookback": 168, "top": 1, "rebalance": "1d"}}
    values = {
        "engine.symbols": SYMBOLS,
        "engine.start": "2024-03-01",
        "engine.end": "2024-04-01",
        "data.path": str(linear_dir),
        "strategies": [momentum],
        **overrides,
    }
    return load_settings(ROOT / "config.toml", values)


def test_a_backtest_warms_up_on_bars_before_its_start_and_trades_from_it(linear_dir, tmp_path):
    """Momentum needs a week of history: it comes from February, and the first decision
    is at the first close of March rather than a week later."""
    with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        result = run_backtest(settings_for(linear_dir), store=store)
        decisions = store.decisions(result.run_id)
    assert result.times[0] == START + HOUR_MS  # only March is traded
    assert result.stats.rows == 31 * 24
    assert decisions[0]["time"] == START + HOUR_MS
    assert sum(decisions[0]["target"].values()) == pytest.approx(0.5)  # top 1, max_weight 0.5


def test_store_source_with_funding_equals_the_csv_source(linear_dir, tmp_path):
    settings = settings_for(linear_dir)
    from_store_settings = settings.model_copy(
        update={"data": settings.data.model_copy(update={"source": "store"})}
    )
    with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        for symbol in SYMBOLS:
            store.upsert_klines(symbol, "1h", read_bars(linear_dir / "1h" / f"{symbol}.csv", "1h"))
            rates = pd.read_csv(linear_dir / "funding-8h" / f"{symbol}.csv")
            store.upsert_funding(symbol, rates.timestamp_ms.tolist(), rates.funding_rate.tolist())
        from_store = run_backtest(from_store_settings, store=store, record=False)
    from_csv = run_backtest(settings)
    assert from_csv.stats.funding_events > 0
    assert from_store.equity.tobytes() == from_csv.equity.tobytes()
    assert from_store.stats.funding == pytest.approx(from_csv.stats.funding, rel=1e-12)


def test_an_impossible_bar_already_in_the_store_is_named_not_replayed(tmp_path):
    """A store written before bars were checked on entry may hold an ``inf`` bar, which used
    to halt every run that read it: the replay names it instead."""
    settings = parse_settings({
        "engine": {"symbols": ["AAAUSDT"], "interval": "1h"},
        "data": {"source": "store", "funding": False},
        "strategies": [{"name": "equal_weight"}],
        "instruments": {"AAAUSDT": {"qty_step": 0.01}},
    })  # fmt: skip
    ones = [1.0, 1.0]
    frame = pd.DataFrame({"start": [0, 3_600_000], "open": ones, "high": [1.0, np.inf],
                          "low": ones, "close": ones, "volume": ones})  # fmt: skip
    with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        store.upsert_klines("AAAUSDT", "1h", frame)  # the store itself does not judge bars
        with pytest.raises(DataError, match=r"the store's AAAUSDT 1h bars: row 1: non-finite"):
            run_backtest(settings, store=store, record=False)
