"""What a daemon's steps did that no other part counts: when the last one ran, which symbols
were stale, how long decisions and model inference took.

Everything else the metrics show is read at scrape time from counters the engine, the stream
and the executor keep anyway; these few are recorded here, once per step or per strategy call
(never per message), by the daemon that owns the meter.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from prometheus_client import Histogram

from bot.core.context import StrategyLike
from bot.core.events import Panel

S = TypeVar("S", bound=StrategyLike)

#: Seconds: a decision on a small machine takes milliseconds; a retrain holds one for minutes.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


class StepMeter:
    """Per-daemon step records (its histograms are registered with the daemon's registry by
    :mod:`bot.monitoring.metrics`, never with the process-global one)."""

    def __init__(self, symbols: Sequence[str], now_ms: Callable[[], int]) -> None:
        self.symbols = tuple(symbols)
        self.now_ms = now_ms  # the daemon's wall clock
        self.last_step_ms: int | None = None
        self.live_since_ms: int | None = None
        self.stale_marks = np.zeros(len(self.symbols), dtype=np.int64)  # steps stale, per symbol
        self.stale_now = 0  # symbols stale at the last step
        self.last_bar_ms = np.full(len(self.symbols), -1, dtype=np.int64)  # start, per symbol
        self.decision_latency = Histogram(
            "bot_decision_latency_seconds",
            "From the websocket message that closed a step to its decisions made, orders "
            "handed over and records flushed (live steps released by a message)",
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.inference_latency = Histogram(
            "bot_inference_latency_seconds",
            "One live call of a strategy's decision function (model inference included)",
            ["strategy"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )

    def going_live(self) -> None:
        """The daemon streams from now on: steps are due, strategy calls are live ones."""
        self.live_since_ms = self.now_ms()

    def stepped(self, rows: Panel, received_ns: int) -> None:
        """``rows`` were processed; the message that released them arrived at ``received_ns``
        (perf_counter_ns; 0 when none did: a grace timeout, a catch-up at start-up)."""
        if received_ns:
            self.decision_latency.observe((time.perf_counter_ns() - received_ns) / 1e9)
        missing = ~rows.present
        self.stale_marks += missing.sum(axis=0)
        self.stale_now = int(missing[-1].sum())
        starts = np.where(rows.present, rows.starts[:, None], -1).max(axis=0)
        np.maximum(self.last_bar_ms, starts, out=self.last_bar_ms)
        self.last_step_ms = self.now_ms()

    def timed(self, strategies: list[tuple[S, float]]) -> list[tuple[S, float]]:
        """Time each strategy's live decision calls: the method the engine calls (``on_bars``
        when the strategy has it, else ``on_bar``) is wrapped on the instance. Calls before
        the daemon goes live (a replay's blocks of thousands of rows) are not observed."""
        for strategy, _ in strategies:
            name = "on_bars" if callable(getattr(strategy, "on_bars", None)) else "on_bar"
            child = self.inference_latency.labels(strategy=strategy.name)
            setattr(strategy, name, self._timing(getattr(strategy, name), child))
        return strategies

    def _timing(self, decide: Callable[[Any], Any], child: Histogram) -> Callable[[Any], Any]:
        @functools.wraps(decide)
        def timed(ctx: Any) -> Any:
            if self.live_since_ms is None:
                return decide(ctx)
            began = time.perf_counter()
            try:
                return decide(ctx)
            finally:
                child.observe(time.perf_counter() - began)

        return timed
