"""Bybit v5 private REST (aiohttp, signed here): account reads, and order create/cancel.

Two types, so that a caller that must not trade cannot: :class:`PrivateRest` reads (orders,
executions, positions, wallet, key permissions) and has no method that sends an order;
:class:`TradingRest` adds :meth:`~TradingRest.create_order` and
:meth:`~TradingRest.cancel_order`. ``bot live --check`` gets the first.

Every request is built once — the exact query string or JSON body bytes — signed, and sent as
those bytes. The retry policy is the public client's
(:func:`~bot.venues.bybit.rest_protocol.retry_delay`): 10006 waits for Bybit's reset time,
10016 / 5xx / transport failures back off with jitter, a bounded number of times. A 10002
(timestamp outside the receive window) resynchronises the clock offset — from the server time
the reply quotes, else from ``/v5/market/time`` — and retries. Pass :meth:`PrivateRest.now_ms`
to the private stream so its auth ``expires`` uses the same corrected clock. An order create
is different: anything that may have
reached Bybit ends the call with :class:`~bot.venues.bybit.private_errors.OutcomeUnknown`
(see :func:`~bot.venues.bybit.private_protocol.create_failure`). Every wait ends on ``stop``,
as does every request in flight except an order create (see :meth:`TradingRest.create_order`).

Nothing secret is logged: not the key, the secret, a signature or a raw error message of a
private call (Bybit's 10004 may echo the signed origin string, key included).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar, Self

import aiohttp
from yarl import URL

from bot.redact import redact_url
from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.private_errors import (
    AUTH_CODES,
    ORDER_NOT_FOUND_CODE,
    TIMESTAMP_CODE,
    DuplicateOrderLinkId,
    OrderRejected,
    OutcomeUnknown,
    Scrubber,
    safe_reason,
)
from bot.venues.bybit.private_protocol import (
    EXECUTION_PAGE_LIMIT,
    EXECUTION_WINDOW_MS,
    MAX_PAGES,
    ORDER_PAGE_LIMIT,
    POSITION_PAGE_LIMIT,
    OrderRequest,
    cancel_body,
    create_failure,
    exhausted_failure,
    order_body,
    page,
    quoted_server_time,
)
from bot.venues.bybit.private_records import (
    Execution,
    KeyInfo,
    OrderAck,
    OrderUpdate,
    Position,
    RecordError,
    Wallet,
    parse_execution,
    parse_key_info,
    parse_order,
    parse_order_ack,
    parse_position,
    parse_wallet,
)
from bot.venues.bybit.rest_protocol import (
    BadResponseError,
    BybitAPIError,
    BybitError,
    parse_server_time,
    read_envelope,
    retry_delay,
)
from bot.venues.bybit.retrying import back_off, never_sent, transport_error
from bot.venues.bybit.signing import RECV_WINDOW_MS, json_body, query_string, signed_headers
from bot.venues.bybit.stopping import Stopping, until_stopped

log = logging.getLogger(__name__)

#: A server clock further than this from ours is not one to sign against (see sync_time).
MAX_CLOCK_OFFSET_MS = 15 * 60_000


class ClockError(ValueError):
    """The server's reported time cannot be the clock it checks signatures against."""


class PrivateRest:
    """Signed, read-only client of Bybit's private v5 endpoints; use as ``async with``.

    ``stats`` counts ``requests``, ``requests.<endpoint>``, ``retries``, ``retries.<kind>``
    (``retries.resync`` for a 10002 answered by resynchronising), ``resyncs`` and
    ``failures``. ``clock`` is the wall clock (seconds), replaceable in tests.
    """

    _SENDS_ORDERS: ClassVar[bool] = False

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        category: str = "linear",
        settle_coin: str = "USDT",
        recv_window_ms: int = RECV_WINDOW_MS,
        timeout_s: float = 10.0,
        max_retries: int = 6,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_resyncs: int = 2,
        rng_seed: int | None = None,
        stop: asyncio.Event | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)
        self.credentials = credentials
        self.category = category
        self.settle_coin = settle_coin
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_resyncs = max_resyncs
        self.stop = stop  # once set, calls and waits end at once (raising Stopping)
        self.stats: Counter[str] = Counter()
        self.offset_ms = 0  # Bybit's clock minus ours, from the last resync
        self.server_ms: int | None = None  # the exchange's time in its last reply
        self._clock = clock
        self._rng = random.Random(rng_seed)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.shown_url!r}, {self.credentials!r})"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"Accept": "application/json"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- clock -----------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """Bybit's clock as best known: ours plus the offset measured at the last resync."""
        return int(self._clock() * 1000) + self.offset_ms

    async def sync_time(self) -> int:
        """Measure the offset of Bybit's clock from ours (``/v5/market/time``, unsigned;
        the server's time is taken to be that of the middle of the round trip). Raises
        :class:`ClockError` — and keeps the offset — when that clock is further from ours
        than :data:`MAX_CLOCK_OFFSET_MS`: it is then no clock to sign against (a local
        exchange replaying history serves its market time there)."""
        session = self._open_session()
        before = self._clock()
        async with session.get(self.base_url + "/v5/market/time") as response:
            status, headers, body = response.status, response.headers, await response.read()
        after = self._clock()
        server_ms = parse_server_time(
            read_envelope(status, headers, body, "/v5/market/time")["result"]
        )
        return self._set_offset(server_ms - int((before + after) / 2 * 1000), "/v5/market/time")

    def _set_offset(self, offset_ms: int, source: str) -> int:
        if abs(offset_ms) > MAX_CLOCK_OFFSET_MS:
            raise ClockError(f"{source} is {offset_ms / 3_600_000:+.2f} h from our clock")
        self.offset_ms = offset_ms
        self.stats["resyncs"] += 1
        log.info("Bybit's clock is %+d ms from ours (%s)", offset_ms, source)
        return offset_ms

    # -- reads -----------------------------------------------------------------------------------
    async def key_info(self) -> KeyInfo:
        """The key's permissions: read-only or not, withdrawal, unified trading account."""
        envelope = await self._signed("GET", "/v5/user/query-api", {})
        return _parsed(parse_key_info, envelope["result"], "query-api")

    async def wallet(self, account_type: str = "UNIFIED") -> Wallet:
        """The account's equity, balance and available balance, and its coins."""
        params = {"accountType": account_type}
        envelope = await self._signed("GET", "/v5/account/wallet-balance", params)
        rows, _ = page(envelope["result"], "wallet-balance")
        if not rows:
            raise BadResponseError("no account in the wallet balance", "wallet-balance")
        return _parsed(parse_wallet, rows[0], "wallet-balance")

    async def positions(self, symbol: str | None = None) -> list[Position]:
        """Positions of ``symbol`` (flat included), or every open one of the settle coin."""
        params = {"category": self.category, "symbol": symbol,
                  "settleCoin": None if symbol else self.settle_coin,
                  "limit": POSITION_PAGE_LIMIT}  # fmt: skip
        rows = await self._listing("/v5/position/list", params)
        return [_parsed(parse_position, row, "position/list") for row in rows]

    async def order_by_link_id(self, symbol: str, link_id: str) -> OrderUpdate | None:
        """The order with ``link_id``, open or among the last 500 closed ones; None when
        Bybit does not list it, which right after an unknown outcome does *not* prove it was
        never placed (the list lags, and a restart of Bybit's service clears it)."""
        params = {"category": self.category, "symbol": symbol, "orderLinkId": link_id}
        rows = await self._listing("/v5/order/realtime", params)
        orders = [_parsed(parse_order, row, "order/realtime") for row in rows]
        return next((o for o in orders if o.link_id == link_id), None)

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        """Orders still open (New, PartiallyFilled) of ``symbol`` or of the settle coin."""
        params = {"category": self.category, "symbol": symbol,
                  "settleCoin": None if symbol else self.settle_coin, "openOnly": 0,
                  "limit": ORDER_PAGE_LIMIT}  # fmt: skip
        rows = await self._listing("/v5/order/realtime", params)
        return [_parsed(parse_order, row, "order/realtime") for row in rows]

    async def order_history(
        self,
        *,
        symbol: str | None = None,
        link_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[OrderUpdate]:
        """Closed and open orders from ``/v5/order/history`` (which lags, and keeps
        cancelled and rejected orders for a limited time)."""
        if (start_ms is None) != (end_ms is None):
            raise ValueError("order history takes start_ms and end_ms together")
        params = {"category": self.category, "symbol": symbol, "orderLinkId": link_id,
                  "startTime": start_ms, "endTime": end_ms,
                  "limit": ORDER_PAGE_LIMIT}  # fmt: skip
        rows = await self._listing("/v5/order/history", params)
        return [_parsed(parse_order, row, "order/history") for row in rows]

    async def executions(
        self,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        symbol: str | None = None,
        link_id: str | None = None,
        exec_type: str | None = None,
    ) -> list[Execution]:
        """Executions in ``[start_ms, end_ms]`` (at most 7 days apart, Bybit's limit), or of
        the order ``link_id``, every page, oldest first."""
        if (start_ms is None) != (end_ms is None):
            raise ValueError("an execution window takes start_ms and end_ms together")
        if start_ms is not None and not 0 <= end_ms - start_ms <= EXECUTION_WINDOW_MS:
            raise ValueError("an execution window must run forwards for at most 7 days")
        params = {"category": self.category, "symbol": symbol, "orderLinkId": link_id,
                  "startTime": start_ms, "endTime": end_ms, "execType": exec_type,
                  "limit": EXECUTION_PAGE_LIMIT}  # fmt: skip
        rows = await self._listing("/v5/execution/list", params)
        found = [_parsed(parse_execution, row, "execution/list") for row in rows]
        return sorted(found, key=lambda e: (e.time_ms, e.seq, e.exec_id))

    async def executions_since(
        self, since_ms: int, until_ms: int | None = None, symbol: str | None = None
    ) -> list[Execution]:
        """Every execution from ``since_ms`` (inclusive) to ``until_ms``, in as many 7-day
        windows as it takes, oldest first. Executions on a window's edge may come twice:
        de-duplicate on ``exec_id`` (see :mod:`.gap_fill`).

        Without ``until_ms`` the walk ends at the exchange's now, as its replies state it
        (the envelope's ``time``): execution times are on the exchange's clock, which for the
        local exchange is its replayed market time, not ours."""
        found: list[Execution] = []
        lo = since_ms
        for _ in range(MAX_PAGES):
            hi = (
                lo + EXECUTION_WINDOW_MS
                if until_ms is None
                else min(until_ms, lo + EXECUTION_WINDOW_MS)
            )
            if hi < lo:
                break
            found += await self.executions(start_ms=lo, end_ms=hi, symbol=symbol)
            end = until_ms if until_ms is not None else (self.server_ms or self.now_ms())
            if hi >= end:
                break
            lo = hi + 1
        return sorted(found, key=lambda e: (e.time_ms, e.seq, e.exec_id))

    async def _listing(self, path: str, params: dict[str, Any]) -> list[Any]:
        """Every row of a cursor-paged listing (a repeated cursor ends it, as does a page
        without one)."""
        rows: list[Any] = []
        seen: set[str] = set()
        cursor = ""
        for _ in range(MAX_PAGES):
            query = {**params, "cursor": cursor or None}
            envelope = await self._signed("GET", path, query)
            found, cursor = page(envelope["result"], path)
            rows += found
            if not cursor or cursor in seen or not found:
                return rows
            seen.add(cursor)
        raise BadResponseError(f"more than {MAX_PAGES} pages", path)

    # -- the signed request loop -----------------------------------------------------------------
    async def _signed(
        self, method: str, path: str, params: dict[str, Any], link_id: str | None = None
    ) -> dict[str, Any]:
        """Send one signed request and return its checked envelope, retrying as the module
        docstring says. ``link_id`` marks an order create: then failures that may have
        placed the order raise :class:`OutcomeUnknown` instead of being retried."""
        if method != "GET" and not self._SENDS_ORDERS:
            raise PermissionError(f"{type(self).__name__} is read-only")
        session = self._open_session()
        endpoint = path.removeprefix("/v5/")
        payload: bytes | str = query_string(params) if method == "GET" else json_body(params)
        target = f"{path}?{payload}" if method == "GET" and payload else path
        attempt = resyncs = 0
        while True:
            attempt += 1
            self.stats["requests"] += 1
            self.stats[f"requests.{endpoint}"] += 1
            headers = signed_headers(self.credentials, self.now_ms(), payload, self.recv_window_ms)
            scrub = self._scrubber(headers["X-BAPI-SIGN"])
            sent = True
            log.debug("%s %s (attempt %d)", method, target, attempt)
            request = self._send(session, method, path, payload, headers)
            try:
                if link_id is None:
                    response = await until_stopped(request, self.stop)
                else:
                    # a create in flight is never abandoned on stop (its outcome would become
                    # unknown); it ends within the timeout. A stop before it goes out means it
                    # is not sent: Stopping from a create always means "not placed".
                    if self.stop is not None and self.stop.is_set():
                        request.close()
                        raise Stopping("stopping")
                    response = await request
                status, response_headers, body = response
                envelope = read_envelope(status, response_headers, body, target, scrub=scrub)
                if isinstance(envelope.get("time"), int):
                    self.server_ms = envelope["time"]
                return envelope
            except BybitError as exc:
                error: BaseException = _withheld(exc)
            except (aiohttp.ClientError, TimeoutError) as exc:
                sent = not never_sent(exc)
                error = transport_error(exc, target)
            if (
                isinstance(error, BybitAPIError)
                and error.code == TIMESTAMP_CODE
                and resyncs < self.max_resyncs
                and await self._resync(error)
            ):
                resyncs += 1
                self.stats["retries"] += 1
                self.stats["retries.resync"] += 1
                continue
            if link_id is not None:
                outcome = create_failure(error, link_id, scrub, sent)
                if outcome is not None:
                    self._count(outcome)
                    raise outcome from error
            delay = None
            if attempt <= self.max_retries:
                delay = retry_delay(
                    attempt, error, self.now_ms(), self.backoff_base_s, self.backoff_max_s,
                    self._rng,
                )  # fmt: skip
            if delay is None:
                self.stats["failures"] += 1
                if link_id is not None:
                    outcome = exhausted_failure(error, link_id, scrub)
                    self._count(outcome)
                    raise outcome from error
                raise error
            await back_off(delay, attempt, self.max_retries, error, self.stats, self.stop, log)

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        payload: bytes | str,
        headers: dict[str, str],
    ) -> tuple[int, Any, bytes]:
        if method == "GET":
            query = f"?{payload}" if payload else ""
            url = URL(f"{self.base_url}{path}{query}", encoded=True)  # sent exactly as signed
            async with session.get(url, headers=headers) as response:
                return response.status, response.headers, await response.read()
        url = URL(self.base_url + path, encoded=True)
        headers = {**headers, "Content-Type": "application/json"}
        async with session.post(url, data=payload, headers=headers) as response:
            return response.status, response.headers, await response.read()

    async def _resync(self, refusal: BybitAPIError) -> bool:
        """Resynchronise after the 10002 ``refusal``: from the server time it quotes (the
        very clock the signature was checked against) or else from ``/v5/market/time``.
        False (and a warning) when neither gives a usable clock; the 10002 then stands."""
        try:
            quoted = quoted_server_time(refusal.message)
            if quoted is not None:
                self._set_offset(quoted - int(self._clock() * 1000), "the 10002 reply")
            else:
                await until_stopped(self.sync_time(), self.stop)
        except (BybitError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("could not resynchronise with Bybit's clock: %s", exc)
            return False
        return True

    def _scrubber(self, signature: str) -> Callable[[str], str]:
        """Scrubs server text of this request's secrets; built only if an error needs it."""

        def scrub(text: str) -> str:
            return Scrubber(self.credentials.api_key, self.credentials.secret, signature)(text)

        return scrub

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} is not open: use `async with`")
        return self._session

    def _count(self, outcome: BaseException) -> None:
        kind = {OutcomeUnknown: "outcome_unknown", DuplicateOrderLinkId: "duplicates",
                OrderRejected: "rejected"}.get(type(outcome), "order_errors")  # fmt: skip
        self.stats[kind] += 1
        log.warning("%s", outcome)


class TradingRest(PrivateRest):
    """:class:`PrivateRest` plus the two calls that change the account: create and cancel."""

    _SENDS_ORDERS: ClassVar[bool] = True

    async def create_order(self, request: OrderRequest) -> OrderAck:
        """Place ``request``. Returns Bybit's acknowledgement, or raises
        :class:`~bot.venues.bybit.private_errors.OrderRejected` (no order),
        :class:`~bot.venues.bybit.private_errors.DuplicateOrderLinkId` (the order exists),
        :class:`~bot.venues.bybit.private_errors.OutcomeUnknown` (it may exist), or
        :class:`~bot.venues.bybit.stopping.Stopping` (the stop event was set before the
        request went out, or during a wait before re-sending one Bybit did not act on: the
        order was not placed). A request already sent is awaited to its end despite a stop,
        so that its outcome is known."""
        body = order_body(request, self.category)
        envelope = await self._signed("POST", "/v5/order/create", body, link_id=request.link_id)
        try:
            ack = parse_order_ack(envelope["result"])
        except RecordError:
            # accepted (retCode 0) yet no order id: it exists, unidentified
            self.stats["outcome_unknown"] += 1
            raise OutcomeUnknown(request.link_id, "acknowledged without an orderId") from None
        return OrderAck(ack.order_id, ack.link_id or request.link_id)

    async def cancel_order(
        self, symbol: str, link_id: str | None = None, *, order_id: str | None = None
    ) -> OrderAck | None:
        """Cancel the order ``link_id`` (or, given, ``order_id``). None when Bybit has no open
        order by that id (110001: never placed, or already filled or cancelled: look it up).
        A cancel may be repeated safely, so it is retried like a read."""
        body = cancel_body(symbol, link_id, self.category, order_id)
        try:
            envelope = await self._signed("POST", "/v5/order/cancel", body)
        except BybitAPIError as exc:
            if exc.code == ORDER_NOT_FOUND_CODE:
                return None
            raise
        return _parsed(parse_order_ack, envelope["result"], "order/cancel")


def _withheld(error: BybitError) -> BybitError:
    """``error``, with Bybit's message replaced by a description if its code is about the
    key or the signature (its message may echo the key)."""
    if isinstance(error, BybitAPIError) and error.code in AUTH_CODES:
        return BybitAPIError(error.code, safe_reason(error.code, "", Scrubber()), error.path)
    return error


def _parsed(parser: Callable[[Any], Any], row: Any, what: str) -> Any:
    """A REST row parsed, or a :class:`BadResponseError`: a read returns the whole truth or
    fails, never a listing with a row quietly missing."""
    try:
        return parser(row)
    except RecordError as exc:
        raise BadResponseError(f"refused row: {exc}", what) from None
