"""One account on the local exchange: orders, executions, positions and the USDT wallet.

Plain Python over exact decimals, with time and prices passed in: every rule (quantity
truncation, minimum notional, reduce-only, margin, average entry, realised PnL, fees,
funding) is a unit test away, without sockets or clocks. What happens *when* (delays, faults)
is decided by :mod:`bot.exchange.private`; this module only says what each step does to the
books and which rows the private streams push because of it.

The books obey one identity a client can check from the messages alone::

    wallet = starting balance + Σ over executions (execPnl − execFee)

where Trade executions carry the realised PnL of what they closed and their fee, and
Funding executions carry the funding fee (positive: paid) and no PnL. Every amount is
rounded to 8 decimals once, when booked, and written as booked.

Positions are one-way (``positionIdx`` 0: one signed size per symbol, flipping through zero
allowed) or, for an account configured in hedge mode, two per symbol (1: the long side, 2:
the short side), where an order against a side's direction only reduces it.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.exchange.mix import mix
from bot.exchange.money import ZERO, book, on_grid, parse, truncate
from bot.exchange.order_request import OrderRequest, RefusalError, params_error
from bot.exchange.private_rows import (
    MAINTENANCE_RATE,
    execution_row,
    order_row,
    position_row,
    wallet_row,
)

#: Closed orders ``/v5/order/realtime`` remembers (Bybit: 500, forgotten on a restart).
REALTIME_MEMORY = 500
#: A market order's price field: the protection price this far beyond the last price.
MARKET_BAND = Decimal("0.01")
TERMINAL = frozenset({"Filled", "Cancelled", "Rejected"})

_ORDER_ID, _EXEC_ID = 1, 2

Push = tuple[str, dict[str, Any]]  # (order | execution | position | wallet, row)
Marks = Mapping[str, Decimal]  # last price of every symbol, at the moment of the change


def stable_uuid(*parts: int) -> str:
    """A UUID-shaped id determined by ``parts`` (ids repeat run for run under one seed)."""
    return str(uuid.UUID(int=(mix(*parts, 1) << 64) | mix(*parts, 2)))


@dataclass(frozen=True, slots=True)
class Rules:
    """An instrument's trading rules, as ``/v5/market/instruments-info`` publishes them."""

    tick: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    max_mkt_qty: Decimal
    min_notional: Decimal

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Rules:
        lot, price = info["lotSizeFilter"], info["priceFilter"]
        values = (
            price["tickSize"],
            lot["qtyStep"],
            lot["minOrderQty"],
            lot["maxOrderQty"],
            lot["maxMktOrderQty"],
            lot["minNotionalValue"],
        )
        parsed = [parse(v) for v in values]
        assert all(p is not None for p in parsed), values
        return cls(*parsed)  # type: ignore[arg-type]


@dataclass(slots=True)
class Order:
    order_id: str
    link_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal  # the limit; for a Market order its protection price
    time_in_force: str
    reduce_only: bool
    position_idx: int
    created: int
    updated: int
    status: str = "New"
    reject_reason: str = "EC_NoError"
    cancel_type: str = "UNKNOWN"
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    closed_pnl: Decimal = ZERO
    create_type: str = "CreateByUser"
    number: int = 0  # the account's n-th order: orders of one millisecond keep their order

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def leaves(self) -> Decimal:
        return ZERO if self.terminal else self.qty - self.cum_qty

    @property
    def avg_price(self) -> Decimal:
        return book(self.cum_value / self.cum_qty) if self.cum_qty else ZERO

    def crosses(self, price: Decimal) -> bool:
        """Whether the order may trade at ``price`` (a market order always may)."""
        if self.order_type == "Market":
            return True
        return price <= self.price if self.side == "Buy" else price >= self.price


@dataclass(frozen=True, slots=True)
class Execution:
    exec_id: str
    exec_type: str  # Trade | Funding
    symbol: str
    side: str
    order_id: str
    link_id: str
    order_type: str
    order_price: Decimal
    order_qty: Decimal
    price: Decimal
    qty: Decimal
    value: Decimal
    fee: Decimal  # paid (negative: received)
    fee_rate: Decimal
    time: int
    leaves_qty: Decimal
    closed_size: Decimal
    pnl: Decimal
    seq: int
    create_type: str = "CreateByUser"


@dataclass(slots=True)
class Position:
    symbol: str
    idx: int
    size: Decimal = ZERO  # signed: > 0 long, < 0 short
    cost: Decimal = ZERO  # |size| × average entry price, exact
    cum_realised: Decimal = ZERO  # PnL − fees − funding, since the account began
    cur_realised: Decimal = ZERO  # the same since the position was last opened from flat
    created: int = 0
    updated: int = 0
    seq: int = 0

    @property
    def side(self) -> str:
        return "Buy" if self.size > 0 else "Sell" if self.size < 0 else ""

    @property
    def entry(self) -> Decimal:
        return book(self.cost / abs(self.size)) if self.size else ZERO

    def unrealised(self, mark: Decimal) -> Decimal:
        if not self.size:
            return ZERO
        gain = abs(self.size) * mark - self.cost
        return gain if self.size > 0 else -gain


@dataclass(frozen=True, slots=True)
class Fill:
    """What one execution did to its position (how much it closed, the PnL of that)."""

    closed: Decimal
    pnl: Decimal


class Account:
    """The books of one API key's account. ``number`` and ``seed`` make its ids."""

    def __init__(
        self,
        name: str,
        number: int,
        seed: int,
        balance: Decimal,
        leverage: Decimal,
        fee_rate: Decimal,
        hedge: bool = False,
    ) -> None:
        self.name = name
        self.number = number
        self.seed = seed
        self.wallet = balance
        self.leverage = leverage
        self.fee_rate = fee_rate
        self.hedge = hedge
        self.cum_realised = ZERO
        self.orders: dict[str, Order] = {}  # every order ever accepted, by orderId
        self.link_ids: dict[str, str | None] = {}  # orderLinkId → orderId (None: reserved)
        self.open: dict[str, Order] = {}  # orders still New / PartiallyFilled
        self.closed: deque[str] = deque(maxlen=REALTIME_MEMORY)  # realtime's memory
        self.executions: list[Execution] = []
        self.positions: dict[tuple[str, int], Position] = {}
        self.seq = 0
        self._orders_made = 0
        self._execs_made = 0

    # -- ids -------------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _order_id(self) -> str:
        self._orders_made += 1
        return stable_uuid(self.seed, self.number, _ORDER_ID, self._orders_made)

    def _exec_id(self) -> str:
        self._execs_made += 1
        return stable_uuid(self.seed, self.number, _EXEC_ID, self._execs_made)

    # -- positions and wallet --------------------------------------------------------------------
    def position(self, symbol: str, idx: int) -> Position:
        key = (symbol, idx)
        if key not in self.positions:
            self.positions[key] = Position(symbol, idx)
        return self.positions[key]

    def position_indices(self) -> tuple[int, ...]:
        return (1, 2) if self.hedge else (0,)

    def unrealised(self, marks: Marks) -> Decimal:
        return sum((p.unrealised(marks[p.symbol]) for p in self.positions.values()), ZERO)

    def initial_margin(self, marks: Marks) -> Decimal:
        value = sum((abs(p.size) * marks[p.symbol] for p in self.positions.values()), ZERO)
        return value / self.leverage

    def maintenance_margin(self, marks: Marks) -> Decimal:
        value = sum((abs(p.size) * marks[p.symbol] for p in self.positions.values()), ZERO)
        return value * MAINTENANCE_RATE

    def equity(self, marks: Marks) -> Decimal:
        return self.wallet + self.unrealised(marks)

    def available(self, marks: Marks) -> Decimal:
        return max(ZERO, self.equity(marks) - self.initial_margin(marks))

    # -- orders: checks --------------------------------------------------------------------------
    def reserve(self, link_id: str) -> None:
        """Take ``link_id`` for a new order, or 110072 when any order already has it."""
        if not link_id:
            return
        if link_id in self.link_ids:
            raise RefusalError(110072, "OrderLinkedID is duplicate")
        self.link_ids[link_id] = None

    def release(self, link_id: str) -> None:
        """Give back a link id reserved for an order that was refused before it existed."""
        if link_id and self.link_ids.get(link_id, "") is None:
            del self.link_ids[link_id]

    def _target(self, req: OrderRequest) -> Position:
        if req.position_idx not in self.position_indices():
            raise params_error("position idx not match position mode")
        return self.position(req.symbol, req.position_idx)

    def _reducing(self, req: OrderRequest) -> bool:
        """Whether the order may only reduce (reduceOnly, or a hedge side's opposite)."""
        if req.reduce_only:
            return True
        return self.hedge and (req.side == "Buy") != (req.position_idx == 1)

    def check(self, req: OrderRequest, rules: Rules, marks: Marks) -> Decimal:
        """The quantity the order is accepted for, or the :class:`RefusalError` Bybit answers:
        10001 (parameters, limits), 110017 (truncated to zero, reduce-only that cannot
        reduce), 110094 (below the minimum order value), 110007 (margin)."""
        position = self._target(req)
        mark = marks[req.symbol]
        if req.price is not None and not on_grid(req.price, rules.tick):
            raise params_error(f"price {req.price} is not a multiple of tickSize {rules.tick}")
        qty = truncate(req.qty, rules.qty_step)
        if qty <= 0:
            raise RefusalError(110017, "orderQty will be truncated to zero.")
        if qty < rules.min_qty:
            raise params_error(f"qty {qty} is below minOrderQty {rules.min_qty}")
        top = rules.max_mkt_qty if req.order_type == "Market" else rules.max_qty
        if qty > top:
            raise params_error(f"qty {qty} is above the maximum {top} of a {req.order_type} order")
        price = mark if req.order_type == "Market" else req.price
        assert price is not None
        buy = req.side == "Buy"
        opening = qty
        if self._reducing(req):
            if position.size == 0 or (position.size > 0) == buy:
                raise RefusalError(110017, "Reduce-only rule not satisfied")
            opening = ZERO
        elif position.size and (position.size > 0) != buy:
            opening = max(ZERO, qty - abs(position.size))
        if not self._reducing(req) and qty * price < rules.min_notional:
            raise RefusalError(
                110094, f"Order does not meet minimum order value {rules.min_notional}USDT"
            )
        needed = opening * price / self.leverage + qty * price * self.fee_rate
        if needed > self.available(marks):
            raise RefusalError(110007, "ab not enough for new order")
        return qty

    # -- orders: life ----------------------------------------------------------------------------
    def accept(
        self, req: OrderRequest, qty: Decimal, rules: Rules, mark: Decimal, now: int
    ) -> tuple[Order, list[Push]]:
        """Register an accepted order (status New); its link id must be reserved already."""
        if req.order_type == "Market":
            band = MARKET_BAND if req.side == "Buy" else -MARKET_BAND
            price = truncate(mark * (1 + band), rules.tick)
        else:
            assert req.price is not None
            price = req.price
        order = Order(
            self._order_id(),
            req.link_id,
            req.symbol,
            req.side,
            req.order_type,
            qty,
            price,
            req.time_in_force,
            req.reduce_only or self._reducing(req),
            req.position_idx,
            now,
            now,
            number=self._orders_made,
        )
        self.orders[order.order_id] = order
        if req.link_id:
            self.link_ids[req.link_id] = order.order_id
        self.open[order.order_id] = order
        return order, [("order", order_row(order))]

    def fillable(self, order: Order) -> Decimal:
        """What the order may still trade: its leaves, capped by the position it reduces."""
        leaves = order.leaves
        if order.reduce_only:
            size = self.position(order.symbol, order.position_idx).size
            if size == 0 or (size > 0) == (order.side == "Buy"):
                return ZERO
            leaves = min(leaves, abs(size))
        return leaves

    def fill(
        self, order: Order, qty: Decimal, price: Decimal, now: int, marks: Marks
    ) -> list[Push]:
        """Execute ``qty`` of ``order`` at ``price`` as taker: the execution, the position and
        the wallet it changes (the order's own status is pushed by :meth:`finish` or
        :meth:`progress`)."""
        assert 0 < qty <= order.leaves, (qty, order.leaves)
        value = qty * price
        fee = book(value * self.fee_rate)
        position = self.position(order.symbol, order.position_idx)
        done = self._trade(position, qty if order.side == "Buy" else -qty, price, now)
        self.wallet += done.pnl - fee
        self.cum_realised += done.pnl - fee
        position.cum_realised += done.pnl - fee
        position.cur_realised += done.pnl - fee
        order.cum_qty += qty
        order.cum_value += value
        order.cum_fee += fee
        order.closed_pnl += done.pnl
        order.updated = now
        seq = self._next_seq()
        position.seq, position.updated = seq, now
        execution = Execution(
            self._exec_id(),
            "Trade",
            order.symbol,
            order.side,
            order.order_id,
            order.link_id,
            order.order_type,
            order.price,
            order.qty,
            price,
            qty,
            value,
            fee,
            self.fee_rate,
            now,
            order.qty - order.cum_qty,
            done.closed,
            done.pnl,
            seq,
            order.create_type,
        )
        self.executions.append(execution)
        return [
            ("execution", execution_row(execution, marks[order.symbol])),
            ("position", position_row(position, marks[order.symbol], self.leverage)),
            ("wallet", wallet_row(self, marks)),
        ]

    def _trade(self, position: Position, signed_qty: Decimal, price: Decimal, now: int) -> Fill:
        """Apply a trade to a position: average entry on increase, realised PnL on decrease,
        a new entry at ``price`` for what flips through zero."""
        size = position.size
        if size == 0 or (size > 0) == (signed_qty > 0):
            if size == 0:
                position.created = now
                position.cur_realised = ZERO
            position.size = size + signed_qty
            position.cost += abs(signed_qty) * price
            return Fill(ZERO, ZERO)
        closed = min(abs(signed_qty), abs(size))
        removed = position.cost if closed == abs(size) else book(position.cost * closed / abs(size))
        gross = closed * price - removed
        pnl = book(gross if size > 0 else -gross)
        position.cost -= removed
        position.size = size + (closed if signed_qty > 0 else -closed)
        rest = abs(signed_qty) - closed
        if rest:
            position.size = rest if signed_qty > 0 else -rest
            position.cost = rest * price
            position.created = now
        return Fill(closed, pnl)

    def progress(self, order: Order, now: int) -> list[Push]:
        """Push the order as it stands, PartiallyFilled while part of it is filled."""
        if not order.terminal and order.cum_qty:
            order.status = "PartiallyFilled"
        order.updated = now
        return [("order", order_row(order))]

    def finish(
        self,
        order: Order,
        status: str,
        now: int,
        reason: str = "EC_NoError",
        cancel_type: str = "UNKNOWN",
    ) -> list[Push]:
        """End the order (Filled, Cancelled, Rejected): off the open list, into the memory."""
        assert status in TERMINAL and not order.terminal
        order.status, order.reject_reason, order.cancel_type = status, reason, cancel_type
        order.updated = now
        self.open.pop(order.order_id, None)
        self.closed.append(order.order_id)
        return [("order", order_row(order))]

    def execute(
        self, order: Order, price: Decimal, now: int, marks: Marks, share: Decimal | None = None
    ) -> list[Push]:
        """Match an accepted order (IOC, as market orders are) at ``price``: fill what it may
        take — at most ``share`` of it when given (a partial fill) — and cancel the rest."""
        pushes: list[Push] = []
        leaves = order.leaves
        can = self.fillable(order) if order.crosses(price) else ZERO
        qty = can if share is None else min(can, share)
        if qty > 0:
            pushes += self.fill(order, qty, price, now, marks)
        if order.cum_qty == order.qty:
            pushes += self.finish(order, "Filled", now)
        else:
            capped = order.reduce_only and order.crosses(price) and can < leaves
            kind = "CancelByReduceOnly" if capped else "UNKNOWN"
            if qty > 0:
                pushes += self.progress(order, now)
            pushes += self.finish(order, "Cancelled", now, "EC_NoImmediateQtyToFill", kind)
        return pushes

    def cancel(self, order: Order, now: int) -> list[Push]:
        """A client's cancel of an order still open."""
        return self.finish(order, "Cancelled", now, "EC_PerCancelRequest", "CancelByUser")

    def reject(self, order: Order, now: int, reason: str = "EC_Others") -> list[Push]:
        return self.finish(order, "Rejected", now, reason)

    # -- funding ---------------------------------------------------------------------------------
    def fund(
        self, symbol: str, time: int, rate: Decimal, price: Decimal, marks: Marks
    ) -> list[Push]:
        """Settle funding on the account's positions in ``symbol`` at ``price``: a long pays
        ``size × price × rate`` when the rate is positive, a short receives it."""
        pushes: list[Push] = []
        for idx in self.position_indices():
            position = self.positions.get((symbol, idx))
            if position is None or not position.size:
                continue
            fee = book(position.size * price * rate)
            self.wallet -= fee
            self.cum_realised -= fee
            position.cum_realised -= fee
            position.cur_realised -= fee
            seq = self._next_seq()
            position.seq, position.updated = seq, time
            size = abs(position.size)
            execution = Execution(
                self._exec_id(),
                "Funding",
                symbol,
                position.side,
                "",
                "",
                "UNKNOWN",
                ZERO,
                ZERO,
                price,
                size,
                size * price,
                fee,
                rate,
                time,
                ZERO,
                ZERO,
                ZERO,
                seq,
                "",
            )
            self.executions.append(execution)
            pushes += [
                ("execution", execution_row(execution, price)),
                ("position", position_row(position, marks[symbol], self.leverage)),
            ]
        if pushes:
            pushes.append(("wallet", wallet_row(self, marks)))
        return pushes

    # -- lookups ---------------------------------------------------------------------------------
    def find(self, order_id: str = "", link_id: str = "") -> Order | None:
        """An accepted order by id or link id (a reserved, not yet accepted link id: None)."""
        if order_id:
            order = self.orders.get(order_id)
            return order if order and (not link_id or order.link_id == link_id) else None
        found = self.link_ids.get(link_id) if link_id else None
        return self.orders.get(found) if found else None

    def realtime(self) -> list[Order]:
        """What ``/v5/order/realtime`` can see: open orders, then the remembered closed ones,
        newest first."""
        remembered = [self.orders[i] for i in reversed(self.closed)]
        return sorted(self.open.values(), key=_newest) + remembered

    def restart(self) -> None:
        """A simulated exchange restart: the realtime memory of closed orders is gone (the
        orders themselves stay in the history)."""
        self.closed.clear()


def _newest(order: Order) -> tuple[int, int]:
    return (-order.created, -order.number)


def newest_first(orders: Iterable[Order]) -> list[Order]:
    return sorted(orders, key=_newest)
