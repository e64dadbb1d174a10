"""The /metrics exposition, parsed back with Prometheus' own parser: every value is the
counter the daemon keeps (engine, market data, barrier, step meter, live executor), each
daemon has a registry of its own, and live steps are timed without changing any decision."""

from __future__ import annotations

import asyncio
import functools
import time
from types import SimpleNamespace

import numpy as np
from prometheus_client import REGISTRY as GLOBAL_REGISTRY
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import parse_settings
from bot.core.barrier import Barrier
from bot.core.events import Bar
from bot.core.timeutil import HOUR_MS
from bot.feeds.synthetic import synthetic_panel
from bot.monitoring.health import Health
from bot.monitoring.live import read_live
from bot.monitoring.metrics import read_daemon, registry_for
from bot.monitoring.steps import StepMeter
from strategies import registry as strategy_registry
from tests.enginekit import make_engine

SYMBOLS = ("AAAUSDT", "BBBUSDT")
WALL = 1_717_200_000_000


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def momentum():
    return strategy_registry.create("momentum", SYMBOLS, "1h",
                                    {"lookback": 12, "top": 1, "rebalance": "bar"})  # fmt: skip


def observed(**extra) -> SimpleNamespace:
    """A daemon as monitoring sees it, whose parts did real work: an engine that traded 300
    bars, a barrier that saw a late bar, a step meter that recorded two live steps (one with
    a stale symbol), and the market data's counters."""
    panel = synthetic_panel(SYMBOLS, "1h", 300, seed=5, volatility=0.01)
    engine, _ = make_engine(panel, [momentum()], interval="1h")
    engine.process(panel)
    engine.stats.rejected, engine.stats.cancelled = 3, 2  # distinct, to catch a mix-up
    barrier = Barrier(SYMBOLS, HOUR_MS, 5_000, resume_after=int(panel.starts[-1]))
    barrier.add(Bar("AAAUSDT", "1h", int(panel.starts[-2]), 1, 1, 1, 1, 1), WALL)  # late
    steps = StepMeter(SYMBOLS, lambda: WALL)
    steps.going_live()
    steps.stepped(panel.slice(298, 299), time.perf_counter_ns() - 40_000_000)
    stale = panel.slice(299, 300)
    stale.present[0, 1] = False
    steps.stepped(stale, 0)  # released by the grace timer: no latency to observe
    counters = {"ws.messages": 1234, "ws.reconnects": 4, "ws.malformed": 5,
                "ws.future_updates": 1, "bars.closed": 600, "bars.backfilled": 17,
                "bars.duplicate": 6, "bars.wrong_interval": 2, "ws.corrected": 1,
                "audit.corrected": 2, "rest.requests": 90, "rest.retries": 7,
                "rest.failures": 1, "rest.refused_bars": 3}  # fmt: skip
    settings = parse_settings(
        {
            "engine": {"symbols": list(SYMBOLS), "interval": "1h"},
            "strategies": [{"name": "momentum"}],
            "instruments": {s: {"qty_step": 0.001} for s in SYMBOLS},
        },
        "test",
    )
    parts = dict(
        kind="paper", settings=settings, symbols=SYMBOLS, step=HOUR_MS, engine=engine,
        market=SimpleNamespace(counters=lambda: dict(counters)), barrier=barrier, steps=steps,
        stream=SimpleNamespace(connected=True, last_receipt_ns=time.perf_counter_ns()),
        stop=asyncio.Event(), run_id="0123456789abcdef", fault=None, panel=panel,
    )  # fmt: skip
    return SimpleNamespace(**{**parts, **extra})


def exposition(daemon, *readers) -> str:
    health = functools.partial(Health, True, "ok")
    registry = registry_for([functools.partial(read_daemon, daemon, health), *readers])
    return generate_latest(registry).decode()


def test_every_value_is_the_daemons_own_counter():
    daemon = observed()
    got = samples(exposition(daemon))
    stats, mark = daemon.engine.stats, daemon.engine.mark
    assert stats.orders > 0 and stats.fills > 0  # the engine really traded
    expected = {
        "bot_steps_total": stats.rows,
        "bot_decisions_total": stats.decisions,
        "bot_orders_total": stats.orders,
        "bot_fills_total": stats.fills,
        "bot_funding_settlements_total": stats.funding_events,
        "bot_order_rejections_total": 3,
        "bot_order_cancellations_total": 2,
        "bot_fees_usdt_total": stats.fees,
        "bot_equity_usdt": mark.equity,
        "bot_gross_exposure_usdt": mark.gross,
        "bot_drawdown_ratio": daemon.engine.risk.drawdown(mark.equity),
        "bot_halted": 0,
        "bot_last_step_close_timestamp_seconds": (daemon.panel.starts[-1] + HOUR_MS) / 1000,
        "bot_last_step_timestamp_seconds": WALL / 1000,
        "bot_stale_symbols": 1,
        "bot_healthy": 1,
        "bot_bars_received_total": 600,
        "bot_bars_backfilled_total": 17,
        "bot_bars_late_total": 1,
        "bot_bars_corrected_total": 3,
        "bot_bars_refused_total": 3,
        "bot_decision_latency_seconds_count": 1,
    }
    assert {name: got[(name, ())] for name in expected} == expected
    public = (("stream", "public"),)
    assert got[("bot_stream_up", public)] == 1
    assert got[("bot_ws_messages_total", public)] == 1234
    assert got[("bot_ws_reconnects_total", public)] == 4
    dropped = {dict(k[1])["reason"]: v for k, v in got.items()
               if k[0] == "bot_ws_messages_dropped_total"}  # fmt: skip
    assert dropped == {"malformed": 5, "unknown_topic": 0, "future": 1, "wrong_interval": 2,
                       "unknown_symbol": 0, "duplicate": 6, "out_of_order": 0}  # fmt: skip
    market = (("client", "market"),)
    assert (got[("bot_rest_requests_total", market)], got[("bot_rest_retries_total", market)],
            got[("bot_rest_failures_total", market)]) == (90, 7, 1)  # fmt: skip
    assert got[("bot_stale_marks_total", (("symbol", "AAAUSDT"),))] == 0
    assert got[("bot_stale_marks_total", (("symbol", "BBBUSDT"),))] == 1
    last = daemon.panel.starts[-2:] + HOUR_MS  # BBB's last bar came a step before AAA's
    assert got[("bot_last_bar_timestamp_seconds", (("symbol", "AAAUSDT"),))] == last[1] / 1000
    assert got[("bot_last_bar_timestamp_seconds", (("symbol", "BBBUSDT"),))] == last[0] / 1000
    assert 0.04 <= got[("bot_decision_latency_seconds_sum", ())] < 5
    info = (("interval", "1h"), ("kind", "paper"), ("run_id", "0123456789abcdef"))
    assert got[("bot_run_info", info)] == 1


def test_a_daemon_still_starting_shows_no_engine_numbers():
    daemon = observed(engine=None, stream=None, run_id=None)
    got = samples(exposition(daemon))
    assert not [k for k in got if k[0] in ("bot_steps_total", "bot_equity_usdt", "bot_run_info")]
    assert got[("bot_stream_up", (("stream", "public"),))] == 0


def test_the_live_parts_share_the_families_of_the_public_stream():
    daemon = observed(
        private=SimpleNamespace(connected=False, stats={"messages": 40, "reconnects": 2,
                                                        "malformed": 1, "duplicates": 3}),
        trader=SimpleNamespace(stats={"requests": 55, "retries": 4, "failures": 0}),
        executor=SimpleNamespace(counters={"rail_rejections": 2, "unknown_outcomes": 1}),
        reconcile_failures=6,
    )  # fmt: skip
    text = exposition(daemon, functools.partial(read_live, daemon))
    assert text.count("# HELP bot_ws_reconnects_total ") == 1  # one family, two streams
    got = samples(text)
    private = (("stream", "private"),)
    assert got[("bot_stream_up", private)] == 0
    assert got[("bot_ws_messages_total", private)] == 40
    assert got[("bot_ws_reconnects_total", (("stream", "public"),))] == 4
    assert got[("bot_ws_reconnects_total", private)] == 2
    assert got[("bot_ws_messages_dropped_total", (("reason", "duplicate"), *private))] == 3
    assert got[("bot_rest_retries_total", (("client", "trading"),))] == 4
    assert got[("bot_live_rail_rejections_total", ())] == 2
    assert got[("bot_live_unknown_outcomes_total", ())] == 1
    assert got[("bot_live_reconcile_failures_total", ())] == 6


def test_each_daemon_has_its_own_registry():
    one, two = observed(), observed()
    two.engine.stats.orders += 1000
    assert samples(exposition(one))[("bot_orders_total", ())] == one.engine.stats.orders
    assert samples(exposition(two))[("bot_orders_total", ())] == one.engine.stats.orders + 1000
    assert "bot_" not in generate_latest(GLOBAL_REGISTRY).decode()


def test_live_decisions_are_timed_without_changing_them():
    panel = synthetic_panel(SYMBOLS, "1h", 200, seed=5, volatility=0.01)
    meter = StepMeter(SYMBOLS, lambda: WALL)
    plain, _ = make_engine(panel, [momentum()], interval="1h")
    strategy = momentum()
    meter.timed([(strategy, 1.0)])
    timed, _ = make_engine(panel, [strategy], interval="1h")
    plain.process(panel.slice(0, 150))
    timed.process(panel.slice(0, 150))  # the replay before going live: not observed
    meter.going_live()
    for row in range(150, 200):  # live: one-row blocks, one call each
        plain.process(panel.slice(row, row + 1))
        timed.process(panel.slice(row, row + 1))
    np.testing.assert_array_equal(plain.equity_curve()[1], timed.equity_curve()[1])
    assert plain.stats.decisions == timed.stats.decisions > 0
    calls = samples(generate_latest(registry_for([lambda out: out.add(
        meter.inference_latency.collect())])).decode())  # fmt: skip
    assert calls[("bot_inference_latency_seconds_count", (("strategy", "momentum"),))] == 50
