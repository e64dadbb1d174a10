"""Where the tape comes from (files, the store, synthetic), and starting the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
import pytest

from bot.exchange import ExchangeServer, serve
from bot.exchange.tape import load_tape
from bot.feeds.loaders import DataError
from bot.store import Store
from tests.exchange.harness import HOUR, SYNTH_FIRST, make_settings


def bars(n: int, first: int = SYNTH_FIRST) -> pd.DataFrame:
    price = 100.0 + np.arange(n)
    return pd.DataFrame(
        {
            "timestamp_ms": first + HOUR * np.arange(n, dtype=np.int64),
            "open": price,
            "high": price + 1.5,
            "low": price - 1.25,
            "close": price + 0.5,
            "volume": 10.0 + np.arange(n),
        }
    )


def test_files_give_bars_until_the_end_and_funding(tmp_path: Path):
    (tmp_path / "1h").mkdir()
    (tmp_path / "funding-8h").mkdir()
    bars(10).to_csv(tmp_path / "1h" / "BTCUSDT.csv", index=False)
    bars(6, SYNTH_FIRST + 2 * HOUR).to_csv(tmp_path / "1h" / "ETHUSDT.csv", index=False)
    times = SYNTH_FIRST + 8 * HOUR * np.arange(3)
    pd.DataFrame({"timestamp_ms": times, "funding_rate": [1e-4, 2e-4, -1e-4]}).to_csv(
        tmp_path / "funding-8h" / "BTCUSDT.csv", index=False
    )
    settings = make_settings(
        source="csv", end=str(SYNTH_FIRST + 8 * HOUR), top={"data": {"path": str(tmp_path)}}
    )
    tape = load_tape(settings)
    assert tape.first == SYNTH_FIRST and tape.slots == 8 and tape.code == "60"
    assert tape.bar_slots(1).tolist() == [2, 3, 4, 5, 6, 7]  # ETH lists two bars later
    assert tape.bar(0, 3)[:5] == (103.0, 104.5, 101.75, 103.5, 13.0)
    assert np.isnan(tape.bar(0, 3).turnover)  # the files have none
    assert tape.funding["BTCUSDT"][1].tolist() == [1e-4, 2e-4, -1e-4]
    assert "ETHUSDT" not in tape.funding


def test_the_store_gives_bars_and_funding(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    with Store(url) as store:
        for symbol in ("BTCUSDT", "ETHUSDT"):
            frame = bars(5).rename(columns={"timestamp_ms": "start"})
            frame["turnover"] = frame["volume"] * 100.0
            store.upsert_klines(symbol, "1h", frame)
        store.upsert_funding("ETHUSDT", [SYNTH_FIRST], [0.0003])
    tape = load_tape(make_settings(source="store", top={"store": {"url": url}}))
    assert tape.slots == 5 and tape.bar(1, 4).turnover == 1400.0
    assert tape.funding["ETHUSDT"][1].tolist() == [0.0003]
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(DataError, match="no 1h bars"):
        load_tape(make_settings(source="store", top={"store": {"url": empty}}))


def test_synthetic_bars_stop_at_the_end():
    tape = load_tape(make_settings(bars=50, end=str(SYNTH_FIRST + 20 * HOUR)))
    assert tape.slots == 20 and tape.funding == {}


async def test_serve_binds_a_free_port_and_stops_when_cancelled():
    settings = make_settings(bars=50)
    server = ExchangeServer(settings)
    ready = asyncio.Event()
    task = asyncio.create_task(serve(settings, ready, server))
    await asyncio.wait_for(ready.wait(), 10)
    assert server.port and server.port != 0
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.port}/_local/status") as response,
    ):
        status = json.loads(await response.text())
    assert status["port"] == server.port and status["market_now"] >= SYNTH_FIRST
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"http://127.0.0.1:{server.port}/_local/status")
