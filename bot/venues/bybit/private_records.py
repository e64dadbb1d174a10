"""Typed records of Bybit's private data, parsed from websocket and REST rows (pure functions).

Bybit sends money, prices and quantities as strings and millisecond times as strings inside
private rows; the same row shapes come from the ``order`` / ``execution`` / ``position`` /
``wallet`` websocket topics and from ``/v5/order/realtime``, ``/v5/order/history``,
``/v5/execution/list``, ``/v5/position/list`` and ``/v5/account/wallet-balance``. Everything
the executor books comes through here, so a row that does not parse *or* is implausible (a
negative size, a fill at price 0, more filled than ordered, a non-finite number) raises
:class:`RecordError` — the stream counts and drops it — rather than reaching the books.
Where Bybit documents an empty string as "none" (``avgPrice`` of an unfilled order,
``closedSize`` of an opening fill) the value is 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SIDES = frozenset({"Buy", "Sell"})
#: Order statuses after which nothing more happens to an order.
FINAL_STATUSES = frozenset({"Filled", "Cancelled", "Rejected", "Deactivated"})
#: A fill may exceed the order quantity by this much (float noise in Bybit's decimal strings).
_QTY_TOLERANCE = 1e-9


class RecordError(ValueError):
    """A private row that does not parse or cannot be true."""


# -- records --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order's state (``order`` topic, ``/v5/order/realtime``, ``/v5/order/history``)."""

    order_id: str
    link_id: str
    symbol: str
    side: str
    order_type: str
    qty: float
    price: float
    avg_price: float
    cum_exec_qty: float
    cum_exec_value: float
    cum_exec_fee: float
    leaves_qty: float
    status: str
    reject_reason: str
    reduce_only: bool
    time_in_force: str
    position_idx: int
    category: str
    created_ms: int
    updated_ms: int

    @property
    def is_final(self) -> bool:
        """Whether the order can change no more (filled, cancelled, rejected)."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution (``execution`` topic, ``/v5/execution/list``): a fill (``exec_type``
    ``Trade``), a funding payment (``Funding``: ``fee`` is what was paid, negative when
    received), or a forced one (``AdlTrade``, ``BustTrade``)."""

    exec_id: str
    link_id: str
    order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    value: float
    fee: float
    fee_rate: float
    exec_type: str
    is_maker: bool
    time_ms: int
    seq: int
    closed_size: float
    exec_pnl: float | None  # absent from REST rows of some accounts
    leaves_qty: float
    category: str


@dataclass(frozen=True, slots=True)
class Position:
    """A symbol's position in one-way mode; ``size`` is signed (negative = short, 0 = flat)."""

    symbol: str
    size: float
    entry_price: float
    mark_price: float
    unrealised_pnl: float
    cum_realised_pnl: float
    position_idx: int
    seq: int
    updated_ms: int
    category: str


@dataclass(frozen=True, slots=True)
class CoinBalance:
    coin: str
    equity: float
    wallet_balance: float
    unrealised_pnl: float
    cum_realised_pnl: float


@dataclass(frozen=True, slots=True)
class Wallet:
    """The unified account's totals (USD) and its coins."""

    account_type: str
    equity: float
    wallet_balance: float
    available: float
    margin_balance: float
    coins: tuple[CoinBalance, ...]

    def coin(self, name: str) -> CoinBalance | None:
        return next((c for c in self.coins if c.coin == name), None)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What ``/v5/user/query-api`` says about the key in use (its value is not kept)."""

    read_only: bool
    can_withdraw: bool
    uta: bool
    permissions: tuple[tuple[str, tuple[str, ...]], ...]

    def allows(self, group: str, permission: str) -> bool:
        return any(g == group and permission in perms for g, perms in self.permissions)


@dataclass(frozen=True, slots=True)
class OrderAck:
    """Bybit's acknowledgement of a create or cancel: the order exists (its state comes
    later, from the streams or a lookup)."""

    order_id: str
    link_id: str


Record = OrderUpdate | Execution | Position | Wallet


# -- field readers --------------------------------------------------------------------------------
def _number(
    row: Mapping[str, Any], key: str, empty: float | None = None, optional: bool = False
) -> float:
    """A decimal field (a string, or a JSON number); ``""`` means ``empty`` where allowed.
    A missing field is an error unless ``optional`` (fields the books do not depend on):
    a fee or a quantity is never assumed."""
    value = row.get(key)
    if value is None:
        if optional:
            return 0.0
        raise RecordError(f"no {key!r}")
    if value == "" and empty is not None:
        return empty
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(f"{key} is a {type(value).__name__}")
    try:
        number = float(value)
    except ValueError:
        raise RecordError(f"{key} is not a number: {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise RecordError(f"{key} is not finite")
    return number


def _non_negative(
    row: Mapping[str, Any], key: str, empty: float | None = None, optional: bool = False
) -> float:
    number = _number(row, key, empty, optional)
    if number < 0:
        raise RecordError(f"{key} is negative")
    return number


def _integer(row: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = row.get(key, default)
    if value is None or (value == "" and default is not None):
        if default is None:
            raise RecordError(f"no {key!r}")
        return default
    if isinstance(value, bool):
        raise RecordError(f"{key} is a boolean")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise RecordError(f"{key} is not an integer: {str(value)[:40]!r}") from None
    if number < 0:
        raise RecordError(f"{key} is negative")
    return number


def _text(row: Mapping[str, Any], key: str, required: bool = False) -> str:
    value = row.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise RecordError(f"{key} is a {type(value).__name__}, not a string")
    if required and not value:
        raise RecordError(f"empty {key!r}")
    return value


def _flag(row: Mapping[str, Any], key: str) -> bool:
    value = row.get(key, False)
    if not isinstance(value, bool):
        raise RecordError(f"{key} is not a boolean")
    return value


def _side(row: Mapping[str, Any], allow_empty: bool = False) -> str:
    side = _text(row, "side")
    if side not in SIDES and not (allow_empty and side in ("", "None")):
        raise RecordError(f"side {side[:20]!r} is neither Buy nor Sell")
    return side


def _expect_mapping(row: Any) -> Mapping[str, Any]:
    if not isinstance(row, Mapping):
        raise RecordError(f"row is a {type(row).__name__}, not an object")
    return row


# -- parsers --------------------------------------------------------------------------------------
def parse_order(row: Any) -> OrderUpdate:
    row = _expect_mapping(row)
    qty = _non_negative(row, "qty")
    cum_qty = _non_negative(row, "cumExecQty")
    if cum_qty > qty * (1 + _QTY_TOLERANCE) and qty > 0:
        raise RecordError(f"cumExecQty {cum_qty} exceeds qty {qty}")
    avg_price = _non_negative(row, "avgPrice", empty=0.0)
    if cum_qty > 0 and avg_price == 0 and row.get("avgPrice") not in (None, ""):
        raise RecordError("filled quantity at an average price of 0")
    return OrderUpdate(
        order_id=_text(row, "orderId", required=True),
        link_id=_text(row, "orderLinkId"),
        symbol=_text(row, "symbol", required=True),
        side=_side(row),
        order_type=_text(row, "orderType", required=True),
        qty=qty,
        price=_non_negative(row, "price", empty=0.0),
        avg_price=avg_price,
        cum_exec_qty=cum_qty,
        cum_exec_value=_non_negative(row, "cumExecValue", empty=0.0, optional=True),
        cum_exec_fee=_number(row, "cumExecFee", empty=0.0),  # a maker rebate is negative
        leaves_qty=_non_negative(row, "leavesQty", empty=0.0),
        status=_text(row, "orderStatus", required=True),
        reject_reason=_text(row, "rejectReason"),
        reduce_only=_flag(row, "reduceOnly"),
        time_in_force=_text(row, "timeInForce"),
        position_idx=_integer(row, "positionIdx", default=0),
        category=_text(row, "category"),
        created_ms=_integer(row, "createdTime"),
        updated_ms=_integer(row, "updatedTime"),
    )


def parse_execution(row: Any) -> Execution:
    row = _expect_mapping(row)
    exec_type = _text(row, "execType", required=True)
    trade = exec_type == "Trade"
    qty = _non_negative(row, "execQty")
    price = _non_negative(row, "execPrice")
    if trade and (qty == 0 or price == 0):
        raise RecordError(f"a trade of {qty} at {price}")
    time_ms = _integer(row, "execTime")
    if time_ms == 0:
        raise RecordError("execTime is 0")
    pnl = row.get("execPnl")
    return Execution(
        exec_id=_text(row, "execId", required=True),
        link_id=_text(row, "orderLinkId"),
        order_id=_text(row, "orderId"),
        symbol=_text(row, "symbol", required=True),
        side=_side(row, allow_empty=not trade),
        qty=qty,
        price=price,
        value=_non_negative(row, "execValue", empty=0.0, optional=True),
        fee=_number(row, "execFee", empty=0.0),
        fee_rate=_number(row, "feeRate", empty=0.0, optional=True),
        exec_type=exec_type,
        is_maker=_flag(row, "isMaker"),
        time_ms=time_ms,
        seq=_integer(row, "seq", default=0),
        closed_size=_non_negative(row, "closedSize", empty=0.0, optional=True),
        exec_pnl=None if pnl in (None, "") else _number(row, "execPnl"),
        leaves_qty=_non_negative(row, "leavesQty", empty=0.0, optional=True),
        category=_text(row, "category"),
    )


def parse_position(row: Any) -> Position:
    row = _expect_mapping(row)
    side = _side(row, allow_empty=True)
    size = _non_negative(row, "size")
    if side in ("", "None") and size != 0:
        raise RecordError(f"a position of {size} with no side")
    entry_key = "entryPrice" if "entryPrice" in row else "avgPrice"  # websocket / REST
    return Position(
        symbol=_text(row, "symbol", required=True),
        size=-size if side == "Sell" else size,
        entry_price=_non_negative(row, entry_key, empty=0.0),
        mark_price=_non_negative(row, "markPrice", empty=0.0, optional=True),
        unrealised_pnl=_number(row, "unrealisedPnl", empty=0.0, optional=True),
        cum_realised_pnl=_number(row, "cumRealisedPnl", empty=0.0, optional=True),
        position_idx=_integer(row, "positionIdx", default=0),
        seq=_integer(row, "seq", default=0),
        updated_ms=_integer(row, "updatedTime", default=0),
        category=_text(row, "category"),
    )


def parse_coin(row: Any) -> CoinBalance:
    row = _expect_mapping(row)
    return CoinBalance(
        coin=_text(row, "coin", required=True),
        equity=_number(row, "equity"),
        wallet_balance=_number(row, "walletBalance"),
        unrealised_pnl=_number(row, "unrealisedPnl", empty=0.0, optional=True),
        cum_realised_pnl=_number(row, "cumRealisedPnl", empty=0.0, optional=True),
    )


def parse_wallet(row: Any) -> Wallet:
    row = _expect_mapping(row)
    coins = row.get("coin") or []
    if not isinstance(coins, list):
        raise RecordError("coin is not an array")
    return Wallet(
        account_type=_text(row, "accountType"),
        equity=_number(row, "totalEquity"),
        wallet_balance=_number(row, "totalWalletBalance"),
        available=_number(row, "totalAvailableBalance", empty=0.0),
        margin_balance=_number(row, "totalMarginBalance", empty=0.0, optional=True),
        coins=tuple(parse_coin(c) for c in coins),
    )


def parse_key_info(result: Any) -> KeyInfo:
    """``/v5/user/query-api``'s result. The key and (always empty) secret fields are not
    read, so they cannot travel further."""
    result = _expect_mapping(result)
    permissions = result.get("permissions") or {}
    if not isinstance(permissions, Mapping):
        raise RecordError("permissions is not an object")
    groups = []
    for group, perms in sorted(permissions.items()):
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            raise RecordError(f"permissions.{group} is not an array of strings")
        groups.append((str(group), tuple(perms)))
    return KeyInfo(
        read_only=_integer(result, "readOnly") == 1,
        can_withdraw=any(g == "Wallet" and "Withdraw" in perms for g, perms in groups),
        uta=_integer(result, "uta", default=0) == 1,
        permissions=tuple(groups),
    )


def parse_order_ack(result: Any) -> OrderAck:
    result = _expect_mapping(result)
    return OrderAck(_text(result, "orderId", required=True), _text(result, "orderLinkId"))


#: Topic (without a ``.category`` suffix) → row parser.
ROW_PARSERS: dict[str, Callable[[Any], Record]] = {
    "order": parse_order,
    "execution": parse_execution,
    "position": parse_position,
    "wallet": parse_wallet,
}


def parse_rows(parser: Callable[[Any], Record], rows: Any) -> tuple[list[Record], list[str]]:
    """Every row that parses, and why each other one was refused: one bad row costs that
    row, never its neighbours."""
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
        return [], [f"data is a {type(rows).__name__}, not an array"]
    records: list[Record] = []
    refused: list[str] = []
    for row in rows:
        try:
            records.append(parser(row))
        except RecordError as exc:
            refused.append(str(exc))
    return records, refused
