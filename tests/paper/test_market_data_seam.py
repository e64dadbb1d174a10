"""The daemon talks to a venue only through the market-data interface: any implementation of
it drives a paper run, and the run still equals a backtest of the bars it stored."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.parity import backtest_of_run, compare_runs
from bot.config import parse_settings
from bot.core.events import CLOSE, HIGH, LOW, OPEN, VOLUME, Bar
from bot.core.instruments import InstrumentSpec
from bot.core.market_data import Closed, Opened, Recheck, Sink
from bot.core.timeutil import HOUR_MS
from bot.feeds.synthetic import synthetic_panel
from bot.paper.daemon import PaperDaemon
from bot.store import Store

SYMBOLS = ("AAAUSDT", "BBBUSDT")
START = 1_706_745_600_000  # 2024-02-01
WARM, LIVE = 60, 30  # bars before the run starts, bars the stream delivers


class ScriptedStream:
    """Delivers the panel's bars after ``last_closed`` as a venue's stream would, then idles."""

    def __init__(self, market: InMemoryMarket, last_closed: Mapping[str, int | None], sink: Sink):
        self.market, self.last_closed, self.sink = market, last_closed, sink
        self.connected = False
        self.last_receipt_ns = 0

    async def run(self, stop: asyncio.Event) -> None:
        self.connected = True
        panel, after = self.market.panel, max(v for v in self.last_closed.values() if v)
        for row in np.flatnonzero(panel.starts > after).tolist():
            start = int(panel.starts[row])
            for s, symbol in enumerate(SYMBOLS):
                o, h, lo, c, v = panel.values[row, s, [OPEN, HIGH, LOW, CLOSE, VOLUME]].tolist()
                await self.sink(Opened(symbol, start, o))
                await self.sink(Closed(Bar(symbol, "1h", start, o, h, lo, c, v)))
        await stop.wait()


class InMemoryMarket:
    """A venue that is a synthetic panel: what the interface asks, nothing Bybit."""

    close_margin_ms = 0
    shown_url = "memory://venue"

    def __init__(self, settings, stop: asyncio.Event) -> None:
        self.panel = synthetic_panel(SYMBOLS, "1h", WARM + LIVE, seed=9, start_ms=START)
        self.calls: list[str] = []

    async def __aenter__(self) -> InMemoryMarket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def server_time(self) -> int:
        return START + WARM * HOUR_MS + 1  # the first live candle has just opened

    async def instruments(self, symbols: Sequence[str]) -> dict[str, InstrumentSpec]:
        return {s: InstrumentSpec(s, 0.01, 0.01, 5.0, 0.01) for s in symbols}

    async def funding_intervals(self, symbols: Sequence[str]) -> dict[str, int]:
        return {}

    async def backfill_bars(self, store: Store, symbols, interval, start, end) -> None:
        self.calls.append("backfill_bars")
        panel = self.panel
        keep = (panel.starts >= start) & (panel.starts < end)
        for s, symbol in enumerate(symbols):
            values = panel.values[keep, s]
            frame = pd.DataFrame(values[:, [OPEN, HIGH, LOW, CLOSE, VOLUME]],
                                 columns=["open", "high", "low", "close", "volume"])  # fmt: skip
            frame.insert(0, "start", panel.starts[keep])
            await asyncio.to_thread(store.upsert_klines, symbol, interval, frame)

    async def backfill_funding(self, store, symbols, start, end) -> None:
        self.calls.append("backfill_funding")

    async def recheck(self, symbol, interval, stored, start, end) -> Recheck:
        self.calls.append("recheck")
        return Recheck(len(stored), [])

    def stream(self, symbols, interval, last_closed, sink) -> ScriptedStream:
        return ScriptedStream(self, last_closed, sink)

    def counters(self) -> dict[str, int]:
        return {"ws.messages": 0}


def test_the_daemon_imports_no_venue():
    source = Path(__file__).parents[2] / "bot" / "paper" / "daemon.py"
    modules = {
        node.module or ""
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.ImportFrom)
    }
    assert not [m for m in modules if m.startswith("bot.venues")], modules


async def test_any_market_data_drives_a_paper_run_that_equals_its_backtest(tmp_path):
    until = START + (WARM + LIVE) * HOUR_MS
    settings = parse_settings(
        {
            "engine": {"symbols": list(SYMBOLS), "interval": "1h"},
            "strategies": [{"name": "momentum",
                            "params": {"lookback": 12, "top": 1, "rebalance": "bar"}}],
            "instruments": {s: {"qty_step": 0.01, "tick_size": 0.01} for s in SYMBOLS},
            "store": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "data": {"funding": False},
            "paper": {"until": str(until)},
        },
        "test",
    )  # fmt: skip
    markets: list[InMemoryMarket] = []

    def market_data(config, stop):
        markets.append(InMemoryMarket(config, stop))
        return markets[-1]

    daemon = PaperDaemon(settings, new_run=True, market_data=market_data)
    run_id = await asyncio.wait_for(daemon.run(), 120)
    assert "backfill_bars" in markets[0].calls and "recheck" in markets[0].calls
    with Store(settings.store.url) as store:
        run = store.get_run(run_id)
        assert run["last_step"] == until
        assert len(store.decisions(run_id)) >= LIVE - 1  # it traded the streamed bars
        replay = await asyncio.to_thread(backtest_of_run, settings, store, run_id)
        assert compare_runs(store, run_id, replay) == []
