"""What monitoring reads from a running daemon, and the health facts read from it.

The daemons (:class:`~bot.paper.daemon.PaperDaemon` and the live one built on it) expose these
attributes anyway; naming them here keeps monitoring from reaching into anything else, and
lets tests observe a stand-in.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Protocol

from bot.monitoring.health import Facts

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.core.barrier import Barrier
    from bot.core.engine import Engine
    from bot.core.market_data import BarStream, MarketData
    from bot.monitoring.steps import StepMeter


class Observed(Protocol):
    kind: str  # "paper" or "live"
    settings: Settings
    symbols: tuple[str, ...]
    step: int  # the interval, ms
    engine: Engine | None  # built once history is fetched
    market: MarketData | None
    stream: BarStream | None  # made when the daemon goes live
    barrier: Barrier | None
    steps: StepMeter
    stop: asyncio.Event

    @property
    def run_id(self) -> str | None: ...

    @property
    def fault(self) -> BaseException | None: ...


def facts(daemon: Observed) -> Facts:
    """The daemon's health facts now (cheap: attribute reads, no I/O)."""
    now_ms = daemon.steps.now_ms()
    engine, stream = daemon.engine, daemon.stream
    halted = None
    if engine is not None and engine.risk.halted:
        halted = engine.risk.halt_reason or "halted"
    last_message_ms = None
    if stream is not None and stream.last_receipt_ns:
        ago_ns = time.perf_counter_ns() - stream.last_receipt_ns
        last_message_ms = now_ms - ago_ns // 1_000_000
    fault = daemon.fault
    return Facts(
        now_ms=now_ms,
        stopping=daemon.stop.is_set(),
        fault=None if fault is None else str(fault),
        halted=halted,
        stream_up=stream is not None and stream.connected,
        last_message_ms=last_message_ms,
        last_step_ms=daemon.steps.last_step_ms,
        live_since_ms=daemon.steps.live_since_ms,
    )
