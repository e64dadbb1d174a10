"""``/metrics``: a daemon's counters in Prometheus' format, read when scraped.

The engine (:class:`~bot.core.engine.RunStats`, the portfolio's mark, the risk manager), the
market data (``counters()``, the same the status line prints), the barrier and the executor
count what they do anyway; a collector reads those counters at scrape time, so nothing is
counted twice and nothing is added to a hot loop. Only what nobody counted (step times, stale
marks, latencies) is recorded, by :class:`~bot.monitoring.steps.StepMeter`.

Each daemon has its own :class:`~prometheus_client.CollectorRegistry` (several daemons run in
one test process); a scrape reads memory only, never the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from bot.monitoring.health import Health

if TYPE_CHECKING:
    from bot.core.engine import Engine
    from bot.monitoring.observed import Observed

#: Updates the stream refused, by reason: the market data's counter behind each.
DROPPED = {
    "malformed": "ws.malformed",
    "unknown_topic": "ws.unknown_topic",
    "future": "ws.future_updates",
    "wrong_interval": "bars.wrong_interval",
    "unknown_symbol": "bars.unknown_symbol",
    "duplicate": "bars.duplicate",
    "out_of_order": "bars.out_of_order",
}

#: What the metrics every part of a daemon shares mean (one text per name: a family is
#: described once, whichever part adds samples to it).
STREAM_UP = "1 while the websocket is connected (and, private, authenticated)"
WS_MESSAGES = "Websocket messages received"
WS_RECONNECTS = "Websocket reconnections"
WS_DROPPED = "Websocket messages or updates refused and dropped, by reason"


class Families:
    """The metric families of one scrape. A name given twice adds a sample to the family it
    named first, so several readers (the paper part, the live part) can share a metric with
    different label values without exposing it twice."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def counter(self, name: str, doc: str, value: float, **labels: str) -> None:
        self._add(CounterMetricFamily, name, doc, value, labels)

    def gauge(self, name: str, doc: str, value: float, **labels: str) -> None:
        self._add(GaugeMetricFamily, name, doc, value, labels)

    def info(self, name: str, doc: str, **labels: str) -> None:
        self._families[name] = InfoMetricFamily(name, doc, value=labels)

    def add(self, families: Iterable[Metric]) -> None:
        for family in families:
            self._families[family.name] = family

    def _add(self, kind: type, name: str, doc: str, value: float, labels: dict[str, str]) -> None:
        keys = sorted(labels)
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = kind(name, doc, labels=keys)
        family.add_metric([labels[k] for k in keys], float(value))

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


#: Adds what one part of a daemon counts to a scrape.
Reader = Callable[[Families], None]


class DaemonCollector:
    """A Prometheus collector that asks its readers at every scrape."""

    def __init__(self, readers: Iterable[Reader]) -> None:
        self.readers = list(readers)

    def collect(self) -> Iterator[Metric]:
        out = Families()
        for read in self.readers:
            read(out)
        return iter(out)


def registry_for(readers: Iterable[Reader]) -> CollectorRegistry:
    """A registry of its own for one daemon's readers."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(readers))
    return registry


def read_daemon(daemon: Observed, health: Callable[[], Health], out: Families) -> None:
    """What every daemon (paper or live) counts."""
    if daemon.run_id is not None:
        out.info(
            "bot_run",
            "The run this daemon drives",
            run_id=daemon.run_id,
            kind=daemon.kind,
            interval=daemon.settings.engine.interval,
        )
    out.gauge("bot_healthy", "1 when /healthz answers 200, else 0", health().ok)
    _read_steps(daemon, out)
    if daemon.engine is not None:
        _read_engine(daemon.engine, out)
    _read_market(daemon, out)


def _read_steps(daemon: Observed, out: Families) -> None:
    steps = daemon.steps
    if steps.last_step_ms is not None:
        out.gauge(
            "bot_last_step_timestamp_seconds",
            "Wall time the last step was processed",
            steps.last_step_ms / 1000,
        )
    out.gauge(
        "bot_stale_symbols",
        "Symbols without a bar at the last step (the barrier's grace ran out)",
        steps.stale_now,
    )
    for symbol, marks, last in zip(
        daemon.symbols, steps.stale_marks.tolist(), steps.last_bar_ms.tolist(), strict=True
    ):
        out.counter(
            "bot_stale_marks_total",
            "Steps decided with the symbol marked stale",
            marks,
            symbol=symbol,
        )
        if last >= 0:
            out.gauge(
                "bot_last_bar_timestamp_seconds",
                "Close (market time) of the symbol's last bar taken into a step",
                (last + daemon.step) / 1000,
                symbol=symbol,
            )
    out.add(steps.decision_latency.collect())
    out.add(steps.inference_latency.collect())


def _read_engine(engine: Engine, out: Families) -> None:
    stats, mark = engine.stats, engine.mark
    out.counter(
        "bot_steps_total",
        "Steps processed by the engine since the daemon started (a restart's replay included)",
        stats.rows,
    )
    out.counter("bot_decisions_total", "Strategy decisions recorded", stats.decisions)
    out.counter("bot_orders_total", "Orders handed to the executor", stats.orders)
    out.counter("bot_fills_total", "Trades booked (fills of orders; funding apart)", stats.fills)
    out.counter("bot_funding_settlements_total", "Funding settlements booked", stats.funding_events)
    out.counter(
        "bot_order_rejections_total", "Orders the executor or venue rejected", stats.rejected
    )
    out.counter(
        "bot_order_cancellations_total",
        "Orders cancelled (an IOC's unfilled rest)",
        stats.cancelled,
    )
    out.counter("bot_fees_usdt_total", "Trading fees paid", stats.fees)
    out.gauge("bot_equity_usdt", "Equity marked at the last processed close", mark.equity)
    out.gauge(
        "bot_gross_exposure_usdt", "Sum of |position value| at the last processed close", mark.gross
    )
    out.gauge(
        "bot_drawdown_ratio",
        "Drawdown of equity from its peak (0.1 = 10%)",
        engine.risk.drawdown(mark.equity),
    )
    out.gauge(
        "bot_halted", "1 when the run decides no more (kill switch, halt)", engine.risk.halted
    )
    if mark.time:
        out.gauge(
            "bot_last_step_close_timestamp_seconds",
            "Close (market time) of the last processed step",
            mark.time / 1000,
        )


def _read_market(daemon: Observed, out: Families) -> None:
    seen = daemon.market.counters() if daemon.market is not None else {}
    stream = daemon.stream
    out.gauge("bot_stream_up", STREAM_UP, stream is not None and stream.connected, stream="public")
    out.counter("bot_ws_messages_total", WS_MESSAGES, seen.get("ws.messages", 0), stream="public")
    out.counter(
        "bot_ws_reconnects_total", WS_RECONNECTS, seen.get("ws.reconnects", 0), stream="public"
    )
    for reason, key in DROPPED.items():
        out.counter(
            "bot_ws_messages_dropped_total",
            WS_DROPPED,
            seen.get(key, 0),
            stream="public",
            reason=reason,
        )
    out.counter(
        "bot_bars_received_total", "Closed bars the websocket delivered", seen.get("bars.closed", 0)
    )
    out.counter(
        "bot_bars_backfilled_total",
        "Closed bars fetched over REST to fill what the websocket missed",
        seen.get("bars.backfilled", 0),
    )
    out.counter(
        "bot_bars_late_total",
        "Bars that came after their step was decided",
        daemon.barrier.late if daemon.barrier is not None else 0,
    )
    out.counter(
        "bot_bars_corrected_total",
        "Closes the venue's REST record contradicted",
        seen.get("ws.corrected", 0) + seen.get("audit.corrected", 0),
    )
    out.counter(
        "bot_bars_refused_total",
        "Bars from REST refused at the boundary (prices or times no market prints)",
        seen.get("rest.refused_bars", 0),
    )
    read_rest("market", seen, out)


def read_rest(client: str, stats: dict[str, int], out: Families, prefix: str = "rest.") -> None:
    """A REST client's requests, retries and failures (``client``: which one)."""
    out.counter(
        "bot_rest_requests_total",
        "REST requests sent",
        stats.get(f"{prefix}requests", 0),
        client=client,
    )
    out.counter(
        "bot_rest_retries_total",
        "REST requests retried (rate limits, 403/429/5xx, timeouts)",
        stats.get(f"{prefix}retries", 0),
        client=client,
    )
    out.counter(
        "bot_rest_failures_total",
        "REST requests given up after their retries",
        stats.get(f"{prefix}failures", 0),
        client=client,
    )
