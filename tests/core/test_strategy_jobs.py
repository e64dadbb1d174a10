"""A strategy's scheduled job (e.g. retraining) changes decisions exactly from its fire time:
in a replay block, per bar, and live alike."""

import numpy as np
import pytest

from bot.core.context import StrategyJob
from bot.core.timeutil import HOUR_MS
from bot.feeds.synthetic import synthetic_panel
from strategies.api import VectorStrategy
from tests.enginekit import make_engine, replay

SYMS = ("AAAUSDT", "BBBUSDT")


class Regime(VectorStrategy):
    """Holds the symbol that did best over the window its job last looked at."""

    name = "regime"

    def __init__(self, symbols, interval="1h"):
        super().__init__(symbols, interval)
        self.lookback = 24
        self.favourite = 0
        self.seen: list[tuple[int, int]] = []  # (fire time, last bar start the job saw)

    def jobs(self):
        return [StrategyJob("refit", "every 13h", self.refit)]

    def refit(self, ctx):
        window = ctx.window(24)
        if len(window):
            self.seen.append((ctx.time, int(window.starts[-1])))
            change = window.close[:, -1] / window.close[:, 0]
            self.favourite = int(np.argmax(change))

    def on_bars(self, ctx):
        weights = np.zeros((len(ctx), len(self.symbols)))
        weights[:, self.favourite] = 1.0
        return weights


@pytest.mark.parametrize("block_rows, use_batch", [(97, True), (1, True), (8192, False)])
def test_a_job_changes_decisions_from_its_fire_time_whatever_the_path(block_rows, use_batch):
    panel = synthetic_panel(SYMS, "1h", 600, seed=12, volatility=0.02, start_ms=0)
    reference, ref_journal = make_engine(panel, [Regime(SYMS, "1h")], interval="1h")
    replay(reference, panel)
    strategy = Regime(SYMS, "1h")
    engine, journal = make_engine(
        panel, [strategy], interval="1h", block_rows=block_rows, use_batch=use_batch
    )
    replay(engine, panel)
    assert [d.target for d in journal.decisions] == [d.target for d in ref_journal.decisions]
    assert engine.equity_curve()[1].tobytes() == reference.equity_curve()[1].tobytes()
    favourites = {tuple(d.target.values()) for d in journal.decisions}
    assert len(favourites) == 2  # the job really switched what is held
    for fire_time, last_start in strategy.seen:  # only bars closed by the fire time
        assert last_start + HOUR_MS <= fire_time < last_start + 2 * HOUR_MS
