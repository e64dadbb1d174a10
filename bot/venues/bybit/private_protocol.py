"""Bybit v5 private REST decisions, as pure functions: order requests, what a failed order
request means, pages and time windows. :mod:`bot.venues.bybit.private_rest` is the I/O around
them.

The one rule that matters most: a failed create is *unknown* unless Bybit itself answered
with a non-zero ``retCode`` in a readable envelope. A timeout, a reset, a 5xx or a server-side
retCode (10016) may come after the order was accepted; retrying such a request inside the
client is safe only because it keeps its ``orderLinkId``, and is still not done: the executor,
which knows what it has written ahead, resolves it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bot.core.timeutil import DAY_MS
from bot.venues.bybit.private_errors import (
    DUPLICATE_LINK_ID_CODE,
    TIMESTAMP_CODE,
    DuplicateOrderLinkId,
    OrderError,
    OrderRejected,
    OutcomeUnknown,
    Scrubber,
    safe_reason,
)
from bot.venues.bybit.rest_protocol import (
    SERVER_ERROR_CODES,
    BadResponseError,
    BybitAPIError,
    BybitHTTPError,
    RateLimited,
    TransportError,
)

#: ``/v5/execution/list`` serves at most this window per request.
EXECUTION_WINDOW_MS = 7 * DAY_MS
EXECUTION_PAGE_LIMIT = 100
ORDER_PAGE_LIMIT = 50
POSITION_PAGE_LIMIT = 200
#: A listing that pages on for longer than this is a server bug, not data.
MAX_PAGES = 1000
#: ``orderLinkId``: at most 36 characters of letters, digits, ``-`` and ``_``.
LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
_SERVER_TIMESTAMP = re.compile(r"server_timestamp\[(\d{10,16})\]")
_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,39}")
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A linear order in one-way mode (``positionIdx`` 0).

    ``qty`` and ``price`` are decimal strings already rounded to the instrument's step and
    tick: formatting a float here could send ``1e-05`` or ``0.30000000000000004``. A Market
    order has no price; a Limit one has a price and is IOC unless told otherwise.
    """

    symbol: str
    side: Literal["Buy", "Sell"]
    qty: str
    link_id: str
    order_type: Literal["Market", "Limit"] = "Market"
    price: str | None = None
    time_in_force: Literal["IOC", "GTC", "FOK", "PostOnly"] = "IOC"
    reduce_only: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not _SYMBOL.fullmatch(self.symbol):
            problems.append(f"bad symbol {self.symbol!r}")
        if self.side not in ("Buy", "Sell"):
            problems.append(f"side must be Buy or Sell, not {self.side!r}")
        if not _positive_decimal(self.qty):
            problems.append(f"qty must be a positive decimal string, not {self.qty!r}")
        if not LINK_ID.fullmatch(self.link_id):
            problems.append(f"orderLinkId must be 1-36 of [A-Za-z0-9_-], not {self.link_id!r}")
        if self.order_type == "Market" and self.price is not None:
            problems.append("a Market order takes no price")
        elif self.order_type == "Limit" and not _positive_decimal(self.price):
            problems.append(f"a Limit order needs a positive decimal price, not {self.price!r}")
        elif self.order_type not in ("Market", "Limit"):
            problems.append(f"order type must be Market or Limit, not {self.order_type!r}")
        if problems:
            raise ValueError("; ".join(problems))


def _positive_decimal(text: Any) -> bool:
    return isinstance(text, str) and bool(_DECIMAL.fullmatch(text)) and float(text) > 0


def order_body(request: OrderRequest, category: str) -> dict[str, Any]:
    """The ``/v5/order/create`` body of ``request``."""
    body: dict[str, Any] = {
        "category": category,
        "symbol": request.symbol,
        "side": request.side,
        "orderType": request.order_type,
        "qty": request.qty,
    }
    if request.order_type == "Limit":
        body["price"] = request.price
        body["timeInForce"] = request.time_in_force
    body["orderLinkId"] = request.link_id
    body["reduceOnly"] = request.reduce_only
    body["positionIdx"] = 0
    return body


def cancel_body(
    symbol: str, link_id: str | None, category: str, order_id: str | None = None
) -> dict[str, Any]:
    """By ``orderLinkId`` (the bot's orders), or by ``orderId`` (any order: the kill switch
    cancels manual ones too, which may have no link id)."""
    if order_id:
        return {"category": category, "symbol": symbol, "orderId": order_id}
    if not link_id or not LINK_ID.fullmatch(link_id):
        raise ValueError(f"orderLinkId must be 1-36 of [A-Za-z0-9_-], not {link_id!r}")
    return {"category": category, "symbol": symbol, "orderLinkId": link_id}


def create_failure(
    error: BaseException, link_id: str, scrub: Scrubber, sent: bool = True
) -> OrderError | None:
    """What a failed ``/v5/order/create`` attempt means: the :class:`OrderError` to raise, or
    None when the same request (same ``orderLinkId``) may simply be sent again because Bybit
    certainly did not act on it — a rate limit (10006), a timestamp out of the window (10002,
    after the caller resynced its clock), or a connection that was never opened
    (``sent=False``)."""
    if isinstance(error, RateLimited):
        return None
    if isinstance(error, BybitAPIError):
        if error.code == DUPLICATE_LINK_ID_CODE:
            return DuplicateOrderLinkId(link_id)
        if error.code in SERVER_ERROR_CODES:
            return OutcomeUnknown(link_id, f"Bybit server error (retCode {error.code})")
        if error.code == TIMESTAMP_CODE:
            return None
        return OrderRejected(link_id, error.code, safe_reason(error.code, error.message, scrub))
    if isinstance(error, BybitHTTPError):
        return OutcomeUnknown(link_id, f"HTTP {error.status}")
    if isinstance(error, BadResponseError):
        return OutcomeUnknown(link_id, "unreadable response")
    if isinstance(error, TransportError | TimeoutError | ConnectionError):
        if not sent:
            return None
        return OutcomeUnknown(link_id, f"no response ({_first_words(str(error))})")
    return OutcomeUnknown(link_id, type(error).__name__)


def exhausted_failure(error: BaseException, link_id: str, scrub: Scrubber) -> OrderError:
    """The outcome once the retries of a create run out on an error :func:`create_failure`
    found safe to retry: a refusal Bybit stated stays a rejection; a connection that never
    opened is reported as unknown, the one answer that is never wrong."""
    if isinstance(error, BybitAPIError):
        return OrderRejected(link_id, error.code, safe_reason(error.code, error.message, scrub))
    return OutcomeUnknown(link_id, f"could not connect ({_first_words(str(error))})")


def _first_words(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def page(result: Mapping[str, Any], what: str) -> tuple[list[Any], str]:
    """A listing's rows and its next cursor (``""`` at the end)."""
    rows = result.get("list")
    if rows is None:
        rows = []
    if not isinstance(rows, list):
        raise BadResponseError(f"{what}: list is a {type(rows).__name__}", what)
    cursor = result.get("nextPageCursor") or ""
    if not isinstance(cursor, str):
        raise BadResponseError(f"{what}: nextPageCursor is not a string", what)
    return rows, cursor


def quoted_server_time(message: str) -> int | None:
    """The server time a 10002 message quotes (``server_timestamp[1678623606869]``, Bybit's
    wording, which the local exchange keeps): the clock the request was checked against."""
    found = _SERVER_TIMESTAMP.search(message)
    return int(found.group(1)) if found else None
