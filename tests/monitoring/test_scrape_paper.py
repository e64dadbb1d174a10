"""Scraping a paper daemon while it trades the local exchange: the counters grow and match the
store at the end, and ``/healthz`` turns 503 naming the stream during a websocket outage, then
200 again once the stream is back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.assembly import venue_market_data
from bot.config import Settings
from bot.core.timeutil import HOUR_MS
from bot.exchange.server import ExchangeServer
from bot.monitoring.server import REGISTRY
from bot.paper.daemon import PaperDaemon
from bot.store import Store
from tests.paper.test_daemon import START, live, settings

pytestmark = pytest.mark.slow

OPENS = START + 30 * 24 * HOUR_MS  # the market opens here (test_daemon's settings)
OUTAGE_AT = OPENS + 100 * HOUR_MS  # five wall seconds after the first subscription
OUTAGE_BARS = 60  # three wall seconds at 20 bars a second
UNTIL = OUTAGE_AT + (OUTAGE_BARS + 30) * HOUR_MS


def monitored(tmp_path):
    config = settings(tmp_path)
    faults = config.exchange.faults.model_copy(
        update={"outage_at": str(OUTAGE_AT), "outage_bars": OUTAGE_BARS}
    )
    return config.model_copy(
        update={
            "exchange": config.exchange.model_copy(update={"faults": faults}),
            "monitoring": config.monitoring.model_copy(update={"port": 0, "step_slack_s": 1.0}),
            "paper": config.paper.model_copy(update={"until": str(UNTIL)}),
        }
    )


class HeldStartUp:
    """The venue's market data, with the start-up's history fetch held until ``release`` is
    set: the daemon is certainly starting while the test looks."""

    def __init__(self, settings: Settings, stop: asyncio.Event, release: asyncio.Event) -> None:
        self.inner = venue_market_data(settings, stop)
        self.release = release

    async def __aenter__(self) -> HeldStartUp:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.__aexit__(*exc)

    async def backfill_bars(self, *args: object) -> None:
        await self.release.wait()
        await self.inner.backfill_bars(*args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def values(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of an exposition, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def poll(condition, what: str, timeout: float = 60.0):
    """Await ``condition()`` until it returns something truthy (a generous deadline)."""
    deadline = time.monotonic() + timeout
    while not (found := await condition()):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)
    return found


async def test_metrics_and_health_while_trading_through_an_outage(tmp_path):
    config = monitored(tmp_path)
    async with ExchangeServer(config) as server, aiohttp.ClientSession() as http:
        release = asyncio.Event()
        daemon = PaperDaemon(live(config, server.port), new_run=True,
                             market_data=lambda s, stop: HeldStartUp(s, stop, release))  # fmt: skip
        task = asyncio.create_task(daemon.run())
        await poll(lambda: asyncio.sleep(0, daemon.monitor), "the monitoring server listens")
        base = daemon.monitor.url
        assert base.startswith("http://127.0.0.1:")

        async def health() -> tuple[int, str]:
            async with http.get(f"{base}/healthz") as reply:
                return reply.status, await reply.text()

        async def scrape() -> dict:
            async with http.get(f"{base}/metrics") as reply:
                assert reply.status == 200
                return values(await reply.text())

        async def healthy() -> bool:
            return (await health())[0] == 200

        assert await health() == (503, "starting: catching up\n")
        starting = await scrape()
        assert starting[("bot_healthy", ())] == 0
        assert ("bot_steps_total", ()) not in starting  # no engine yet: nothing made up
        release.set()
        await poll(healthy, "the daemon is live and healthy")
        before = await scrape()

        async def more_bars() -> bool:
            return (await scrape())[("bot_bars_received_total", ())] > before.get(
                ("bot_bars_received_total", ()), 0
            )

        await poll(more_bars, "bars received grows")

        async def outage() -> str | None:
            status, body = await health()
            return body if status == 503 else None

        down = await poll(outage, "/healthz reports the outage")
        assert down.startswith("stream down since "), down
        during = await scrape()
        assert during[("bot_stream_up", (("stream", "public"),))] == 0
        assert during[("bot_healthy", ())] == 0

        async def recovered() -> dict | None:
            if not await healthy():
                return None
            now = await scrape()
            return now if now[("bot_steps_total", ())] > during[("bot_steps_total", ())] else None

        after = await poll(recovered, "the stream is back and steps resume")
        assert after[("bot_ws_reconnects_total", (("stream", "public"),))] >= 1
        assert after[("bot_stream_up", (("stream", "public"),))] == 1
        run_id = await asyncio.wait_for(task, 120)  # ends at paper.until

    final = values(generate_latest(daemon.monitor.app[REGISTRY]).decode())
    with Store(config.store.url) as store:
        kinds = Counter(f["exec_type"] for f in store.fills(run_id))
        orders = len(store.orders(run_id))
        decisions = len(store.decisions(run_id))
        equity = store.equity(run_id)
    assert kinds["Trade"] > 0 and orders > 0
    assert final[("bot_fills_total", ())] == kinds["Trade"]
    assert final[("bot_funding_settlements_total", ())] == kinds["Funding"]
    assert final[("bot_orders_total", ())] == orders
    assert final[("bot_decisions_total", ())] == decisions
    # equity as marked at the last close (the store snapshots it at the next step's jobs)
    assert final[("bot_equity_usdt", ())] == daemon.engine.mark.equity
    assert final[("bot_last_step_close_timestamp_seconds", ())] == UNTIL / 1000
    assert final[("bot_gross_exposure_usdt", ())] == daemon.engine.mark.gross
    assert equity  # snapshots were journaled
    assert final[("bot_run_info", (("interval", "1h"), ("kind", "paper"), ("run_id", run_id)))]
    assert final[("bot_decision_latency_seconds_count", ())] > 0
    assert final[("bot_inference_latency_seconds_count", (("strategy", "momentum"),))] > 0
