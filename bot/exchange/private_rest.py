"""Bybit's private REST endpoints over the local exchange's accounts: thin aiohttp handlers.

Each request is counted (for its account too when it bears a configured key), its signature
checked on the raw bytes received (:mod:`bot.exchange.auth`), then it meets the gate of
faults and limits (:meth:`PrivateExchange.gate`); what is left is served by
:class:`~bot.exchange.private.PrivateExchange` (create, cancel) or read from the account here
(lookups). Errors are HTTP 200 with a non-zero retCode, like the public side; a server-error
fault may answer HTTP 5xx, and a lost response cuts the connection without a byte.

Lookups follow Bybit's documented limits: ``/v5/order/realtime`` needs a symbol or coin,
sees open orders, or (``openOnly=1``) the last 500 closed ones, or both when asked by
``orderId``/``orderLinkId``; ``/v5/order/history`` and ``/v5/execution/list`` default to the
last 7 days of market time and refuse wider windows; lists page with ``limit`` and an opaque
``cursor``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
from aiohttp import web

from bot.exchange.account import Execution, Order, newest_first
from bot.exchange.order_request import RefusalError, params_error
from bot.exchange.private import Answer, Member, PrivateExchange
from bot.exchange.private_rows import execution_row, order_row, position_row, wallet_row
from bot.exchange.rest import STATE, Handler, json_response

WEEK_MS = 7 * 24 * 3_600_000
T = TypeVar("T")

View = Callable[[PrivateExchange, Member, Any], dict[str, Any]]
Action = Callable[[PrivateExchange, Member, object, Mapping[str, str]], Answer]


def respond(private: PrivateExchange, request: web.Request, answer: Answer) -> web.StreamResponse:
    """The answer as Bybit sends it (or no answer at all: the connection cut)."""
    if answer.drop:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=200)  # never written: the connection is gone
    if answer.status != 200:
        text = f"<html><body><h1>{answer.status}</h1></body></html>"
        return web.Response(status=answer.status, text=text, content_type="text/html")
    body = {
        "retCode": answer.code,
        "retMsg": answer.message,
        "result": answer.result,
        "retExtInfo": {},
        "time": private.clock.now(),
    }
    response = json_response(body)
    response.headers.update(answer.headers)
    return response


async def _admit(
    request: web.Request, payload: bytes, post: bool, order_op: bool
) -> tuple[Member, dict[str, str]] | Answer:
    """Count, authenticate and gate a request: its account and the headers its answer
    carries, or the answer that refuses it. Then bring the books up to now."""
    private = request.app[STATE].private
    signed = private.authenticate(request.headers, payload, post)
    if isinstance(signed, Answer):
        return signed
    gate = private.gate(signed, order_op, request.headers)
    if gate is not None and gate.code:
        return gate
    private.advance()
    return signed, dict(gate.headers) if gate is not None else {}


def view(serve: View) -> Handler:
    """A signed GET answered with ``serve(private, member, query)``'s result."""

    async def handle(request: web.Request) -> web.StreamResponse:
        private = request.app[STATE].private
        admitted = await _admit(request, _raw_query(request), post=False, order_op=False)
        if isinstance(admitted, Answer):
            return respond(private, request, admitted)
        try:
            answer = Answer(result=serve(private, admitted[0], request.query))
        except RefusalError as refusal:
            answer = Answer.refusal(refusal)
        return respond(private, request, answer)

    return handle


def action(serve: Action) -> Handler:
    """A signed POST creating or cancelling an order: ``serve(private, member, body,
    headers)`` says how to answer."""

    async def handle(request: web.Request) -> web.StreamResponse:
        private = request.app[STATE].private
        payload = await request.read()
        admitted = await _admit(request, payload, post=True, order_op=True)
        if isinstance(admitted, Answer):
            return respond(private, request, admitted)
        member, headers = admitted
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return respond(private, request, Answer(10001, "params error: the body is not JSON"))
        return respond(private, request, serve(private, member, body, headers))

    return handle


def _raw_query(request: web.Request) -> bytes:
    """The query string exactly as received (what the client signed), not re-encoded."""
    return request.raw_path.partition("?")[2].encode()


# -- parameters ----------------------------------------------------------------------------------
def _int(query: Any, name: str) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise params_error(f"{name} must be an integer, not {text!r}") from None


def _linear(query: Any) -> None:
    if query.get("category") != "linear":
        raise params_error(f"category {query.get('category')!r} is not served here (only linear)")


def _page(query: Any, items: Sequence[T], top: int, default: int) -> tuple[list[T], str]:
    """One page of ``items`` and the cursor of the next ("" at the end)."""
    limit = _int(query, "limit")
    limit = default if limit is None else limit
    if not 1 <= limit <= top:
        raise params_error(f"limit must be in [1, {top}], not {limit}")
    cursor = query.get("cursor") or ""
    if cursor and not cursor.isdigit():
        raise params_error("cursor is not one this server gave")
    start = int(cursor) if cursor else 0
    end = start + limit
    return list(items[start:end]), (str(end) if end < len(items) else "")


def _window(query: Any, now: int) -> tuple[int, int]:
    """[startTime, endTime] in market ms: 7 days at most, the last 7 days by default."""
    start, end = _int(query, "startTime"), _int(query, "endTime")
    if start is None and end is None:
        return now - WEEK_MS, now
    if start is None:
        assert end is not None
        return end - WEEK_MS, end
    if end is None:
        return start, start + WEEK_MS
    if end < start or end - start > WEEK_MS:
        raise params_error("startTime and endTime must span at most 7 days")
    return start, end


def _symbols(private: PrivateExchange, query: Any, required: bool) -> set[str]:
    """The symbols a list covers: ``symbol``, or those of ``settleCoin``/``baseCoin``."""
    symbols = set(private.market.symbols)
    symbol, settle, base = query.get("symbol"), query.get("settleCoin"), query.get("baseCoin")
    if symbol:
        if symbol not in symbols:
            raise params_error(f"symbol {symbol} invalid")
        return {symbol}
    if settle:
        return {s for s in symbols if s.endswith(settle)}
    if base:
        return {s for s in symbols if s.startswith(base)}
    if required:
        raise params_error("symbol or settleCoin is required")
    return symbols


def _orders(query: Any, orders: Iterable[Order], symbols: set[str]) -> list[Order]:
    order_id, link_id = query.get("orderId") or "", query.get("orderLinkId") or ""
    return [
        o
        for o in orders
        if o.symbol in symbols
        and (not order_id or o.order_id == order_id)
        and (not link_id or o.link_id == link_id)
    ]


# -- lookups -------------------------------------------------------------------------------------
def realtime(private: PrivateExchange, member: Member, query: Any) -> dict[str, Any]:
    """Open orders; with ``openOnly=1`` the closed ones remembered instead; by id, both."""
    _linear(query)
    symbols = _symbols(private, query, required=True)
    account = member.account
    if query.get("orderId") or query.get("orderLinkId"):
        seen = account.realtime()
    elif query.get("openOnly", "0") == "1":
        seen = [account.orders[i] for i in reversed(account.closed)]
    else:
        seen = newest_first(account.open.values())
    page, cursor = _page(query, _orders(query, seen, symbols), 50, 20)
    return {"category": "linear", "list": [order_row(o) for o in page], "nextPageCursor": cursor}


def history(private: PrivateExchange, member: Member, query: Any) -> dict[str, Any]:
    """Every order of the account (restarts forget none), newest first."""
    _linear(query)
    symbols = _symbols(private, query, required=False)
    orders = _orders(query, newest_first(member.account.orders.values()), symbols)
    if not (query.get("orderId") or query.get("orderLinkId")):
        start, end = _window(query, private.clock.now())
        orders = [o for o in orders if start <= o.created <= end]
    status = query.get("orderStatus")
    if status:
        orders = [o for o in orders if o.status == status]
    page, cursor = _page(query, orders, 50, 20)
    return {"category": "linear", "list": [order_row(o) for o in page], "nextPageCursor": cursor}


def executions(private: PrivateExchange, member: Member, query: Any) -> dict[str, Any]:
    """Executions (trades and funding) in a window of at most 7 days, newest first."""
    _linear(query)
    symbols = _symbols(private, query, required=False)
    start, end = _window(query, private.clock.now())
    order_id, link_id = query.get("orderId") or "", query.get("orderLinkId") or ""
    exec_type = query.get("execType") or ""

    def wanted(e: Execution) -> bool:
        return (
            e.symbol in symbols
            and start <= e.time <= end
            and (not order_id or e.order_id == order_id)
            and (not link_id or e.link_id == link_id)
            and (not exec_type or e.exec_type == exec_type)
        )

    found = sorted(
        (e for e in member.account.executions if wanted(e)), key=lambda e: (-e.time, -e.seq)
    )
    page, cursor = _page(query, found, 100, 50)
    marks = private.marks(private.clock.now())
    rows = [execution_row(e, marks[e.symbol]) for e in page]
    return {"category": "linear", "list": rows, "nextPageCursor": cursor}


def positions(private: PrivateExchange, member: Member, query: Any) -> dict[str, Any]:
    """One row per position index of the symbol asked (flat ones too); by coin, the open
    ones."""
    _linear(query)
    symbols = _symbols(private, query, required=True)
    account = member.account
    marks = private.marks(private.clock.now())
    rows = []
    for symbol in sorted(symbols):
        for idx in account.position_indices():
            position = account.position(symbol, idx)
            if position.size or query.get("symbol"):
                row = position_row(position, marks[symbol], account.leverage)
                del row["entryPrice"]  # the stream's name; REST says avgPrice
                rows.append(row)
    page, cursor = _page(query, rows, 200, 20)
    return {"category": "linear", "list": page, "nextPageCursor": cursor}


def wallet_balance(private: PrivateExchange, member: Member, query: Any) -> dict[str, Any]:
    account_type = query.get("accountType")
    expected = "UNIFIED" if member.config.uta else "CONTRACT"
    if account_type != expected:
        raise params_error(f"accountType only support {expected}")
    coin = query.get("coin")
    row = wallet_row(member.account, private.marks(private.clock.now()))
    if coin:
        row["coin"] = [c for c in row["coin"] if c["coin"] in coin.split(",")]
    row["accountType"] = expected
    return {"list": [row]}


def account_info(private: PrivateExchange, member: Member, query: Any) -> dict[str, Any]:
    return {
        "unifiedMarginStatus": 5 if member.config.uta else 1,
        "marginMode": "REGULAR_MARGIN",
        "isMasterTrader": False,
        "spotHedgingStatus": "OFF",
        "updatedTime": str(private.clock.now()),
        "dcpStatus": "OFF",
        "timeWindow": 10,
        "smpGroup": 0,
    }


def query_api(private: PrivateExchange, member: Member, query: Any) -> dict[str, Any]:
    """The key's own description. Like Bybit's, it carries the API key itself (never the
    secret): a client must not log it."""
    config = member.config
    wallet = ["AccountTransfer", "SubMemberTransfer"] + (["Withdraw"] if config.withdraw else [])
    return {
        "id": str(member.number),
        "note": config.name,
        "apiKey": config.api_key.get_secret_value(),
        "readOnly": 1 if config.read_only else 0,
        "secret": "",
        "permissions": {
            "ContractTrade": ["Order", "Position"],
            "Spot": ["SpotTrade"],
            "Wallet": wallet,
            "Options": ["OptionsTrade"],
            "Derivatives": [],
            "CopyTrading": [],
            "BlockTrade": [],
            "Exchange": [],
            "NFT": [],
            "Affiliate": [],
            "Earn": [],
        },
        "ips": ["*"],
        "type": 1,
        "deadlineDay": 90,
        "expiredAt": "",
        "createdAt": "",
        "unified": 0,
        "uta": 1 if config.uta else 0,
        "userID": 100_000 + member.number,
        "inviterID": 0,
        "vipLevel": "No VIP",
        "mktMakerLevel": "0",
        "affiliateID": 0,
        "rsaPublicKey": "",
        "isMaster": True,
        "parentUid": "0",
        "kycLevel": "LEVEL_DEFAULT",
        "kycRegion": "",
    }


def add_private_routes(app: web.Application) -> None:
    app.router.add_post("/v5/order/create", action(PrivateExchange.create))
    app.router.add_post("/v5/order/cancel", action(PrivateExchange.cancel))
    app.router.add_get("/v5/order/realtime", view(realtime))
    app.router.add_get("/v5/order/history", view(history))
    app.router.add_get("/v5/execution/list", view(executions))
    app.router.add_get("/v5/position/list", view(positions))
    app.router.add_get("/v5/account/wallet-balance", view(wallet_balance))
    app.router.add_get("/v5/account/info", view(account_info))
    app.router.add_get("/v5/user/query-api", view(query_api))
