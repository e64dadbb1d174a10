"""``/_local/…``: the operator's side of the local exchange (not part of Bybit's API).

``GET /_local/status`` reports the market, the traffic and the faults. ``POST /_local/pause``
freezes market time — REST answers and websocket streams stand still, connections stay open —
and ``POST /_local/resume`` continues from where it stood; ``POST /_local/start`` starts a
market still held for its first subscriber (a REST-only client, such as ``bot data fetch
--local``, never subscribes). Each answers the status after the change.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bot.exchange.clock import MarketClock
from bot.exchange.rest import STATE, Handler, json_response


async def status(request: web.Request) -> web.StreamResponse:
    return json_response(request.app[STATE].status())


def clock_action(action: Callable[[MarketClock], None]) -> Handler:
    """A handler applying ``action`` to the market clock, then answering the status."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        action(state.clock)
        return json_response(state.status())

    return handle


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_local/status", status)
    app.router.add_post("/_local/start", clock_action(MarketClock.start))
    app.router.add_post("/_local/pause", clock_action(MarketClock.pause))
    app.router.add_post("/_local/resume", clock_action(MarketClock.resume))
