"""Live-only paths of the engine: fills booked at the next candle's open, and priming."""

import numpy as np
import pytest

from bot.core.events import OPEN, Panel
from bot.core.funding import FundingRates
from bot.core.timeutil import HOUR_MS
from bot.feeds.synthetic import synthetic_panel
from strategies.baselines.buy_and_hold import BuyAndHold
from strategies.baselines.equal_weight import EqualWeight
from strategies.baselines.ma_crossover import MovingAverageCrossover
from tests.enginekit import make_engine, replay

SYMS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")


def funding_for(panel: Panel) -> FundingRates:
    times = np.arange(panel.starts[0], panel.starts[-1], 8 * HOUR_MS, dtype=np.int64)
    rng = np.random.default_rng(1)
    return FundingRates({s: (times, rng.normal(0.0001, 0.0003, len(times))) for s in SYMS})


def test_fills_at_each_symbols_next_open_equal_the_replay_bit_for_bit():
    panel = synthetic_panel(SYMS, "1h", 600, seed=21, volatility=0.01, start_ms=0)
    strategy = lambda: EqualWeight(SYMS, "1h", rebalance="bar")  # noqa: E731 - trades every bar
    replayed, replay_journal = make_engine(panel, [strategy()], interval="1h",
                                           funding=funding_for(panel), threshold=0.001)  # fmt: skip
    replay(replayed, panel)

    live, live_journal = make_engine(panel, [strategy()], interval="1h",
                                     funding=funding_for(panel), threshold=0.001)  # fmt: skip
    rng = np.random.default_rng(5)
    early = 0
    for i in range(len(panel)):
        for s in rng.permutation(len(SYMS)):  # the first messages of candle i, any order
            before = live.stats.fills
            live.on_open(SYMS[s], int(panel.starts[i]), float(panel.values[i, s, OPEN]))
            early += live.stats.fills - before
        live.process(panel.slice(i, i + 1))  # the row once every symbol's bar has closed
    live.finish()

    assert early > 100  # most fills were booked at the open, before their row
    assert live.portfolio._cash_units == replayed.portfolio._cash_units
    assert live.equity_curve()[1].tobytes() == replayed.equity_curve()[1].tobytes()
    key = lambda f: (f.time, f.symbol, f.exec_type)  # noqa: E731
    assert sorted(live_journal.fills, key=key) == sorted(replay_journal.fills, key=key)
    funding_fills = [f for f in live_journal.fills if f.exec_type == "Funding"]
    assert funding_fills and all(f.time % (8 * HOUR_MS) == 0 for f in funding_fills)


def test_an_open_two_bars_after_the_decision_does_not_fill_early():
    """While the barrier waits for a slow symbol, a fast symbol's candles run ahead: its order
    must still fill at the open of the bar right after the decision, when that row comes."""
    panel = synthetic_panel(SYMS, "1h", 20, seed=6, start_ms=0)
    replayed, replay_journal = make_engine(panel, [BuyAndHold(SYMS, "1h")], interval="1h")
    replay(replayed, panel)
    live, live_journal = make_engine(panel, [BuyAndHold(SYMS, "1h")], interval="1h")
    live.process(panel.slice(0, 1))  # decided at the close of bar 0: fills due at bar 1's open
    live.on_open(SYMS[0], int(panel.starts[2]), float(panel.values[2, 0, OPEN]))  # ran ahead
    assert live.stats.fills == 0
    for i in range(1, len(panel)):
        live.process(panel.slice(i, i + 1))
    key = lambda f: (f.time, f.symbol)  # noqa: E731
    assert sorted(live_journal.fills, key=key) == sorted(replay_journal.fills, key=key)
    assert all(f.time == panel.starts[1] for f in live_journal.fills)


def test_an_early_open_before_the_decision_is_harmless():
    panel = synthetic_panel(SYMS, "1h", 50, seed=2, start_ms=0)
    engine, journal = make_engine(panel, [BuyAndHold(SYMS, "1h")], interval="1h")
    engine.on_open(SYMS[0], 0, 100.0)  # before any row: nothing to fill, nothing breaks
    engine.process(panel.slice(0, 1))  # decides at the close of bar 0
    engine.on_open(SYMS[0], int(panel.starts[0]), 1.0)  # an open older than the decision
    assert engine.stats.fills == 0
    engine.on_open(SYMS[0], int(panel.starts[1]), float(panel.values[1, 0, OPEN]))
    assert engine.stats.fills == 1 and journal.fills[0].time == panel.starts[1]


def test_priming_warms_strategies_without_trading_and_they_start_at_the_first_row():
    panel = synthetic_panel(SYMS, "1h", 400, seed=3, volatility=0.01, start_ms=0)
    warmup, traded = panel.split(int(panel.starts[100]))
    engine, journal = make_engine(panel, [BuyAndHold(SYMS, "1h")], interval="1h")
    engine.prime(warmup)
    replay(engine, traded)
    assert journal.decisions[0].time == traded.starts[0] + HOUR_MS  # first processed close
    assert len(engine.equity_curve()[1]) == len(traded)
    with pytest.raises(RuntimeError, match="before the first processed bar"):
        engine.prime(warmup)


def test_primed_decisions_equal_the_full_runs_after_the_split():
    """A portfolio-independent strategy decides the same after a split whether the bars
    before it were primed or traded."""
    panel = synthetic_panel(SYMS, "1h", 1200, seed=4, volatility=0.01, start_ms=0)
    warmup, traded = panel.split(int(panel.starts[300]))
    full, full_journal = make_engine(panel, [MovingAverageCrossover(SYMS, "1h", 5, 20)],
                                     interval="1h")  # fmt: skip
    replay(full, panel)
    primed, primed_journal = make_engine(panel, [MovingAverageCrossover(SYMS, "1h", 5, 20)],
                                         interval="1h")  # fmt: skip
    primed.prime(warmup)
    replay(primed, traded)
    after = [(d.time, d.weights) for d in full_journal.decisions if d.time > traded.starts[0]]
    assert after and after == [(d.time, d.weights) for d in primed_journal.decisions]
