"""A strategy that halts itself (``StrategyHalt``): flat at that decision, asked nothing after,
the event recorded — at the same bar whether its decisions come in blocks or one by one."""

from __future__ import annotations

import numpy as np
import pytest

from bot.core.context import BatchContext, StrategyHalt
from bot.core.timeutil import HOUR_MS
from bot.feeds.synthetic import synthetic_panel
from strategies.api import VectorStrategy
from strategies.baselines.equal_weight import EqualWeight
from tests.enginekit import fingerprint, make_engine, replay

SYMS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")


class Tripwire(VectorStrategy):
    """Weights that move every bar; asks to halt at its decision at close ``at``, and answers
    nonsense (infinite weights) after it, which the engine must never ask for."""

    name = "tripwire"

    def __init__(self, symbols, interval="1h", at: int = 0) -> None:
        super().__init__(symbols, interval)
        self.at = at
        self.asked_after = 0  # decisions asked for after the halt

    def on_bars(self, ctx: BatchContext) -> np.ndarray:
        rows = ctx.first_row + np.arange(len(ctx))
        phase = rows[:, None] + np.arange(len(self.symbols))[None, :]
        weights = 0.2 + 0.1 * np.sin(phase / 5.0)
        weights[rows < ctx.start_row] = np.nan
        if self.halt is None and (ctx.times == self.at).any():
            self.halt = StrategyHalt(self.at, "test_halt", "the wire tripped", {"level": 3})
        if self.halt is not None:
            after = ctx.times > self.halt.time
            self.asked_after += int(after[0])  # a block that starts after it: never asked
            weights[after] = np.inf
        return weights


@pytest.fixture(scope="module")
def panel():
    return synthetic_panel(SYMS, "1h", 600, seed=3, volatility=0.01)


def test_a_halting_strategy_is_flattened_and_asked_nothing_more(panel):
    at = int(panel.starts[400]) + HOUR_MS  # mid-block for the batched runs
    runs = []
    for block_rows, use_batch in [(8192, True), (97, True), (1, True), (8192, False)]:
        strategy = Tripwire(SYMS, at=at)
        engine, journal = make_engine(panel, [strategy], interval="1h", block_rows=block_rows,
                                      use_batch=use_batch, threshold=0.05)  # fmt: skip
        replay(engine, panel)
        runs.append(fingerprint(engine, journal))
        assert strategy.asked_after == 0
        (event,) = journal.events
        assert (event.time, event.kind, event.key) == (at, "test_halt", "tripwire")
        assert event.detail["reason"] == "the wire tripped" and event.detail["level"] == 3
        assert event.detail["strategy"] == "tripwire"
        decisions = [d for d in journal.decisions if d.strategy == "tripwire"]
        assert decisions[-1].time == at and set(decisions[-1].weights.values()) == {0.0}
        assert len(decisions) > 300  # it traded until then
        flatten = [o for o, status in journal.orders if o.reason == "test_halt"]
        assert len(flatten) == 3 and event.detail["flatten_orders"] == [o.link_id for o in flatten]
        assert all(o.decision_time == at for o in flatten)
        assert engine.portfolio.qty.tolist() == [0.0, 0.0, 0.0]
        assert journal.fills[-1].time == at  # flattened at the next open, nothing after
        assert engine.risk.halted and engine.risk.halt_reason == "tripwire: the wire tripped"
        equity = engine.equity_curve()[1]
        assert np.all(equity[401:] == equity[401])
    for other in runs[1:]:
        assert other == runs[0]


def test_the_other_strategies_trade_on(panel):
    at = int(panel.starts[300]) + HOUR_MS
    runs = []
    for block_rows, use_batch in [(8192, True), (97, True), (8192, False)]:
        tripwire, others = Tripwire(SYMS, at=at), EqualWeight(SYMS, "1h", rebalance="1d")
        engine, journal = make_engine(panel, [tripwire, others], interval="1h",
                                      block_rows=block_rows, use_batch=use_batch)  # fmt: skip
        replay(engine, panel)
        runs.append(fingerprint(engine, journal))
        assert tripwire.asked_after == 0
        assert not engine.risk.halted  # only the strategy that asked
        (event,) = journal.events
        assert event.time == at and event.key == "tripwire"
        later = [d for d in journal.decisions if d.time > at]
        assert later and {d.strategy for d in later} == {"equal_weight"}
        # the halted strategy's half of the book stays empty: equal weight's half is all
        for d in later:
            assert sum(d.target.values()) == pytest.approx(0.5)
    for other in runs[1:]:
        assert other == runs[0]
