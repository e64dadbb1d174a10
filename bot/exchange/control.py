"""``/_local/…``: the operator's side of the local exchange (not part of Bybit's API).

``GET /_local/status`` reports the market, the traffic and the faults. ``POST /_local/pause``
freezes market time — REST answers and websocket streams stand still, connections stay open —
and ``POST /_local/resume`` continues from where it stood; ``POST /_local/start`` starts a
market still held for its first subscriber (a REST-only client, such as ``bot data fetch
--local``, never subscribes). Each answers the status after the change.

The private side: ``POST /_local/restart`` simulates an exchange restart (``/v5/order/realtime``
forgets its closed orders, as Bybit's does after a release); ``POST /_local/manual_order`` with
``{"account": name, "symbol": s, "side": "Buy"|"Sell", "qty"?: "0.01"}`` places a market order
on an account as its owner would on the website, behind the client's back. The status's
``private`` part counts requests and POSTs per account and every private fault that fired.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import orjson
from aiohttp import web

from bot.exchange.clock import MarketClock
from bot.exchange.money import parse
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


async def restart(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.private.restart()
    return json_response(state.status())


async def manual_order(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    private = state.private
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return json_response({"error": "the body must be a JSON object"}, status=400)
    account, symbol, side = body.get("account"), body.get("symbol"), body.get("side")
    qty: Decimal | None = parse(body["qty"]) if "qty" in body else None
    problems = [
        account not in private.members and f"no account {account!r}",
        symbol not in private.market.symbols and f"no symbol {symbol!r}",
        side not in ("Buy", "Sell") and "side must be Buy or Sell",
        "qty" in body and (qty is None or qty <= 0) and "qty must be a positive decimal string",
    ]
    errors = [p for p in problems if p]
    if errors:
        return json_response({"error": "; ".join(errors)}, status=400)
    private.advance()
    order = private.manual_order(account, symbol, side, qty)
    return json_response({"orderId": order.order_id, "status": state.status()})


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_local/status", status)
    app.router.add_post("/_local/start", clock_action(MarketClock.start))
    app.router.add_post("/_local/pause", clock_action(MarketClock.pause))
    app.router.add_post("/_local/resume", clock_action(MarketClock.resume))
    app.router.add_post("/_local/restart", restart)
    app.router.add_post("/_local/manual_order", manual_order)
