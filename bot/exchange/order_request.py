"""The parameters of ``/v5/order/create`` and ``/v5/order/cancel``, checked as Bybit checks them.

Pure parsing of the decoded JSON body: a malformed request is a :class:`RefusalError` with retCode
10001 and a message naming the parameter, before anything touches an account. What needs the
account or the market (duplicate ``orderLinkId``, quantity rules, balance) is decided by
:mod:`bot.exchange.account`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.exchange.money import parse

#: ``orderLinkId``: at most 36 of these characters.
LINK_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")
SIDES = ("Buy", "Sell")
ORDER_TYPES = ("Market", "Limit")


class RefusalError(Exception):
    """A request Bybit answers with a non-zero retCode (HTTP 200)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def params_error(message: str) -> RefusalError:
    return RefusalError(10001, f"params error: {message}")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: str  # Buy | Sell
    order_type: str  # Market | Limit
    qty: Decimal
    price: Decimal | None  # limit price (Limit orders only)
    time_in_force: str
    link_id: str  # "" when the client gave none
    reduce_only: bool
    position_idx: int


@dataclass(frozen=True, slots=True)
class CancelRequest:
    symbol: str
    order_id: str
    link_id: str


def _category(body: dict[str, Any]) -> None:
    if body.get("category") != "linear":
        raise params_error(f"category {body.get('category')!r} is not served here (only linear)")


def _symbol(body: dict[str, Any], symbols: tuple[str, ...]) -> str:
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise params_error("symbol is required")
    if symbol not in symbols:
        raise params_error(f"symbol {symbol} invalid")
    return symbol


def parse_create(body: object, symbols: tuple[str, ...]) -> OrderRequest:
    """An order request from a create body, or :class:`RefusalError` 10001."""
    if not isinstance(body, dict):
        raise params_error("the body must be a JSON object")
    _category(body)
    symbol = _symbol(body, symbols)
    side = body.get("side")
    if side not in SIDES:
        raise params_error(f"side must be Buy or Sell, not {side!r}")
    order_type = body.get("orderType")
    if order_type not in ORDER_TYPES:
        raise params_error(f"orderType must be Market or Limit here, not {order_type!r}")
    qty = parse(body.get("qty"))
    if qty is None or qty <= 0:
        raise params_error(f"qty must be a positive number in a string, not {body.get('qty')!r}")
    price = None
    tif = body.get("timeInForce")
    if order_type == "Limit":
        price = parse(body.get("price"))
        if price is None or price <= 0:
            raise params_error("a Limit order needs a positive price (a string)")
        tif = "GTC" if tif is None else tif
        if tif != "IOC":
            raise params_error(f"timeInForce {tif!r} is not served here: Limit orders must be IOC")
    else:
        if tif not in (None, "IOC", "GTC", "FOK"):
            raise params_error(f"timeInForce {tif!r} is unknown")
        tif = "IOC"  # a Market order is executed as IOC
    link_id = body.get("orderLinkId", "")
    if link_id is None:
        link_id = ""
    if not isinstance(link_id, str) or (link_id and not LINK_ID.fullmatch(link_id)):
        raise params_error("orderLinkId must be at most 36 characters of A-Z a-z 0-9 _ -")
    reduce_only = body.get("reduceOnly", False)
    if not isinstance(reduce_only, bool):
        raise params_error("reduceOnly must be true or false")
    idx = body.get("positionIdx", 0)
    if isinstance(idx, bool) or not isinstance(idx, int) or idx not in (0, 1, 2):
        raise params_error("positionIdx must be 0, 1 or 2")
    return OrderRequest(symbol, side, order_type, qty, price, tif, link_id, reduce_only, idx)


def parse_cancel(body: object, symbols: tuple[str, ...]) -> CancelRequest:
    """A cancel request (``orderId`` or ``orderLinkId``), or :class:`RefusalError` 10001."""
    if not isinstance(body, dict):
        raise params_error("the body must be a JSON object")
    _category(body)
    symbol = _symbol(body, symbols)
    order_id = body.get("orderId") or ""
    link_id = body.get("orderLinkId") or ""
    if not isinstance(order_id, str) or not isinstance(link_id, str):
        raise params_error("orderId and orderLinkId must be strings")
    if not order_id and not link_id:
        raise params_error("orderId or orderLinkId is required")
    return CancelRequest(symbol, order_id, link_id)
