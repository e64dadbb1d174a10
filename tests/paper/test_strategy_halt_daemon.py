"""A strategy that halted itself stays halted when the paper daemon restarts: the replay of the
run rebuilds the halt at the same bar (its journaled decisions match), nothing is decided
after it, and the run equals its backtest."""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from backtest.parity import backtest_of_run, compare_runs
from bot.config import StrategyConfig
from bot.core.context import BatchContext, StrategyHalt
from bot.core.timeutil import HOUR_MS
from bot.exchange.server import ExchangeServer
from bot.paper.daemon import PaperDaemon
from bot.store import Store
from strategies.api import VectorStrategy
from tests.paper.test_daemon import live, settings, wait_steps


class HaltsAfter(VectorStrategy):
    """Weights that move every bar; halts itself at its ``decisions``-th decision of the run
    (state its decisions rebuild: a replay from the run's start counts the same)."""

    name = "halts_after"

    def __init__(self, symbols, interval: str = "1h", decisions: int = 10) -> None:
        super().__init__(symbols, interval)
        self.decisions = decisions
        self.seen = 0

    def on_bars(self, ctx: BatchContext) -> np.ndarray:
        rows = ctx.first_row + np.arange(len(ctx))
        due = rows >= ctx.start_row
        phase = rows[:, None] / 3.0 + np.arange(len(self.symbols))[None, :]
        weights = np.where(due[:, None], 0.25 + 0.2 * np.sin(phase), np.nan)
        if self.halt is None:
            index = np.flatnonzero(due)
            if self.seen + len(index) >= self.decisions:
                at = int(ctx.times[index[self.decisions - self.seen - 1]])
                self.halt = StrategyHalt(at, "test_halt", f"decision {self.decisions} reached")
            self.seen += len(index)
        return weights


async def test_a_halted_strategy_stays_halted_across_a_restart(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    config = settings(tmp_path)
    spec = StrategyConfig(name=f"{__name__}:HaltsAfter", params={"decisions": 10})
    config = config.model_copy(update={"strategies": [spec]})
    url = config.store.url
    async with ExchangeServer(config) as server:
        first = PaperDaemon(live(config, server.port), new_run=True)
        task = asyncio.create_task(first.run())
        begun = await wait_steps(url)
        await wait_steps(url, begun + 20 * HOUR_MS, "it trades past the halt")
        first.stop.set()
        run_id = await asyncio.wait_for(task, 60)
        with Store(url) as store:
            (halt,) = [e for e in store.events(run_id) if e["kind"] == "test_halt"]
            stopped = store.get_run(run_id)
        assert halt["detail"]["reason"] == "decision 10 reached"

        second = PaperDaemon(live(config, server.port))  # resumes: replays, then goes on
        task = asyncio.create_task(second.run())
        await wait_steps(url, stopped["last_step"] + 15 * HOUR_MS, "it resumed")
        second.stop.set()
        assert await asyncio.wait_for(task, 60) == run_id

    with Store(url) as store:
        events = [e for e in store.events(run_id) if e["kind"] == "test_halt"]
        decisions = store.decisions(run_id)
        fills = store.fills(run_id)
        assert store.get_run(run_id)["last_step"] > stopped["last_step"]
        assert events == [halt]  # the replay rebuilt the halt; it was not recorded again
        assert len(decisions) == 10 and decisions[-1]["time"] == halt["time"]
        assert set(decisions[-1]["target"].values()) == {0.0}
        assert fills and max(f["time"] for f in fills) == halt["time"]  # flattened at the open
        replay = await asyncio.to_thread(backtest_of_run, config, store, run_id)
        assert compare_runs(store, run_id, replay) == []
    assert not [r for r in caplog.records if "replay diverged" in r.getMessage()]
