"""A live daemon in a process of its own, for the restart tests to kill
(:mod:`tests.live.test_live_restarts`).

``python -m tests.live.crash_runner SPEC.json`` runs one :class:`~bot.live.daemon.LiveDaemon`
against the local exchange the test process serves (``port``), on the test's store, with the
settings of :func:`tests.live.test_live_daemon.settings`. With ``point`` set, it dies by
``os._exit(CRASH_STATUS)`` the ``nth`` time the daemon reaches that point — nothing is
flushed, closed or handed back, as in a power cut — after writing what it was doing to
``marker`` (so the test can check the crash left exactly the hazard it names). Without
``point`` it trades until the test SIGKILLs it.

The hooks wrap production methods from the outside (monkeypatching, in this process only):
the production code carries no crash points of its own.

``SPEC.json``: ``tmp_path``, ``port``, ``settings`` (keyword arguments of ``settings``, the
same the test's exchange was built with), ``new_run``, ``run_id``, ``resend_window_s``, and
``point``, ``nth``, ``marker`` to crash.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bot.config import Settings
from bot.live.daemon import LiveDaemon, StoreLedger
from bot.live.executor import LiveExecutor
from bot.live.rails import RailLimits
from bot.paper.journals import GatedJournal
from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.private_rest import TradingRest
from tests.live.test_live_daemon import KEY, SECRET, settings

CRASH_STATUS = 137  # what a shell reports for a SIGKILLed process

#: The named crash points, in the order an order's life reaches them.
POINTS = (
    "intent_stored",  # the leg's write-ahead row is committed; the request is not sent
    "request_sent",  # the request reached the exchange (it answered); the answer is unread
    "response_received",  # create_order returned the acknowledgement; nothing recorded yet
    "filled_unseen",  # the exchange filled the order; its execution is not booked yet
    "booked_unflushed",  # the engine booked the fill; the journal has not flushed it
)


class Trigger:
    """Counts arrivals at the crash point; the ``nth`` one ends the process."""

    def __init__(self, point: str, nth: int, marker: Path) -> None:
        self.point, self.nth, self.marker = point, nth, marker
        self.seen = 0

    def reached(self) -> bool:
        self.seen += 1
        return self.seen == self.nth

    def crash(self, **detail: Any) -> None:
        self.marker.write_text(json.dumps({"point": self.point, **detail}))
        logging.getLogger("crash_runner").warning("crashing at %s: %s", self.point, detail)
        logging.shutdown()
        os._exit(CRASH_STATUS)


_creating: contextvars.ContextVar[str | None] = contextvars.ContextVar("creating", default=None)


def install(trigger: Trigger) -> None:
    """Wrap the method that reaches ``trigger.point`` so that it crashes there."""
    point = trigger.point
    if point == "intent_stored":
        write_intent = StoreLedger.write_intent

        def stored(self, leg, created_at):
            write_intent(self, leg, created_at)
            if trigger.reached():
                trigger.crash(link_id=leg.link_id)

        StoreLedger.write_intent = stored
    elif point == "request_sent":
        create_order, read = TradingRest.create_order, aiohttp.ClientResponse.read

        async def creating(self, request):
            token = _creating.set(request.link_id)
            try:
                return await create_order(self, request)
            finally:
                _creating.reset(token)

        async def unread(self):
            link_id = _creating.get()
            if link_id is not None and self.url.path == "/v5/order/create" and trigger.reached():
                trigger.crash(link_id=link_id, http_status=self.status)
            return await read(self)

        TradingRest.create_order = creating
        aiohttp.ClientResponse.read = unread
    elif point == "response_received":
        create_order = TradingRest.create_order

        async def answered(self, request):
            ack = await create_order(self, request)
            if trigger.reached():
                trigger.crash(link_id=request.link_id, order_id=ack.order_id)
            return ack

        TradingRest.create_order = answered
    elif point == "filled_unseen":
        on_execution = LiveExecutor.on_execution

        def arriving(self, execution):
            fresh = execution.exec_id not in self._seen and execution.exec_type == "Trade"
            if fresh and trigger.reached():  # from the stream or a look-up, before booking
                trigger.crash(link_id=execution.link_id, exec_id=execution.exec_id)
            on_execution(self, execution)

        LiveExecutor.on_execution = arriving
    elif point == "booked_unflushed":
        record_fill, flush = GatedJournal.record_fill, GatedJournal.flush
        booked: list[dict[str, Any]] = []

        def recording(self, fill):
            record_fill(self, fill)
            if self.open and fill.exec_type == "Trade" and not booked and trigger.reached():
                booked.append({"link_id": fill.link_id, "exec_id": fill.exec_id})

        def flushing(self):
            if booked:  # the fill is in the engine's books and the journal's buffer only
                trigger.crash(**booked[0])
            flush(self)

        GatedJournal.record_fill = recording
        GatedJournal.flush = flushing
    else:
        raise ValueError(f"no crash point {point!r}; one of {POINTS}")


def daemon_at(config: Settings, port: int, **kwargs: Any) -> LiveDaemon:
    """The daemon of :func:`tests.live.test_live_daemon.daemon_for`, by port."""
    rest_url = f"http://{config.exchange.host}:{port}"
    return LiveDaemon(
        config, credentials=Credentials(KEY, SECRET), rest_url=rest_url,
        private_ws_url=rest_url.replace("http://", "ws://") + "/v5/private",
        rails=RailLimits(), settle_timeout_s=1.0, **kwargs,
    )  # fmt: skip


def config_of(spec: dict[str, Any]) -> Settings:
    """The test's settings (``settings`` keyword arguments), on the test exchange's port."""
    return settings(Path(spec["tmp_path"]), port=spec["port"], **spec["settings"])


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    line = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=line)
    if spec.get("point"):
        install(Trigger(spec["point"], spec["nth"], Path(spec["marker"])))
    daemon = daemon_at(config_of(spec), spec["port"], new_run=spec["new_run"],
                       run_id=spec.get("run_id"),
                       resend_window_s=spec["resend_window_s"])  # fmt: skip
    run_id = asyncio.run(daemon.run())
    print(f"run {run_id} ended", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
