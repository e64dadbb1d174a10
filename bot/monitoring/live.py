"""What a live daemon counts beyond a paper one: its private stream, its trading REST client
and its executor's refusals (read at scrape time, like the rest: see
:mod:`bot.monitoring.metrics`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from bot.monitoring.metrics import (
    STREAM_UP,
    WS_DROPPED,
    WS_MESSAGES,
    WS_RECONNECTS,
    Families,
    read_rest,
)

if TYPE_CHECKING:
    from bot.live.executor import LiveExecutor
    from bot.venues.bybit.private_rest import TradingRest
    from bot.venues.bybit.private_stream import PrivateStream


class LiveObserved(Protocol):
    trader: TradingRest | None
    executor: LiveExecutor | None  # made when the run goes live
    private: PrivateStream | None
    reconcile_failures: int


def read_live(daemon: LiveObserved, out: Families) -> None:
    private, executor = daemon.private, daemon.executor
    out.gauge(
        "bot_stream_up", STREAM_UP, private is not None and private.connected, stream="private"
    )
    if private is not None:
        stats = private.stats
        out.counter("bot_ws_messages_total", WS_MESSAGES, stats["messages"], stream="private")
        out.counter("bot_ws_reconnects_total", WS_RECONNECTS, stats["reconnects"], stream="private")
        for reason, key in (("malformed", "malformed"), ("duplicate", "duplicates")):
            out.counter(
                "bot_ws_messages_dropped_total",
                WS_DROPPED,
                stats[key],
                stream="private",
                reason=reason,
            )
    if daemon.trader is not None:
        read_rest("trading", daemon.trader.stats, out, prefix="")
    if executor is not None:
        counters = executor.counters
        out.counter(
            "bot_live_rail_rejections_total",
            "Orders the bot's own rails refused (counted in bot_order_rejections_total too)",
            counters["rail_rejections"],
        )
        out.counter(
            "bot_live_unknown_outcomes_total",
            "Orders whose outcome was unknown (timeout, reset) and had to be looked up",
            counters["unknown_outcomes"],
        )
    out.counter(
        "bot_live_reconcile_failures_total",
        "Periodic reconciliations skipped: the account could not be read",
        daemon.reconcile_failures,
    )
