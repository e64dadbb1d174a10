"""The live executor: the engine's orders on a Bybit account, never doubled, never lost.

The engine hands over orders (:meth:`LiveExecutor.submit`, from the thread a step runs on) and
learns what became of them from :class:`~bot.core.events.ExecutionReport` events that this
executor emits when the exchange says so. In between, per order:

1. :func:`~bot.live.legs.plan_legs` turns it into legs (reduce-only closes, capped opens), each
   with a deterministic ``orderLinkId``; the rails may refuse a leg (recorded as a rejection).
2. **Write-ahead**: the leg's intent is committed to the store, status ``Unknown``, *before* the
   request is sent. A crash after that point leaves a row a restart must resolve.
3. The request. A definite answer (acknowledged, rejected) is recorded. An *unknown* one — a
   timeout, a reset connection, a 5xx or 10016 after the request may have arrived — blocks the
   symbol: nothing else is sent for it until the order is found (by its ``orderLinkId``: open
   or recent orders, order history, executions) or, if not found, re-sent with the **same**
   ``orderLinkId`` while the decision is still fresh (a 110072 reply proves it exists). Never a
   new id for an order whose outcome is unknown; past the re-send window the symbol stays
   blocked, looked up again and again, until the exchange says what happened.
4. The leg settles: a final status (from the order stream, or looked up when the stream is
   silent) and executions covering its executed quantity (fetched by ``orderLinkId`` when the
   stream lost them). Only then the next leg, or the next order for the symbol, goes out, so
   reduce-only legs are planned from the position the exchange really holds.

Fills, fees and funding come from the exchange's executions, de-duplicated on ``execId``;
nothing is simulated. An execution or order the run did not place (a manual trade,
liquidation, ADL) is recorded as a foreign event for the daemon's reconciliation to act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.core.events import (
    ACCEPTED,
    CANCELLED,
    FILLED,
    FUNDING,
    PARTIALLY_FILLED,
    REJECTED,
    ExecutionReport,
    Fill,
    Order,
)
from bot.core.execution import LATENCY_SAMPLES
from bot.core.instruments import InstrumentSpec
from bot.live.legs import Leg, plan_legs
from bot.live.rails import Rails
from bot.venues.bybit.private_errors import DuplicateOrderLinkId, OrderRejected, OutcomeUnknown
from bot.venues.bybit.private_protocol import OrderRequest
from bot.venues.bybit.private_records import Execution, OrderAck, OrderUpdate
from bot.venues.bybit.rest_protocol import BybitError

log = logging.getLogger(__name__)

#: executions that move a position (``Funding`` only moves cash)
TRADE_TYPES = frozenset({"Trade", "AdlTrade", "BustTrade", "Delivery"})


class OrderVenue(Protocol):
    """What the executor needs of the exchange: :class:`~bot.venues.bybit.private_rest.
    TradingRest` (a read-only client has no ``create_order`` and cannot be passed here)."""

    async def create_order(self, request: OrderRequest) -> OrderAck: ...

    async def order_by_link_id(self, symbol: str, link_id: str) -> OrderUpdate | None: ...

    async def order_history(self, *, symbol: str | None = None,
                            link_id: str | None = None) -> list[OrderUpdate]: ...  # fmt: skip

    async def executions(self, *, symbol: str | None = None,
                         link_id: str | None = None) -> list[Execution]: ...  # fmt: skip


class Ledger(Protocol):
    """The store's order ledger, bound to the run and its lease (synchronous: called on a
    worker thread)."""

    def write_intent(self, leg: Leg, created_at: int) -> None: ...

    def update(
        self,
        link_id: str,
        update: OrderUpdate | None,
        *,
        status: str,
        now: int,
        reject_code: str | None = None,
        reject_reason: str | None = None,
        order_id: str | None = None,
    ) -> None:
        """Move an order's row forward; `order_id` names the exchange's id when an
        acknowledgement carries it before any order update does."""


@dataclass
class _LegState:
    leg: Leg
    created_ms: int  # wall ms when its intent was written (the re-send window runs from it)
    status: str = "Unknown"
    cum_exec_qty: float = 0.0  # what the exchange says was executed
    booked_qty: float = 0.0  # what executions we booked add up to
    reported: set[str] = field(default_factory=set)  # report kinds already emitted
    # why the exchange refused a re-send of it (code, reason): no proof the first send failed
    refused_resend: tuple[str, str] | None = None
    final: asyncio.Event = field(default_factory=asyncio.Event)


def _fmt(value: float, decimals: int) -> str:
    text = f"{abs(value):.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class LiveExecutor:
    """Executor protocol for the engine, plus the async worker that talks to the exchange."""

    def __init__(
        self,
        *,
        run_id: str,
        specs: Mapping[str, InstrumentSpec],
        max_market_qty: Mapping[str, float],
        venue: OrderVenue,
        ledger: Ledger,
        emit: Callable[[ExecutionReport], None],
        rails: Rails,
        price_of: Callable[[str], float],
        positions: Mapping[str, float] | None = None,
        seen_exec_ids: Iterable[str] = (),
        known_link_ids: Iterable[str] = (),
        resend_window_s: float = 10.0,
        settle_timeout_s: float = 5.0,
        retry_pause_s: float = 0.2,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        on_foreign: Callable[[str, str], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.specs = dict(specs)
        self.max_market_qty = dict(max_market_qty)
        self.venue = venue
        self.ledger = ledger
        self.emit = emit
        self.rails = rails
        self.price_of = price_of  # the symbol's last close (for the rails' notional limits)
        self.positions: dict[str, float] = {s: 0.0 for s in self.specs} | dict(positions or {})
        self.resend_window_s = resend_window_s
        self.settle_timeout_s = settle_timeout_s
        self.retry_pause_s = retry_pause_s
        self.wall_ms = wall_ms
        self.on_foreign = on_foreign  # (subject, description): the daemon decides what to do
        self.submitted = 0
        self.submitted_ns = 0
        # latency: perf_counter_ns when the message that closed the step arrived (set by the
        # daemon), and closing message → first order request of the decision, per decision
        self.trigger_ns = 0
        # the most recent sends' latencies (the benchmark's samples; a daemon runs for months)
        self.send_latency_ns: deque[int] = deque(maxlen=LATENCY_SAMPLES)
        self.counters: Counter[str] = Counter()
        self.blocked: set[str] = set()  # symbols with an order of unknown outcome
        self.foreign: list[str] = []  # what the run did not place (for reconciliation)
        self._legs: dict[str, _LegState] = {}
        self._seen: set[str] = set(seen_exec_ids)
        # the run's orders from earlier processes (its order ledger): their executions and
        # updates are the run's, not foreign, even once no leg state is kept for them
        self._known: set[str] = set(known_link_ids)
        self._queues: dict[str, asyncio.Queue[Order]] = {}
        self._workers: list[asyncio.Task] = []
        self._outstanding = 0  # orders submitted and not carried out yet
        self._stamps: dict[str, int] = {}  # engine link id → when its decision's message came
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    # -- the engine's side (Executor protocol) --------------------------------------------------
    @property
    def pending(self) -> list[Order]:
        return []  # orders fill on the exchange, never at a bar's open

    def submit(self, orders: list[Order]) -> list[ExecutionReport]:
        """Queue orders for the workers (safe from any thread); outcomes come as reports."""
        assert self._loop is not None, "start the executor before submitting"
        self.submitted += len(orders)
        self.submitted_ns = time.perf_counter_ns()
        trigger, self.trigger_ns = self.trigger_ns, 0  # the decision's first order carries it
        for i, order in enumerate(orders):
            self._loop.call_soon_threadsafe(self._enqueue, order, trigger if i == 0 else 0)
        return []

    def on_open(self, start: int, opens, present) -> list[ExecutionReport]:
        return []

    def on_symbol_open(self, symbol: str, start: int, open_price: float) -> list[ExecutionReport]:
        return []

    # -- the workers: one per symbol ---------------------------------------------------------------
    def start(self) -> None:
        """Bind to the running loop (before the engine can submit)."""
        self._loop = asyncio.get_running_loop()

    def _enqueue(self, order: Order, trigger_ns: int) -> None:
        """On the loop: queue for the symbol's worker, which carries its orders out in turn
        (a symbol with an unresolved order waits; the others do not)."""
        self._outstanding += 1
        self._idle.clear()
        if trigger_ns:
            self._stamps[order.link_id] = trigger_ns
        queue = self._queues.get(order.symbol)
        if queue is None:
            queue = self._queues[order.symbol] = asyncio.Queue()
            self._workers.append(asyncio.get_running_loop().create_task(
                self._work(queue), name=f"orders-{order.symbol}"))  # fmt: skip
        queue.put_nowait(order)

    async def _work(self, queue: asyncio.Queue[Order]) -> None:
        while True:
            order = await queue.get()
            try:
                await self.execute(order)
            finally:
                self._outstanding -= 1
                if not self._outstanding:
                    self._idle.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Let the workers send until ``stop``; then give the orders in flight a moment to
        settle (what is cut short stays written ahead, for the next start to resolve)."""
        self.start()
        await stop.wait()
        await self.close(self.settle_timeout_s)

    async def close(self, grace_s: float) -> None:
        """Give orders in flight ``grace_s`` to settle, then stop the workers."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_s)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    @property
    def busy(self) -> bool:
        """Orders queued, in flight or unresolved: positions may be moving."""
        return not self._idle.is_set() or bool(self.blocked)

    async def drained(self) -> None:
        """Wait until every submitted order has been carried out (tests, shutdown)."""
        await self._idle.wait()

    async def execute(self, order: Order) -> None:
        """Carry one engine order out, leg by leg, each settled before the next."""
        spec = self.specs[order.symbol]
        held = self.positions.get(order.symbol, 0.0)
        cap = self.max_market_qty.get(order.symbol, math.inf)
        for leg in plan_legs(order, held, spec, self.run_id, cap):
            state = await self._send_leg(leg)
            if state.status == "Rejected":
                return  # the rest of the order depends on this leg

    async def _send_leg(self, leg: Leg) -> _LegState:
        existing = self._legs.get(leg.link_id)
        if existing is not None:  # planned again (restart): resolve, never re-place
            await self._resolve(existing)
            return existing
        now = self.wall_ms()
        state = _LegState(leg, now)
        self._legs[leg.link_id] = state
        held = self.positions.get(leg.symbol, 0.0)
        refusal = self.rails.check(leg, self.price_of(leg.symbol), held, now)
        await asyncio.to_thread(self.ledger.write_intent, leg, now)  # write-ahead
        if refusal is not None:
            self.counters["rail_rejections"] += 1
            await self._rejected(state, "rail", refusal)
            return state
        request = self._request(leg)
        stamp = self._stamps.pop(leg.order.link_id, 0)
        if stamp:
            self.send_latency_ns.append(time.perf_counter_ns() - stamp)
        try:
            ack = await self.venue.create_order(request)
        except OrderRejected as exc:
            await self._rejected(state, str(exc.code), exc.reason)
            return state
        except (DuplicateOrderLinkId, OutcomeUnknown) as exc:
            self.counters["unknown_outcomes"] += 1
            log.warning("%s: order %s outcome unknown (%s): %s blocked until it is found",
                        leg.symbol, leg.link_id, type(exc).__name__, leg.symbol)  # fmt: skip
            await self._resolve(state)
            return state
        await self._acknowledged(state, ack)
        await self._settle(state)
        return state

    def _request(self, leg: Leg) -> OrderRequest:
        spec = self.specs[leg.symbol]
        return OrderRequest(symbol=leg.symbol, side=leg.side, qty=_fmt(leg.qty, spec.decimals),
                            link_id=leg.link_id, reduce_only=leg.reduce_only)  # fmt: skip

    # -- outcomes --------------------------------------------------------------------------------
    def _order(self, leg: Leg) -> Order:
        o = leg.order
        return Order(leg.link_id, leg.symbol, leg.qty, o.decision_time, o.reason, o.attempt)

    def _report(self, state: _LegState, kind: str, fill: Fill | None = None,
                reason: str = "") -> None:  # fmt: skip
        if kind in (ACCEPTED, CANCELLED, REJECTED):
            if kind in state.reported:
                return  # a doubled message reports once
            state.reported.add(kind)
        time_ms = fill.time if fill is not None else self.wall_ms()
        self.emit(ExecutionReport(kind, state.leg.symbol, time_ms, self._order(state.leg),
                                  fill, reason))  # fmt: skip

    async def _acknowledged(self, state: _LegState, ack: OrderAck) -> None:
        self._advance(state, "New")
        self._report(state, ACCEPTED)  # before the ledger write: executions may follow at once
        await asyncio.to_thread(self.ledger.update, state.leg.link_id, None, status="New",
                                now=self.wall_ms(), order_id=ack.order_id)  # fmt: skip

    async def _rejected(self, state: _LegState, code: str, reason: str) -> None:
        self._advance(state, "Rejected")
        self.counters["rejections"] += 1
        await asyncio.to_thread(self.ledger.update, state.leg.link_id, None, status="Rejected",
                                now=self.wall_ms(), reject_code=code,
                                reject_reason=reason[:200])  # fmt: skip
        self._report(state, REJECTED, reason=f"{code}: {reason}")
        state.final.set()

    def _advance(self, state: _LegState, status: str) -> bool:
        """Statuses only move forward (a late New after Filled is history, not news)."""
        rank = {"Unknown": 0, "New": 1, "PartiallyFilled": 2}
        if state.status in ("Filled", "Cancelled", "Rejected"):
            return False
        if rank.get(status, 3) < rank.get(state.status, 3):
            return False
        state.status = status
        return True

    # -- what the private stream (or a look-up) says ----------------------------------------------
    def knows(self, link_id: str) -> bool:
        """Whether ``link_id`` is an order of this run (of this process or an earlier one)."""
        return bool(link_id) and (link_id in self._legs or link_id in self._known)

    async def on_order(self, update: OrderUpdate) -> None:
        """An order's state, from the ``order`` topic or a look-up."""
        state = self._legs.get(update.link_id)
        if state is None:
            if update.link_id in self._known:
                return  # a late word on an order an earlier process settled
            self._foreign(f"order:{update.order_id}", f"order {update.order_id} "
                          f"({update.link_id or 'no link id'}) on {update.symbol}")  # fmt: skip
            return
        status = "Cancelled" if update.status == "Deactivated" else update.status
        state.cum_exec_qty = max(state.cum_exec_qty, update.cum_exec_qty)
        if not self._advance(state, status):
            return
        await asyncio.to_thread(self.ledger.update, update.link_id, update, status=status,
                                now=self.wall_ms())  # fmt: skip
        if status == "New":
            self._report(state, ACCEPTED)
        elif status == "Rejected":
            self.counters["rejections"] += 1
            self._report(state, REJECTED, reason=update.reject_reason or "rejected")
        elif status == "Cancelled":  # an IOC's unfilled rest, or a cancel
            self._report(state, CANCELLED, reason=update.reject_reason or "cancelled")
        if status in ("Filled", "Cancelled", "Rejected"):
            state.final.set()

    def on_execution(self, execution: Execution) -> None:
        """An execution, from the ``execution`` topic or a look-up; each ``execId`` once."""
        if execution.exec_id in self._seen:
            self.counters["duplicate_executions"] += 1
            return
        self._seen.add(execution.exec_id)
        signed = execution.qty if execution.side == "Buy" else -execution.qty
        if execution.exec_type == "Funding":
            # Bybit's funding fee: positive = paid, negative = received
            fill = Fill(execution.exec_id, None, execution.symbol, execution.time_ms, 0.0,
                        execution.price, execution.fee, "Funding", -execution.fee)  # fmt: skip
            self.emit(ExecutionReport(FUNDING, execution.symbol, execution.time_ms, fill=fill))
            return
        if execution.exec_type not in TRADE_TYPES:
            self.counters[f"ignored_exec.{execution.exec_type}"] += 1
            return
        spec = self.specs.get(execution.symbol)
        decimals = spec.decimals if spec is not None else 8
        self.positions[execution.symbol] = round(
            self.positions.get(execution.symbol, 0.0) + signed, decimals
        )
        fill = Fill(execution.exec_id, execution.link_id or None, execution.symbol,
                    execution.time_ms, signed, execution.price, execution.fee,
                    execution.exec_type, -signed * execution.price - execution.fee)  # fmt: skip
        state = self._legs.get(execution.link_id)
        if state is None:
            if execution.link_id not in self._known:
                self._foreign(f"execution:{execution.exec_id}", f"{execution.exec_type} "
                              f"execution {execution.exec_id} of {signed:+g} "
                              f"{execution.symbol}")  # fmt: skip
            self.emit(ExecutionReport(FILLED, execution.symbol, execution.time_ms, fill=fill))
            return
        self._report(state, ACCEPTED)  # an execution may overtake the acknowledgement
        state.booked_qty = round(state.booked_qty + execution.qty, decimals)
        state.cum_exec_qty = max(state.cum_exec_qty, state.booked_qty)
        whole = state.booked_qty >= abs(state.leg.qty) - 10**-decimals / 2
        self._report(state, FILLED if whole else PARTIALLY_FILLED, fill)

    def _foreign(self, subject: str, what: str) -> None:
        self.counters["foreign"] += 1
        self.foreign.append(what)
        log.error("the account shows %s that this run did not place", what)
        if self.on_foreign is not None:
            self.on_foreign(subject, what)

    # -- settling and resolving ------------------------------------------------------------------
    async def _settle(self, state: _LegState) -> None:
        """Wait for the leg's final status and the executions that make it up; ask the
        exchange when the stream stays silent."""
        try:
            await asyncio.wait_for(state.final.wait(), self.settle_timeout_s)
        except TimeoutError:
            self.counters["settle_lookups"] += 1
            await self._resolve(state)
        await self._complete_executions(state)

    async def _complete_executions(self, state: _LegState) -> None:
        """Executions the stream lost, fetched by ``orderLinkId`` (each booked once)."""
        spec = self.specs[state.leg.symbol]
        tolerance = 10**-spec.decimals / 2
        for _ in range(50):
            if state.booked_qty >= state.cum_exec_qty - tolerance:
                return
            try:
                found = await self.venue.executions(symbol=state.leg.symbol,
                                                    link_id=state.leg.link_id)  # fmt: skip
            except BybitError as exc:
                log.warning("%s: executions of %s not fetched (%s)", state.leg.symbol,
                            state.leg.link_id, exc)  # fmt: skip
                found = []
            for execution in found:
                self.on_execution(execution)
            if state.booked_qty < state.cum_exec_qty - tolerance:
                await asyncio.sleep(self.retry_pause_s)
        log.error("%s: %s executed %g but executions of only %g were found", state.leg.symbol,
                  state.leg.link_id, state.cum_exec_qty, state.booked_qty)  # fmt: skip

    async def _lookup(self, leg: Leg) -> tuple[bool, OrderUpdate | None]:
        """(whether the exchange answered, the order by its link id): open/recent orders
        first, then the history. A failed look-up says nothing about the order."""
        try:
            found = await self.venue.order_by_link_id(leg.symbol, leg.link_id)
            if found is None:
                history = await self.venue.order_history(symbol=leg.symbol, link_id=leg.link_id)
                found = next((o for o in history if o.link_id == leg.link_id), None)
        except BybitError as exc:
            log.warning("%s: looking up %s failed (%s)", leg.symbol, leg.link_id, exc)
            return False, None
        return True, found

    async def _resolve(self, state: _LegState) -> None:
        """Find out what became of a leg; the symbol is blocked meanwhile.

        Only an answered look-up that finds nothing allows a re-send (same ``orderLinkId``,
        within the window). A refused re-send is not taken as the answer either: the first
        send may still surface (a late acceptance), so look-ups go on until the window closes;
        an order no look-up found by then, whose re-send was refused, never existed."""
        leg = state.leg
        self.blocked.add(leg.symbol)
        try:
            attempt = 0
            while state.status not in ("Filled", "Cancelled", "Rejected"):
                answered, found = await self._lookup(leg)
                unknown = answered and found is None and state.status == "Unknown"
                if found is not None:
                    await self.on_order(found)
                    if found.is_final:
                        break
                elif unknown and self._may_resend(state):
                    if state.refused_resend is None and await self._resend(state):
                        break
                elif unknown and state.refused_resend is not None:
                    await self._rejected(state, *state.refused_resend)
                    break
                elif attempt % 20 == 19:
                    log.error("%s: order %s still unresolved; %s stays blocked", leg.symbol,
                              leg.link_id, leg.symbol)  # fmt: skip
                attempt += 1
                await asyncio.sleep(min(self.retry_pause_s * 2 ** min(attempt, 5), 5.0))
            await self._complete_executions(state)
        finally:
            self.blocked.discard(leg.symbol)

    def _may_resend(self, state: _LegState) -> bool:
        return self.wall_ms() - state.created_ms <= self.resend_window_s * 1000

    async def _resend(self, state: _LegState) -> bool:
        """Re-send the same ``orderLinkId``; True when that settled the leg's existence."""
        self.counters["resends"] += 1
        try:
            ack = await self.venue.create_order(self._request(state.leg))
        except DuplicateOrderLinkId:
            self.counters["duplicate_proofs"] += 1
            self._advance(state, "New")  # it exists: its state comes from the look-ups
            return False
        except OrderRejected as exc:
            log.warning("%s: the re-send of %s was refused (%s); looking it up until the "
                        "re-send window closes", state.leg.symbol, state.leg.link_id,
                        exc)  # fmt: skip
            state.refused_resend = (str(exc.code), exc.reason)
            return False
        except OutcomeUnknown:
            return False
        await self._acknowledged(state, ack)
        await self._settle(state)
        return True

    def restore(self, legs: Sequence[tuple[Leg, int]]) -> None:
        """Legs (with their intents' creation times) a previous process wrote ahead but did
        not see settle: :meth:`resolve_restored` finds out what became of them."""
        for leg, created_ms in legs:
            self._legs.setdefault(leg.link_id, _LegState(leg, created_ms))

    async def resolve_restored(self) -> None:
        for state in list(self._legs.values()):
            if state.status not in ("Filled", "Cancelled", "Rejected"):
                await self._resolve(state)
