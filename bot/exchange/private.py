"""The private side of the local exchange: accounts, their orders over time, and the faults.

:class:`PrivateExchange` owns the :class:`~bot.exchange.account.Account` of every configured
API key and everything that happens to them *in time*: an order matched against the replayed
market's last price at the market time it arrives (the forming candle's close, the price the
public kline stream shows), fills delayed on the wall clock, orders accepted late, funding
settled at the tape's funding times, manual orders at bar starts, the order rate limit, and
every configured fault. It holds no sockets: the REST handlers
(:mod:`bot.exchange.private_rest`) ask it for an :class:`Answer`, and it hands the rows each
change produces to the private websocket sessions attached to that account
(:mod:`bot.exchange.private_ws`), which apply the stream faults.

:meth:`PrivateExchange.advance` brings the books up to the current time (due timers,
funding, manual orders); every request calls it first, and a ticker task calls it while the
server runs, so streams move without requests.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import numpy as np

from bot.config import ExchangeAccountConfig, Settings
from bot.exchange.account import Account, Marks, Order, Push, Rules
from bot.exchange.auth import (
    DEFAULT_RECV_WINDOW,
    AuthError,
    Signed,
    check_rest,
    timestamp_error,
)
from bot.exchange.clock import MarketClock
from bot.exchange.instruments import instrument_info
from bot.exchange.market import Market
from bot.exchange.money import text, truncate
from bot.exchange.numfmt import fmt
from bot.exchange.order_request import (
    OrderRequest,
    RefusalError,
    parse_cancel,
    parse_create,
)
from bot.exchange.private_faults import PrivateFaults

#: A 10006's reset lies at least this far ahead of the wall clock (a client compares it
#: with its own clock a moment later; pybit sleeps the difference and dies on a negative one).
MIN_RESET_AHEAD_MS = 50
WINDOW_MS = 1_000  # the order rate limit's window


class Subscriber(Protocol):
    """A private websocket session, as the exchange sees it."""

    member: Member | None

    def deliver(self, pushes: list[Push], now: int) -> None: ...


@dataclass
class AccountStats:
    """Traffic of one account (``/_local/status``): a refused start makes no request."""

    requests: int = 0  # private REST requests bearing this account's API key
    posts: int = 0  # ... of them POSTs
    orders_accepted: int = 0
    orders_refused: int = 0  # answered with a non-zero retCode by the order checks
    cancels: int = 0
    rate_limited: int = 0  # 10006 from the order rate limit
    ws_connections: int = 0  # private websockets authenticated for this account
    ws_auth_failures: int = 0


class OrderRateLimit:
    """Creates and cancels per account: ``limit`` per wall-clock second (fixed windows)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.window_start = -WINDOW_MS
        self.count = 0

    def hit(self, wall_ms: int) -> tuple[bool, int, int]:
        """(allowed, remaining, reset wall ms) for one more request at ``wall_ms``."""
        if wall_ms >= self.window_start + WINDOW_MS:
            self.window_start, self.count = wall_ms, 0
        reset = self.window_start + WINDOW_MS
        if self.count >= self.limit:
            return False, 0, reset
        self.count += 1
        return True, self.limit - self.count, reset


@dataclass
class Member:
    """An account with its key, configuration, traffic and limits."""

    number: int
    config: ExchangeAccountConfig
    account: Account
    limiter: OrderRateLimit
    stats: AccountStats = field(default_factory=AccountStats)
    requests_seen: int = 0  # private requests (for fault positions)
    order_requests: int = 0  # creates and cancels (for fault positions)
    burst_left: int = 0  # 10006s still owed by a rate-limit burst

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class Answer:
    """How a private REST request is answered."""

    code: int = 0
    message: str = "OK"
    result: dict[str, Any] = field(default_factory=dict)
    status: int = 200  # HTTP status: a 5xx is a server-error fault
    drop: bool = False  # cut the connection without any answer
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def refusal(cls, refusal: RefusalError, headers: Mapping[str, str] | None = None) -> Answer:
        return cls(refusal.code, refusal.message, headers=headers or {})


SERVER_ERROR = "Internal System Error."


def _decimal(x: float) -> Decimal:
    return Decimal(fmt(x))


class PrivateExchange:
    """Every account of ``settings.exchange.accounts``, trading on ``market`` in the time of
    ``clock`` (market time for prices and message times, wall time for signatures, limits,
    delays). Tests reach the books through :attr:`members` (name → :class:`Member`, whose
    ``account`` holds orders, executions, positions and the wallet) and the counters through
    :meth:`status`."""

    def __init__(self, settings: Settings, market: Market, clock: MarketClock) -> None:
        exchange = settings.exchange
        self.market = market
        self.clock = clock
        self.seed = exchange.seed
        self.fee_rate = _decimal(exchange.taker_fee)
        self.faults = PrivateFaults(exchange.private_faults, exchange.seed)
        self.config = exchange.private_faults
        self.rules = {s: Rules.from_info(instrument_info(market, s)) for s in market.symbols}
        self.members: dict[str, Member] = {}
        self.secrets: dict[str, tuple[str, Member]] = {}
        for number, config in enumerate(exchange.accounts, start=1):
            account = Account(
                config.name,
                number,
                exchange.seed,
                _decimal(config.balance),
                _decimal(config.leverage),
                self.fee_rate,
                hedge=config.position_mode == "hedge",
            )
            member = Member(number, config, account, OrderRateLimit(exchange.order_rate_limit))
            self.members[config.name] = member
            key, secret = config.api_key.get_secret_value(), config.api_secret.get_secret_value()
            self.secrets[key] = (secret, member)
        self.subscribers: set[Subscriber] = set()  # authenticated private websockets
        self.sessions: set[Any] = set()  # every private websocket (closed at shutdown)
        self.ws_auth_refused = 0  # websocket auths with a bad key, signature or expiry
        self.requests = 0  # every private REST request, signed or not
        self.restarts = 0
        self._timers: list[tuple[int, int, Callable[[], None]]] = []
        self._timer_order = itertools.count()
        now = clock.now()
        self._funding_next = {
            s: int(np.searchsorted(times, now, side="right"))
            for s, (times, _) in market.tape.funding.items()
            if s in market.symbols
        }
        self._slot_seen = self._slot(now)
        self._marks_cache: tuple[int, dict[str, Decimal]] | None = None

    # -- time ------------------------------------------------------------------------------------
    def _slot(self, now: int) -> int:
        return (now - self.market.tape.first) // self.market.interval_ms

    def marks(self, t: int) -> dict[str, Decimal]:
        """The last price of every symbol at market time ``t`` (what the kline stream shows)."""
        g = self.market.update_at(t)
        if self._marks_cache is None or self._marks_cache[0] != g:
            prices = {s: _decimal(self.market.price(s, g)) for s in self.market.symbols}
            self._marks_cache = (g, prices)
        return self._marks_cache[1]

    def later(self, delay_ms: int, action: Callable[[], None]) -> None:
        """Run ``action`` once the wall clock has moved ``delay_ms`` on (at an advance)."""
        due = self.clock.wall_ms() + delay_ms
        heapq.heappush(self._timers, (due, next(self._timer_order), action))

    def advance(self) -> None:
        """Bring the books up to now: due timers, funding settled, manual orders placed."""
        wall = self.clock.wall_ms()
        while self._timers and self._timers[0][0] <= wall:
            _, _, action = heapq.heappop(self._timers)
            action()
        now = self.clock.now()
        self._settle_funding(now)
        self._manual_orders(now)

    def _settle_funding(self, now: int) -> None:
        due: list[tuple[int, str, float]] = []
        for symbol, start in self._funding_next.items():
            times, rates = self.market.tape.funding[symbol]
            end = int(np.searchsorted(times, now, side="right"))
            due += [(int(times[k]), symbol, float(rates[k])) for k in range(start, end)]
            self._funding_next[symbol] = end
        for t, symbol, rate in sorted(due):
            marks = self.marks(t)
            for member in self.members.values():
                pushes = member.account.fund(symbol, t, _decimal(rate), marks[symbol], marks)
                self._emit(member, pushes, t)

    def _manual_orders(self, now: int) -> None:
        slot = self._slot(now)
        if slot <= self._slot_seen:
            return
        first, self._slot_seen = self._slot_seen + 1, slot
        if not self.faults.probability("manual_order"):
            return
        for s in range(max(first, 0), min(slot, self.market.tape.slots - 1) + 1):
            t = self.market.tape.slot_start(s)
            for member in self.members.values():
                traded = sorted({o.symbol for o in member.account.orders.values()})
                if traded and self.faults.fires("manual_order", member.number, s):
                    symbol = traded[self.faults.pick(len(traded), "manual_order", member.number, s)]
                    side = ("Buy", "Sell")[self.faults.pick(2, "manual_order", member.number, -s)]
                    self.manual_order(member.name, symbol, side, at=t)
                    self.faults.count("manual_order")

    # -- pushes ----------------------------------------------------------------------------------
    def _emit(self, member: Member, pushes: list[Push], now: int) -> None:
        if not pushes:
            return
        for subscriber in list(self.subscribers):
            if subscriber.member is member:
                subscriber.deliver(pushes, now)

    # -- requests --------------------------------------------------------------------------------
    def authenticate(
        self, headers: Mapping[str, str], payload: bytes, post: bool = False
    ) -> Member | Answer:
        """Count the request (for its account too, if its key is one, signed or not) and
        check its signature against the wall clock."""
        self.requests += 1
        key = headers.get("X-BAPI-API-KEY", "")
        found = self.secrets.get(key)
        if found is not None:
            found[1].stats.requests += 1
            found[1].stats.posts += post
        result = check_rest(headers, payload, self.secrets, self.clock.wall_ms())
        if isinstance(result, AuthError):
            return Answer(result.code, result.message)
        assert isinstance(result, Signed)
        return result.account

    def gate(self, member: Member, order_op: bool, headers: Mapping[str, str]) -> Answer | None:
        """The faults and limits a signed request meets before it is served: a skewed
        clock (10002), a rate-limit burst (10006); for creates and cancels also the key's
        permission (10005) and the order rate limit (10006)."""
        member.requests_seen += 1
        n, wall = member.requests_seen, self.clock.wall_ms()
        if self.faults.fires("clock_skew", member.number, n):
            # the server clock runs clock_skew_ms ahead for this request: a timestamp older
            # than its window then is refused (a client that widens the window gets through)
            window = int(headers.get("X-BAPI-RECV-WINDOW") or DEFAULT_RECV_WINDOW)
            stamp = int(headers["X-BAPI-TIMESTAMP"])
            error = timestamp_error(stamp, window, wall + self.config.clock_skew_ms)
            if error is not None:
                self.faults.count("clock_skew")
                return Answer(error.code, error.message)
        if member.burst_left > 0 or self.faults.fires("rate_limit_burst", member.number, n):
            if member.burst_left == 0:
                member.burst_left = self.config.rate_limit_burst_requests
            member.burst_left -= 1
            self.faults.count("rate_limit_burst")
            reset = wall + max(self.config.rate_limit_reset_ms, MIN_RESET_AHEAD_MS)
            return Answer(10006, "Too many visits", headers=_limit_headers(0, 0, reset))
        if not order_op:
            return None
        if member.config.read_only:
            return Answer(10005, "Permission denied, please check your API key permissions.")
        limit = member.limiter.limit
        allowed, remaining, reset = member.limiter.hit(wall)
        reset = max(reset, wall + MIN_RESET_AHEAD_MS)
        headers = _limit_headers(limit, remaining, reset)
        if not allowed:
            member.stats.rate_limited += 1
            return Answer(10006, "Too many visits", headers=headers)
        return Answer(headers=headers)  # code 0: go on, with these headers

    def _server_error(
        self, kind: str, member: Member, n: int, headers: Mapping[str, str]
    ) -> Answer:
        status = self.faults.http_status(kind, member.number, n)
        if status == 200:
            return Answer(10016, SERVER_ERROR, headers=headers)
        return Answer(10016, SERVER_ERROR, status=status, headers=headers)

    def create(self, member: Member, body: object, headers: Mapping[str, str]) -> Answer:
        """``POST /v5/order/create`` for ``member`` (signed, gated), faults included."""
        member.order_requests += 1
        n, faults, account = member.order_requests, self.faults, member.account
        try:
            req = parse_create(body, self.market.symbols)
        except RefusalError as refusal:
            member.stats.orders_refused += 1
            return Answer.refusal(refusal, headers)
        if faults.hit("error_before", member.number, n):
            return self._server_error("error_before", member, n, headers)
        try:
            self._forced_refusal(member, n)
            account.reserve(req.link_id)
        except RefusalError as refusal:
            member.stats.orders_refused += 1
            return Answer.refusal(refusal, headers)
        if faults.hit("late_acceptance", member.number, n):
            self.later(self.config.late_acceptance_ms, lambda: self._accept_late(member, req, n))
            return Answer(drop=True)
        now = self.clock.now()
        marks = self.marks(now)
        try:
            qty = account.check(req, self.rules[req.symbol], marks)
        except RefusalError as refusal:
            account.release(req.link_id)
            member.stats.orders_refused += 1
            return Answer.refusal(refusal, headers)
        order = self._accept(member, req, qty, n, now, marks)
        result = {"orderId": order.order_id, "orderLinkId": order.link_id}
        if faults.hit("error_after", member.number, n):
            return self._server_error("error_after", member, n, headers)
        if faults.hit("lost_response", member.number, n):
            return Answer(drop=True)
        return Answer(result=result, headers=headers)

    def _forced_refusal(self, member: Member, n: int) -> None:
        if self.faults.hit("insufficient_balance", member.number, n):
            raise RefusalError(110007, "ab not enough for new order")
        if self.faults.hit("below_min_notional", member.number, n):
            raise RefusalError(110094, "Order does not meet minimum order value")
        if self.faults.hit("qty_to_zero", member.number, n):
            raise RefusalError(110017, "orderQty will be truncated to zero.")

    def _accept(
        self, member: Member, req: OrderRequest, qty: Decimal, n: int, now: int, marks: Marks
    ) -> Order:
        """Accept a checked order, then match it — or let a fault have it: rejected after
        the ack, filled later, or filled in part and the rest cancelled."""
        account, faults, rules = member.account, self.faults, self.rules[req.symbol]
        mark = marks[req.symbol]
        order, pushes = account.accept(req, qty, rules, mark, now)
        member.stats.orders_accepted += 1
        if faults.hit("async_reject", member.number, n):
            pushes += account.reject(order, now)
        elif faults.hit("delayed_fill", member.number, n):
            self.later(self.config.fill_delay_ms, lambda: self._fill_later(member, order))
        else:
            share = None
            half = truncate(qty / 2, rules.qty_step)
            can_split = half > 0 and order.crosses(mark) and half < account.fillable(order)
            if can_split and faults.hit("ioc_partial", member.number, n):
                share = half
            pushes += account.execute(order, mark, now, marks, share)
        self._emit(member, pushes, now)
        return order

    def _accept_late(self, member: Member, req: OrderRequest, n: int) -> None:
        """A late-accepted order arrives now: checked and matched at today's prices (if the
        checks fail now, it is Rejected: its link id is taken, so it must exist)."""
        now = self.clock.now()
        marks = self.marks(now)
        rules = self.rules[req.symbol]
        try:
            qty = member.account.check(req, rules, marks)
        except RefusalError:
            order, pushes = member.account.accept(req, req.qty, rules, marks[req.symbol], now)
            pushes += member.account.reject(order, now)
            self._emit(member, pushes, now)
            return
        self._accept(member, req, qty, n, now, marks)

    def _fill_later(self, member: Member, order: Order) -> None:
        if order.terminal:
            return  # cancelled in the meantime
        now = self.clock.now()
        marks = self.marks(now)
        pushes = member.account.execute(order, marks[order.symbol], now, marks)
        self._emit(member, pushes, now)

    def cancel(self, member: Member, body: object, headers: Mapping[str, str]) -> Answer:
        """``POST /v5/order/cancel``: only an order still open can be (110001 otherwise)."""
        member.order_requests += 1
        n = member.order_requests
        try:
            req = parse_cancel(body, self.market.symbols)
        except RefusalError as refusal:
            return Answer.refusal(refusal, headers)
        if self.faults.hit("error_before", member.number, n):
            return self._server_error("error_before", member, n, headers)
        order = member.account.find(req.order_id, req.link_id)
        if order is None or order.terminal or order.symbol != req.symbol:
            return Answer(110001, "Order does not exist.", headers=headers)
        now = self.clock.now()
        self._emit(member, member.account.cancel(order, now), now)
        member.stats.cancels += 1
        if self.faults.hit("error_after", member.number, n):
            return self._server_error("error_after", member, n, headers)
        result = {"orderId": order.order_id, "orderLinkId": order.link_id}
        return Answer(result=result, headers=headers)

    # -- the operator's hand ---------------------------------------------------------------------
    def manual_order(
        self,
        name: str,
        symbol: str,
        side: str,
        qty: Decimal | None = None,
        at: int | None = None,
        *,
        resting: bool = False,
    ) -> Order:
        """A market order placed on ``name``'s account by someone else (a person on the
        website): no orderLinkId, no checks but the quantity grid. Without ``qty``: about
        ``manual_order_notional`` USDT, at least the minimum order. ``resting``: a GTC limit
        order at half (a buy) or twice (a sell) the mark instead, left open — this exchange
        matches no resting orders, and that far from the market none would fill."""
        member = self.members[name]
        now = self.clock.now() if at is None else at
        marks = self.marks(now)
        rules, mark = self.rules[symbol], marks[symbol]
        if qty is None:
            target = max(_decimal(self.config.manual_order_notional), rules.min_notional * 2)
            qty = max(truncate(target / mark, rules.qty_step), rules.min_qty)
        qty = max(truncate(qty, rules.qty_step), rules.qty_step)
        idx = 0 if not member.account.hedge else (1 if side == "Buy" else 2)
        if resting:
            price = truncate(mark * (Decimal("0.5") if side == "Buy" else 2), rules.tick)
            req = OrderRequest(symbol, side, "Limit", qty, price, "GTC", "", False, idx)
        else:
            req = OrderRequest(symbol, side, "Market", qty, None, "IOC", "", False, idx)
        order, pushes = member.account.accept(req, qty, rules, mark, now)
        if not resting:
            pushes += member.account.execute(order, mark, now, marks)
        self._emit(member, pushes, now)
        return order

    def restart(self) -> None:
        """A simulated exchange restart: ``/v5/order/realtime`` forgets every closed order."""
        self.restarts += 1
        for member in self.members.values():
            member.account.restart()

    # -- reports ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        marks = self.marks(self.clock.now())
        accounts = {}
        for name, member in self.members.items():
            account = member.account
            accounts[name] = {
                **asdict(member.stats),
                "orders": len(account.orders),
                "open_orders": len(account.open),
                "executions": len(account.executions),
                "wallet": text(account.wallet),
                "equity": text(account.equity(marks)),
                "positions": {
                    f"{p.symbol}:{p.idx}": text(p.size)
                    for p in account.positions.values()
                    if p.size
                },
            }
        return {
            "requests": self.requests,
            "accounts": accounts,
            "faults": dict(self.faults.counts),
            "restarts": self.restarts,
            "ws_sessions": len(self.sessions),
            "ws_authenticated": len(self.subscribers),
            "ws_auth_refused": self.ws_auth_refused,
        }


def _limit_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-Bapi-Limit": str(limit),
        "X-Bapi-Limit-Status": str(remaining),
        "X-Bapi-Limit-Reset-Timestamp": str(reset),
    }
