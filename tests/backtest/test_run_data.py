"""A stored run as DataFrames: the journal as recorded, and metrics a paper run has not stored."""

import dataclasses

import numpy as np
import pytest

from backtest.metrics import compute_metrics
from backtest.run_data import RunNotFoundError, computed_metrics, load_run
from backtest.runner import run_backtest
from bot.core.timeutil import DAY_MS
from bot.store import Store
from tests.backtest.test_runner import settings_for


@pytest.fixture(scope="module")
def stored(linear_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("run_data") / "bot.db"
    with Store(f"sqlite:///{path}") as store:
        result = run_backtest(settings_for(linear_dir), store=store)
        yield store, result, load_run(store, result.run_id[:8])


def test_the_frames_hold_the_journal_as_stored(stored):
    store, result, data = stored
    assert data.run_id == result.run_id
    assert len(data.decisions) == len(store.decisions(result.run_id)) == result.stats.decisions
    assert len(data.trades) == result.stats.fills  # trades only: funding is apart
    assert len(data.funding) == result.stats.funding_events > 0
    assert len(data.fills) == len(data.trades) + len(data.funding)
    assert data.equity["when"].dt.tz is not None  # UTC datetimes beside the epoch ms
    assert list(data.weights.columns) == data.symbols
    assert data.weights.sum(axis=1).max() == pytest.approx(0.5)  # top 1 at max_weight 0.5


def test_metrics_of_the_equity_journal_equal_those_the_backtest_stored(stored):
    """A paper run has no stored metrics until it ends: computed from its journal, they must
    be the backtest's own."""
    _, result, data = stored
    assert data.metrics == result.metrics.as_dict()
    computed = computed_metrics(data)
    for key, value in result.metrics.as_dict().items():
        assert computed[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_an_unknown_run_is_named(stored):
    store, _, _ = stored
    with pytest.raises(RunNotFoundError, match="no run 'feedbeef'"):
        load_run(store, "feedbeef")


def test_a_daemons_sparse_snapshots_are_annualised_by_their_own_spacing(stored):
    """A paper run snapshots equity on its schedule: daily snapshots of an hourly run are
    daily returns, not hourly ones."""
    _, result, data = stored
    daily = data.equity[data.equity["time"] % DAY_MS == 0].reset_index(drop=True)
    sparse = dataclasses.replace(data, equity=daily, _metrics=None)
    times = daily["time"].to_numpy(np.int64)
    times = times[times > data.run["data_start"]]
    expected = compute_metrics(
        times,
        daily["equity"].to_numpy(float)[-len(times) :],
        initial_equity=result.metrics.initial_equity,
        interval_ms=DAY_MS,
        gross=daily["gross"].to_numpy(float)[-len(times) :],
        traded_notional=1.0,
        fees=0.0,
        funding=0.0,
        trade_count=0,
        realized=[],
    )
    assert len(times) == 31
    assert sparse.metrics["sharpe"] == pytest.approx(expected.sharpe, rel=1e-12)
    assert sparse.metrics["annual_volatility"] == pytest.approx(expected.annual_volatility)
