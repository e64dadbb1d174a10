"""Model health in the engine, on real bars with small fitted models: healthy models on real
data are never halted by the default checks, while a model that collapses mid-run (weights
zeroed or NaN) or is fed drifted features is flattened and halted at one bar — the same bar in
a batched replay and one bar at a time — with a ``model_health`` event in the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backtest.runner import run_backtest
from bot.config import load_settings
from bot.core.context import StrategyJob
from bot.core.events import CLOSE, HIGH, LOW, Panel
from bot.core.timeutil import HOUR_MS, to_ms
from bot.store import Store
from strategies.model_backed import CrossAssetStrategy, TABLStrategy
from tests.conftest import ROOT
from tests.enginekit import fingerprint, make_engine, replay
from tests.modelkit import SYMBOLS, TINY, real_panel
from tests.strategies.conftest import TRADE

ALL_DATA = ("2023-12-18", "2025-07-01")  # every bar the three symbols share
#: When each model breaks (mid-run and mid-block; TABL's EMA features warm up over 878 bars)
#: and the first decision the broken model makes
BREAKS = {
    "cross_asset": ("cron 0 12 10 1 *", to_ms("2025-01-10 13:00")),
    "tabl": ("cron 0 12 15 2 *", to_ms("2025-02-15 13:00")),
}


class Breaks:
    """A model strategy whose served model breaks at a scheduled instant, as a bad refit or a
    corrupted weight file would: its weights zeroed (it answers a constant whatever it is fed)
    or NaN. The break is a job on the engine clock, so it happens at the same bar in a batched
    replay and live."""

    def __init__(self, *args, breaks_at: str, how: str = "zero", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.breaks_at, self.how = breaks_at, how

    def jobs(self) -> list[StrategyJob]:
        return [*super().jobs(), StrategyJob("break", self.breaks_at, self._break)]

    def _break(self, ctx) -> None:
        with torch.no_grad():
            for parameter in self.serving.model.parameters():
                if self.how == "zero":
                    parameter.zero_()
                else:
                    parameter.fill_(float("nan"))


class BreakingCrossAsset(Breaks, CrossAssetStrategy):
    pass


class BreakingTABL(Breaks, TABLStrategy):
    pass


BREAKING = {"cross_asset": BreakingCrossAsset, "tabl": BreakingTABL}
HEALTHY = {"cross_asset": CrossAssetStrategy, "tabl": TABLStrategy}


def made(cls, name: str, checkpoint: Path, panel: Panel, **params):
    return cls(panel.symbols, "1h", checkpoint=str(checkpoint), features=TINY[name][1], **params)


@pytest.mark.parametrize("name", list(HEALTHY))
def test_the_default_checks_never_halt_a_healthy_model_on_real_data(name, checkpoints, linear_dir):
    """Every hour the data holds (Dec 2023 – Jun 2025: crashes, rallies, quiet weeks), with a
    normaliser fitted on four of those months, passes the strategy's checks, with room: a drift
    limit of 4 SDs (the default is 10) passes too, while 2 halts — so the checks did look.

    The decisions go through the strategy's screening in one block, with the model run many
    decisions per pass (the engine passes one decision at a time: too slow for this span)."""
    panel = real_panel(linear_dir, *ALL_DATA)
    first = made(HEALTHY[name], name, checkpoints[name], panel)
    ends = np.arange(first.lookback - 1, len(panel))
    ohlcv = np.asarray(panel.values, dtype=float)
    inputs = first.model_inputs(first.serving, ohlcv, panel.starts, ends)
    outputs = first.serving.run(inputs, 512).prediction.double().numpy()
    outputs = outputs.reshape(len(ends), len(panel.symbols), -1)
    times = panel.starts[ends] + HOUR_MS
    assert len(ends) > 12_000
    halts = {}
    for limit in (None, 4.0, 2.0):
        strategy = first if limit is None else made(HEALTHY[name], name, checkpoints[name], panel,
                                                    health={"drift_z": limit})  # fmt: skip
        screened = strategy._screen(strategy.serving, inputs, outputs, times)
        halts[limit] = strategy.halt
        assert (strategy.halt is None) == np.array_equal(screened, outputs)
    assert halts[None] is None and halts[4.0] is None
    assert halts[2.0] is not None and halts[2.0].detail["check"] == "feature_drift"
    assert abs(halts[2.0].detail["z"]) > 2.0


@pytest.mark.parametrize(("name", "how"), [("cross_asset", "zero"), ("tabl", "nan")])
def test_a_collapsed_model_is_flattened_and_halted_at_one_bar_in_every_path(
    name, how, checkpoints, traded
):
    breaks_at, broken_from = BREAKS[name]
    expected = broken_from + (23 * HOUR_MS if how == "zero" else 0)  # 24 same answers / at once
    runs = []
    for block_rows, use_batch in [(8192, True), (101, True), (8192, False)]:
        strategy = made(BREAKING[name], name, checkpoints[name], traded, breaks_at=breaks_at,
                        how=how)  # fmt: skip
        engine, journal = make_engine(
            traded, [strategy], interval="1h", block_rows=block_rows, use_batch=use_batch
        )
        replay(engine, traded)
        runs.append(fingerprint(engine, journal))
        (event,) = journal.events
        assert (event.time, event.kind, event.key) == (expected, "model_health", name)
        assert event.detail["check"] == "prediction_collapse"
        assert event.detail["reason"].startswith("prediction collapse: ")
        assert ("NaN outputs" if how == "nan" else "for 24 decisions in a row") in event.detail[
            "reason"
        ]
        assert event.detail["model_version"] == strategy.model_version
        assert engine.risk.halted and "prediction collapse" in engine.risk.halt_reason
        assert journal.decisions[-1].time == expected
        assert set(journal.decisions[-1].target.values()) == {0.0}
        assert engine.portfolio.qty.tolist() == [0.0] * 3
        assert {o.reason for o, _ in journal.orders if o.decision_time == expected} <= {
            "model_health"
        }
        if how == "zero":  # the constant answer was a position: the halt closed it
            assert event.detail["flatten_orders"]
            assert journal.fills[-1].time == expected
    assert runs[0][1][-1][0] == expected
    for other in runs[1:]:
        assert other == runs[0]


def with_wide_bars(panel: Panel, symbol: str, after: int) -> Panel:
    """The same bars up to row ``after``; then ``symbol``'s bars span ±30% around the close
    (a feed that switched to another unit or instrument): its ``range`` feature is tens of
    training standard deviations off."""
    values = panel.values.copy()
    s = panel.symbols.index(symbol)
    close = values[after + 1 :, s, CLOSE]
    values[after + 1 :, s, HIGH] = np.maximum(values[after + 1 :, s, HIGH], close * 1.3)
    values[after + 1 :, s, LOW] = np.minimum(values[after + 1 :, s, LOW], close * 0.7)
    return Panel(panel.symbols, panel.interval_ms, panel.starts, values, panel.present)


def test_drifted_features_halt_the_strategy_at_the_same_bar_in_every_path(checkpoints, traded):
    after = 1100  # TABL's EMA features warm up over 878 bars, its drift window over 168
    panel = with_wide_bars(traded, "SOLUSDT", after)
    runs = []
    for block_rows, use_batch in [(8192, True), (64, True), (8192, False)]:
        strategy = made(TABLStrategy, "tabl", checkpoints["tabl"], panel)
        engine, journal = make_engine(
            panel, [strategy], interval="1h", block_rows=block_rows, use_batch=use_batch
        )
        replay(engine, panel)
        runs.append(fingerprint(engine, journal))
        (event,) = journal.events
        assert event.kind == "model_health" and event.detail["check"] == "feature_drift"
        assert (event.detail["feature"], event.detail["symbol"]) == ("range", "SOLUSDT")
        assert event.detail["z"] > 10.0
        assert "feature drift: range on SOLUSDT z=+" in event.detail["reason"]
        row = int(np.searchsorted(panel.starts, event.time - HOUR_MS))
        assert after < row < after + 168  # within a window of the change
        assert journal.decisions[-1].time == event.time
    for other in runs[1:]:
        assert other == runs[0]


def test_health_checks_can_be_turned_off(checkpoints, traded):
    breaks_at, broken_from = BREAKS["tabl"]
    strategy = made(BreakingTABL, "tabl", checkpoints["tabl"], traded, breaks_at=breaks_at,
                    how="nan", health=False)  # fmt: skip
    engine, journal = make_engine(traded, [strategy], interval="1h")
    replay(engine, traded)
    assert not journal.events and not engine.risk.halted
    assert journal.decisions[-1].time > broken_from  # it went on deciding (on NaN outputs)


def test_a_backtest_stores_the_halt_and_ends_halted(checkpoints, linear_dir, tmp_path):
    spec = {
        "name": f"{__name__}:BreakingCrossAsset",
        "params": {"checkpoint": str(checkpoints["cross_asset"]),
                   "features": list(TINY["cross_asset"][1]),
                   "breaks_at": BREAKS["cross_asset"][0]},
    }  # fmt: skip
    settings = load_settings(ROOT / "config.toml", {
        "engine.symbols": list(SYMBOLS),
        "engine.start": TRADE[0],
        "engine.end": TRADE[1],
        "data.path": str(linear_dir),
        "strategies": [spec],
    })  # fmt: skip
    with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        result = run_backtest(settings, store=store)
        events = store.events(result.run_id)
        run = store.get_run(result.run_id)
    (event,) = [e for e in events if e["kind"] == "model_health"]
    assert event["time"] == BREAKS["cross_asset"][1] + 23 * HOUR_MS
    assert event["detail"]["check"] == "prediction_collapse"
    assert event["detail"]["strategy"] == "cross_asset"
    assert result.halted_reason and "prediction collapse" in result.halted_reason
    assert run["status"] == "halted" and run["halted_reason"] == result.halted_reason
