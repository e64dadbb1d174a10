"""The key promise: every trial a sweep stores on Ray is the backtest ``bot backtest`` would
have stored with its settings, value for value; and the serial path gives the same table."""

from pathlib import Path

import pandas as pd
import pytest

from backtest.parity import compare_runs
from backtest.runner import run_backtest
from backtest.sweep import SweepResult, SweepSpec, run_sweep
from backtest.sweep_pool import RayPool, SerialPool
from backtest.sweep_results import frame
from backtest.sweep_space import parse_space
from bot.config import Settings, load_settings
from bot.store import Store
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SPACE = ["lookback=24,48,72,168", "top=1,2"]  # 8 trials
SPEC = SweepSpec(dims=parse_space(SPACE), folds=2, holdout=0.25, batch=2, space=SPACE)
TABLES = ("decisions", "orders", "fills", "positions", "equity", "events")
RUN_SCOPED = ("order_link_id", "exec_id")


def settings(data: Path, store: str, params: dict | None = None, start: str = "2024-06-01",
             end: str = "2024-07-16") -> Settings:  # fmt: skip
    """What ``bot backtest --strategy momentum --param ...`` builds, independently of the
    sweep's own construction."""
    overrides = {
        "engine.symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "engine.start": start,
        "engine.end": end, "data.source": "csv", "data.path": str(data), "store.url": store,
        "strategies": [{"name": "momentum", "params": {"rebalance": "1d", **(params or {})}}],
    }  # fmt: skip
    return load_settings(ROOT / "config.toml", overrides)


def sweep(tmp: Path, data: Path, pool_name: str) -> tuple[SweepResult, Store]:
    url = f"sqlite:///{tmp / f'{pool_name}.db'}"
    store = Store(url)
    if pool_name == "ray":
        pytest.importorskip("ray", reason="ray is not installed")
        pool = RayPool(None, 2, 512 * 1024**2)  # fails loudly if Ray cannot start
    else:
        pool = SerialPool()
    try:
        return run_sweep(settings(data, url), SPEC, store, pool), store
    finally:
        pool.close()


@pytest.fixture(scope="module")
def ray_sweep(tmp_path_factory, linear_dir) -> tuple[SweepResult, Store]:
    result, store = sweep(tmp_path_factory.mktemp("ray"), linear_dir, "ray")
    yield result, store
    store.close()


def journal(store: Store, run_id: str, table: str) -> list[dict]:
    rows = getattr(store, table)(run_id)
    return [{k: v for k, v in row.items() if k not in RUN_SCOPED} for row in rows]


def test_every_trial_on_ray_equals_its_backtest_alone(ray_sweep, linear_dir):
    result, store = ray_sweep
    assert len(result.trials) == 8 and all(t.error is None for t in result.trials)
    assert [s.name for s in result.spans] == ["fold 1", "fold 2", "holdout"]
    url = store.engine.url.render_as_string(hide_password=False)
    for trial in result.trials:
        for span in result.spans:
            stored = store.get_run(trial.outcomes[span.name].run_id)
            alone = run_backtest(
                settings(linear_dir, url, trial.params, str(span.start_ms), str(span.end_ms)),
                store=store,
            )
            solo = store.get_run(alone.run_id)
            assert stored["config"]["sweep"]["id"] == result.sweep_id
            assert stored["config"]["sweep"]["trial"] == trial.trial
            params = stored["config"]["strategies"][0]["params"]
            assert params == {"rebalance": "1d", **trial.params}
            assert compare_runs(store, stored["id"], solo["id"], (*TABLES[:3], "equity")) == []
            for table in TABLES:
                assert journal(store, stored["id"], table) == journal(store, solo["id"], table)
            assert stored["counts"] == solo["counts"] and stored["counts"]["fills"] > 0
            for key in ("metrics", "status", "data_start", "data_end", "last_step", "kind"):
                assert stored[key] == solo[key], key


def test_serial_path_gives_the_same_table(ray_sweep, linear_dir, tmp_path):
    ray_result, _ = ray_sweep
    serial_result, store = sweep(tmp_path, linear_dir, "serial")
    store.close()
    pd.testing.assert_frame_equal(
        frame(serial_result.trials, "sharpe", folds=True),
        frame(ray_result.trials, "sharpe", folds=True),
    )
    assert [t.params for t in serial_result.trials] == [t.params for t in ray_result.trials]
