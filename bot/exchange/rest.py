"""Bybit's public market REST endpoints over the replayed market.

Bybit conventions kept: errors come with HTTP 200 and a non-zero ``retCode`` (10001 for bad
parameters, with a message naming the problem), every response carries the rate-limit headers,
``time`` is (market) server time in ms. The middleware injects the REST faults: every Nth
request a 10006 whose reset timestamp lies ahead on the *wall* clock (pybit sleeps until it on
its own clock and crashes on a negative sleep), every Mth an HTTP 403 with an empty body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from bot.exchange.faults import RestFaults
from bot.exchange.instruments import instrument_info
from bot.exchange.state import ExchangeState

STATE = web.AppKey("exchange_state", ExchangeState)

LIMIT = 600  # requests per window: Bybit's per-IP REST limit (600 per 5 s)
WINDOW_MS = 5_000
#: A 10006 reset is at least this far ahead of the wall clock, so a client comparing it with
#: its own clock a moment later still finds it in the future (pybit sleeps the difference).
MIN_RESET_AHEAD_MS = 50
KLINE_LIMIT, KLINE_DEFAULT = 1000, 200
FUNDING_LIMIT = 200

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ParamError(ValueError):
    """A request parameter Bybit would refuse with retCode 10001."""


class RateWindow:
    """The numbers behind the rate-limit headers (reported, not enforced: only the fault
    configuration limits requests)."""

    def __init__(self) -> None:
        self.window_start = 0
        self.count = 0

    def hit(self, wall_ms: int) -> tuple[int, int]:
        """(remaining requests, reset wall ms) after one more request."""
        if wall_ms >= self.window_start + WINDOW_MS:
            self.window_start, self.count = wall_ms, 0
        self.count += 1
        return max(0, LIMIT - self.count), self.window_start + WINDOW_MS


RATE_WINDOW = web.AppKey("rate_window", RateWindow)


def envelope(
    state: ExchangeState,
    result: dict[str, Any],
    code: int = 0,
    msg: str = "OK",
    now: int | None = None,
) -> dict:
    """The v5 envelope. ``time`` must be the market time the result was computed at: a client
    tells a closed candle from the forming one by it, so a later clock read could make a
    forming candle look closed."""
    return {
        "retCode": code,
        "retMsg": msg,
        "result": result,
        "retExtInfo": {},
        "time": state.clock.now() if now is None else now,
    }


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


@web.middleware
async def bybit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Faults and rate-limit headers for every ``/v5/market/`` request."""
    if not request.path.startswith("/v5/market/"):
        return await handler(request)
    state = request.app[STATE]
    state.stats.rest_requests += 1
    wall = state.clock.wall_ms()
    remaining, reset = request.app[RATE_WINDOW].hit(wall)
    fault = state.rest_faults.next_request()
    response: web.StreamResponse
    if fault == RestFaults.RATE_LIMIT:
        response = json_response(envelope(state, {}, 10006, "Too many visits"))
        ahead = max(state.settings.exchange.faults.rate_limit_reset_ms, MIN_RESET_AHEAD_MS)
        remaining, reset = 0, wall + ahead
    elif fault == RestFaults.HTTP_ERROR:
        response = web.Response(status=403, body=b"")
    else:
        response = await handler(request)
    response.headers["X-Bapi-Limit"] = str(LIMIT)
    response.headers["X-Bapi-Limit-Status"] = str(remaining)
    response.headers["X-Bapi-Limit-Reset-Timestamp"] = str(reset)
    return response


def _int(query: Any, name: str, default: int | None = None) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ParamError(f"params error: {name} must be an integer, not {text!r}") from None


def _category(query: Any) -> str:
    category = query.get("category", "linear")
    if category != "linear":
        raise ParamError(f"params error: category {category!r} is not served here (only linear)")
    return category


def _symbol(state: ExchangeState, query: Any) -> str:
    symbol = query.get("symbol")
    if not symbol:
        raise ParamError("params error: symbol is required")
    if symbol not in state.market.symbols:
        raise ParamError(f"params error: symbol {symbol} is not supported")
    return symbol


def _limit(query: Any, top: int, default: int) -> int:
    limit = _int(query, "limit", default)
    assert limit is not None
    if not 1 <= limit <= top:
        raise ParamError(f"params error: limit must be in [1, {top}], not {limit}")
    return limit


def endpoint(
    build: Callable[[ExchangeState, Any, int], dict[str, Any]],
) -> Handler:
    """A handler answering ``build(state, query, now)``'s result, or 10001 for a
    :class:`ParamError`; one market time per request, for the result and its envelope."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        try:
            now = state.clock.now()
            return json_response(envelope(state, build(state, request.query, now), now=now))
        except ParamError as exc:
            return json_response(envelope(state, {}, 10001, str(exc)))

    return handle


def server_time(state: ExchangeState, query: Any, now: int) -> dict[str, Any]:
    return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}


def kline(state: ExchangeState, query: Any, now: int) -> dict[str, Any]:
    category = _category(query)
    symbol = _symbol(state, query)
    interval = query.get("interval")
    if not interval:
        raise ParamError("params error: interval is required")
    if interval != state.market.code:
        raise ParamError(
            f"params error: interval {interval} is not served here (only {state.market.code})"
        )
    start, end = _int(query, "start"), _int(query, "end")
    limit = _limit(query, KLINE_LIMIT, KLINE_DEFAULT)
    rows = state.market.kline_rows(symbol, now, start, end, limit)
    state.stats.kline_rows += len(rows)
    return {"symbol": symbol, "category": category, "list": rows}


def instruments_info(state: ExchangeState, query: Any, now: int) -> dict[str, Any]:
    category = _category(query)
    symbol = query.get("symbol")
    wanted = state.market.symbols if not symbol else [symbol]
    found = [instrument_info(state.market, s) for s in wanted if s in state.market.symbols]
    return {"category": category, "list": found, "nextPageCursor": ""}


def funding_history(state: ExchangeState, query: Any, now: int) -> dict[str, Any]:
    category = _category(query)
    symbol = _symbol(state, query)
    start, end = _int(query, "startTime"), _int(query, "endTime")
    if start is not None and end is None:
        raise ParamError("params error: startTime needs endTime")
    limit = _limit(query, FUNDING_LIMIT, FUNDING_LIMIT)
    rows = state.market.funding_rows(symbol, now, start, end, limit)
    return {"category": category, "list": rows}


def add_routes(app: web.Application) -> None:
    app[RATE_WINDOW] = RateWindow()
    app.router.add_get("/v5/market/time", endpoint(server_time))
    app.router.add_get("/v5/market/kline", endpoint(kline))
    app.router.add_get("/v5/market/instruments-info", endpoint(instruments_info))
    app.router.add_get("/v5/market/funding/history", endpoint(funding_history))
