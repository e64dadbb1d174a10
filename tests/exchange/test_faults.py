"""Faults: decided by (seed, connection, message index), so reproducible — and really
injected, so a client's recovery code runs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from bot.config import FaultsConfig
from bot.exchange import ExchangeServer
from bot.exchange.faults import ConnectionFaults, FaultCounters
from bot.exchange.outbox import Outbox
from tests.exchange.harness import HOUR, SYNTH_FIRST, FakeWall, collect, make_settings

START = SYNTH_FIRST + 100 * HOUR + 1
SPEED = 3600.0
TOPICS = ["kline.60.BTCUSDT", "kline.60.ETHUSDT", "orderbook.50.BTCUSDT"]
MIXED = {
    "duplicate_probability": 0.1,
    "malformed_probability": 0.05,
    "reorder_window": 4,
    "delay_ms": 3,
}


def decisions(config: FaultsConfig, seed: int, connection: int, n: int = 400) -> list[tuple]:
    plan = ConnectionFaults(config, seed, connection)
    return [
        (plan.malformed(i), plan.duplicate(i), plan.drop_after(i), plan.delay_s(i))
        for i in range(n)
    ] + [tuple(plan.order(w, 5)) for w in range(20)]


def test_decisions_depend_only_on_seed_connection_and_index():
    config = FaultsConfig(drop_probability=0.05, **MIXED)
    assert decisions(config, 7, 1) == decisions(config, 7, 1)
    assert decisions(config, 7, 1) != decisions(config, 8, 1)
    assert decisions(config, 7, 1) != decisions(config, 7, 2)
    made = decisions(config, 7, 1, 4000)[:4000]
    rate = sum(d[1] for d in made) / len(made)
    assert 0.08 < rate < 0.12  # duplicate_probability 0.1


def test_drop_every_counts_messages():
    plan = ConnectionFaults(FaultsConfig(drop_every=5), seed=1, connection=1)
    assert [i for i in range(20) if plan.drop_after(i)] == [4, 9, 14, 19]


async def drain(outbox: Outbox, n: int) -> list[str]:
    return [(await outbox.get()).text for _ in range(n)]


async def test_outbox_reorders_within_windows_and_duplicates():
    counters = FaultCounters()
    outbox = Outbox(ConnectionFaults(FaultsConfig(reorder_window=4), 3, 1), counters)
    for i in range(12):
        outbox.data(str(i))
    outbox.control("ack")  # control messages skip the held window
    sent = await drain(outbox, 13)
    data = [int(t) for t in sent if t != "ack"]
    assert [sorted(data[w : w + 4]) for w in (0, 4, 8)] == [
        list(range(w, w + 4)) for w in (0, 4, 8)
    ]
    assert data != sorted(data) and counters.reordered > 0

    counters = FaultCounters()
    outbox = Outbox(ConnectionFaults(FaultsConfig(duplicate_probability=1.0), 3, 1), counters)
    outbox.data("a")
    assert await drain(outbox, 2) == ["a", "a"] and counters.duplicates == 1


async def test_outbox_breaks_json_and_delays_in_order():
    counters = FaultCounters()
    config = FaultsConfig(malformed_probability=1.0, delay_ms=40)
    outbox = Outbox(ConnectionFaults(config, 3, 1), counters)
    outbox.data('{"topic":"x","data":[1,2,3]}')
    item = await outbox.get()
    with pytest.raises(ValueError):
        json.loads(item.text)
    assert counters.malformed == 1 and counters.delayed == 1
    assert item.send_at > asyncio.get_running_loop().time() - 0.001


async def run_client(
    seed: int, faults: dict[str, Any], advance_s: float = 6.0
) -> tuple[list[str], Any, dict[str, int]]:
    """Connect at START, subscribe, let ``advance_s`` wall seconds of market pass in one go;
    the data frames received, how the connection ended, the fault counters."""
    wall = FakeWall()
    settings = make_settings(
        speed=SPEED,
        start=str(START),
        start_on="serve",  # the wall moves while the subscription is still on its way
        bar_updates=3,
        seed=seed,
        end=str(START + 8 * HOUR),
        faults=faults,
    )
    async with ExchangeServer(settings, wall) as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(server.ws_url) as ws:
            await ws.send_str(json.dumps({"op": "subscribe", "args": TOPICS}))
            wall.t += advance_s
            frames, closed = await collect(ws, quiet=0.5)
        counters = server.state.counters.as_dict()
    data = [f for f in frames if not f.startswith('{"success"')]
    return data, closed, counters


async def test_same_seed_same_faults_other_seed_other_faults():
    first, _, counters = await run_client(7, MIXED)
    again, _, _ = await run_client(7, MIXED)
    other, _, _ = await run_client(8, MIXED)
    assert first == again
    # the seed also shapes the market itself, so compare where the faults hit, not contents
    assert signature(first) != signature(other)
    assert len(signature(first)) > 60
    for kind in ("duplicates", "malformed", "reordered", "delayed"):
        assert counters[kind] > 0, kind
    broken = [f for f in first if not _is_json(f)]
    assert 0 < len(broken) == counters["malformed"]
    parsed = [json.loads(f) for f in first if _is_json(f)]
    keys = [json.dumps(m, sort_keys=True) for m in parsed]
    assert len(keys) > len(set(keys))  # duplicated messages arrived twice
    stamps = [m["ts"] for m in parsed]
    assert stamps != sorted(stamps)  # and some arrived out of order


def signature(frames: list[str]) -> list[tuple]:
    """Which message came in each position (topic and time), or that it was broken."""
    return [
        (json.loads(f)["topic"], json.loads(f)["ts"]) if _is_json(f) else ("broken",)
        for f in frames
    ]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


async def test_drop_every_cuts_the_connection_after_n_data_messages():
    data, closed, counters = await run_client(7, {"drop_every": 10})
    assert len(data) == 10  # (the book snapshot is data too)
    assert closed is not None and closed.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert counters["drops"] == 1


async def test_drop_probability_drops_sometime():
    data, closed, counters = await run_client(7, {"drop_probability": 0.05})
    assert closed is not None and counters["drops"] == 1 and 0 < len(data) < 200


async def test_outage_closes_sockets_and_refuses_upgrades_while_rest_works():
    wall = FakeWall()
    outage_at = START + 2 * HOUR
    settings = make_settings(
        speed=SPEED,
        start=str(START),
        start_on="serve",  # the wall moves while the subscription is still on its way
        faults={"outage_at": str(outage_at), "outage_bars": 2},
    )
    async with ExchangeServer(settings, wall) as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(server.ws_url) as ws:
            await ws.send_str(json.dumps({"op": "subscribe", "args": TOPICS}))
            wall.t += 2.0  # market reaches the outage
            frames, closed = await collect(ws, quiet=1.0)
        assert closed is not None and closed.type == aiohttp.WSMsgType.CLOSE
        assert closed.data == 1001
        stamps = [json.loads(f).get("ts", 0) for f in frames]
        assert max(stamps) <= outage_at
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(server.ws_url)
        assert refused.value.status == 503
        async with http.get(server.rest_url + "/v5/market/time") as response:
            assert (await response.json())["retCode"] == 0
        wall.t += 2.0  # two bars later the service is back
        async with http.ws_connect(server.ws_url) as ws:
            await ws.send_str(json.dumps({"op": "ping"}))
            assert json.loads(await ws.receive_str(timeout=5))["ret_msg"] == "pong"
        counters = server.state.counters
        assert counters.outage_closes == 1 and counters.outage_refusals == 1
