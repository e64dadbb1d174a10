"""A live daemon trading the local exchange's account shows what a paper one shows, plus its
private stream, its trading client and its executor; the trade and rejection counters equal
the store's at the end."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp
import pytest
from prometheus_client import generate_latest

from bot.exchange.server import ExchangeServer
from bot.monitoring.server import REGISTRY
from bot.store import Store
from tests.live.test_live_daemon import daemon_for, settings
from tests.monitoring.test_scrape_paper import values

pytestmark = pytest.mark.slow


async def test_a_live_daemon_is_scraped_like_a_paper_one_with_its_private_side(tmp_path):
    config = settings(tmp_path, insufficient_balance_probability=0.3, ws_drop_probability=0.05)
    async with ExchangeServer(config) as server, aiohttp.ClientSession() as http:
        daemon = daemon_for(config, server, new_run=True)
        task = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 120
        while True:  # until it trades, with its private stream up
            assert time.monotonic() < deadline and not task.done(), "it never traded"
            if daemon.monitor is not None:
                async with http.get(f"{daemon.monitor.url}/metrics") as reply:
                    seen = values(await reply.text())
                if seen.get(("bot_stream_up", (("stream", "private"),))) and seen.get(
                    ("bot_fills_total", ())
                ):
                    break
            await asyncio.sleep(0.05)
        assert seen[("bot_rest_requests_total", (("client", "trading"),))] > 0
        run_id = await asyncio.wait_for(task, 300)

    final = values(generate_latest(daemon.monitor.app[REGISTRY]).decode())
    with Store(config.store.url) as store:
        trades = Counter(f["exec_type"] for f in store.fills(run_id))["Trade"]
        rejected = Counter(o["status"] for o in store.order_ledger(run_id))["Rejected"]
    assert final[("bot_run_info", (("interval", "1h"), ("kind", "live"), ("run_id", run_id)))]
    assert final[("bot_fills_total", ())] == trades > 0
    assert final[("bot_order_rejections_total", ())] == rejected > 0
    assert final[("bot_live_rail_rejections_total", ())] == 0
    assert final[("bot_ws_messages_total", (("stream", "private"),))] > 0
