"""The live daemon: the paper daemon's engine, stream and store, trading a Bybit account.

It is :class:`~bot.paper.daemon.PaperDaemon` with the live executor plugged in, and what
that changes:

* **Restart.** Stored steps are replayed to rebuild the strategies' state (decisions checked
  against the journal, as for paper), but the portfolio is rebuilt from the run's **journaled
  executions**, booked between the same steps as they happened — never re-simulated. Steps
  missed while the daemon was down update the buffer and are decided, but their orders go
  nowhere (a decision from the past is not traded); trading resumes at the next close.
* **Before trading:** executions the exchange made while the daemon was down are fetched and
  booked; orders written ahead but not seen to settle are resolved (same ``orderLinkId``);
  then the positions are **reconciled** with the exchange's. A position the run did not open
  (a manual trade, a liquidation, ADL) stops the daemon — fail closed — unless ``adopt``,
  which books the exchange's position into the run at its entry price and records that.
* **While trading:** the executor's worker and the private stream run beside the public
  stream; the executor's reports reach the engine through the same queue as bars; a
  reconciliation every ``reconcile_interval_s`` compares positions again and records drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from bot.config import Settings
from bot.core.engine import Engine
from bot.core.events import FILLED, FUNDING, ExecutionReport, Fill, Order, RunEvent
from bot.core.execution import Executor
from bot.core.instruments import InstrumentSpec
from bot.core.market_data import MarketData
from bot.live.executor import LiveExecutor
from bot.live.halt import halt_requested, kill_switch
from bot.live.legs import Leg
from bot.live.preflight import AccountSnapshot, preflight
from bot.live.rails import RailLimits, Rails
from bot.live.wallet_check import (
    BASELINE_EVENT,
    WalletBaseline,
    WalletWatch,
    booked_balance,
    latest_baseline,
    settle_balance,
    tolerance,
)
from bot.logs import USER_EVENT
from bot.monitoring.live import read_live
from bot.monitoring.metrics import Reader
from bot.paper.daemon import PaperDaemon, StartupError, _Run
from bot.store import Store
from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.gap_fill import SeenExecutions, fetch_missed_executions
from bot.venues.bybit.private_records import Execution, OrderUpdate, Position
from bot.venues.bybit.private_rest import TradingRest
from bot.venues.bybit.private_stream import PrivateStream
from bot.venues.bybit.rest_protocol import BybitError

log = logging.getLogger("bot.live")

ADOPT_EXEC_TYPE = "Adopt"
CATCH_UP_ATTEMPTS = 5  # a position taken over from the account (``--adopt``)


class ReconcileError(StartupError):
    """The account holds what the run did not place, and the user did not say to adopt it."""


class MutedExecutor:
    """Takes the orders of replayed and missed steps and sends them nowhere: a decision from
    the past is not traded (the replay books the executions that really happened)."""

    def __init__(self) -> None:
        self.submitted = 0
        self.submitted_ns = 0

    @property
    def pending(self) -> list[Order]:
        return []

    def submit(self, orders: list[Order]) -> list[ExecutionReport]:
        return []

    def on_open(self, start: int, opens: Any, present: Any) -> list[ExecutionReport]:
        return []

    def on_symbol_open(self, symbol: str, start: int, open_price: float) -> list[ExecutionReport]:
        return []


class StoreLedger:
    """The live executor's ledger: the store's order rows for one run, fenced by its lease."""

    def __init__(self, store: Store, run_id: str, owner: str, ttl_s: float) -> None:
        self.store, self.run_id, self.owner, self.ttl_s = store, run_id, owner, ttl_s

    def write_intent(self, leg: Leg, created_at: int) -> None:
        order = leg.order
        self.store.write_order_intent(
            self.run_id, link_id=leg.link_id, symbol=leg.symbol, side=leg.side,
            qty=abs(leg.qty), order_type="Market", decision_time=order.decision_time,
            leg=leg.leg, attempt=order.attempt, reason=order.reason,
            reduce_only=leg.reduce_only, created_at=created_at, lease_owner=self.owner,
            lease_ttl_s=self.ttl_s,
        )  # fmt: skip

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
        if update is not None:
            order_id = update.order_id or order_id
        self.store.update_order(
            link_id, status=status, order_id=order_id or None,
            cum_exec_qty=update.cum_exec_qty if update else None,
            avg_price=(update.avg_price or None) if update else None,
            reject_code=reject_code, reject_reason=reject_reason, updated_at=now,
            lease_owner=self.owner, lease_ttl_s=self.ttl_s,
        )  # fmt: skip


def stored_fill(row: dict[str, Any]) -> Fill:
    """A journaled execution as the engine booked it."""
    qty = float(row["qty"]) * (1.0 if row["side"] == "Buy" else -1.0)
    return Fill(row["exec_id"], row["order_link_id"], row["symbol"], int(row["time"]), qty,
                float(row["price"]), float(row["fee"]), row["exec_type"],
                float(row["cash_flow"]), float(row["realized_pnl"]))  # fmt: skip


def restored_leg(row: dict[str, Any]) -> tuple[Leg, int]:
    """An order row written ahead by an earlier process, as the executor's leg."""
    qty = float(row["qty"]) * (1.0 if row["side"] == "Buy" else -1.0)
    order = Order(row["order_link_id"], row["symbol"], qty, int(row["decision_time"]),
                  row["reason"], int(row["attempt"]))  # fmt: skip
    leg = Leg(row["order_link_id"], row["symbol"], qty, bool(row["reduce_only"]),
              int(row["leg"]), order)  # fmt: skip
    return leg, int(row["created_at"])


class LiveDaemon(PaperDaemon):
    kind = "live"

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Credentials,
        rest_url: str,
        private_ws_url: str,
        rails: RailLimits,
        adopt: bool = False,
        resend_window_s: float = 10.0,
        settle_timeout_s: float = 5.0,
        reconcile_interval_s: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, **kwargs)
        self.credentials = credentials
        self.rest_url = rest_url
        self.private_ws_url = private_ws_url
        self.rail_limits = rails
        self.adopt = adopt
        self.resend_window_s = resend_window_s
        self.settle_timeout_s = settle_timeout_s
        self.reconcile_interval_s = reconcile_interval_s
        self.trader: TradingRest | None = None
        self.account: AccountSnapshot | None = None  # as preflight found it
        self.executor: LiveExecutor | None = None
        self.private: PrivateStream | None = None
        self.seen = SeenExecutions()
        self._fills: list[Fill] = []
        self._events: asyncio.Queue | None = None
        self._startup_reports: list[ExecutionReport] = []
        self._store: Store | None = None
        self._run_row: _Run | None = None
        self._max_market_qty: dict[str, float] = {}
        self._foreign_seen: list[tuple[str, str]] = []
        self._foreign_subjects: set[str] = set()  # each foreign thing is reported once
        self._flows = 0.0  # the cash flows of every execution the run has booked or will
        self._wallet: WalletWatch | None = None
        self._position_suspects: dict[str, tuple[float, float]] = {}  # drifts seen once
        self.reconcile_failures = 0  # periodic checks skipped: the exchange did not answer
        self._private_stop = asyncio.Event()
        self._private_task: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()

    async def run(self) -> str:
        async with TradingRest(self.rest_url, self.credentials, stop=self.interrupted,
                               rng_seed=self.settings.exchange.seed) as trader:  # fmt: skip
            self.trader = trader
            try:
                # before the run is opened or leased: a key or account the bot must not trade
                # with stops it here, having only read
                self.account = await preflight(trader, self.symbols, trading=True,
                                               target=self.settings.live.target)  # fmt: skip
                return await super().run()
            finally:  # a failed start or a fault: the workers and the private stream end too
                if self.executor is not None:
                    await self.executor.close(0)
                await self._stop_private_stream()

    # -- hooks -----------------------------------------------------------------------------------
    async def _replay_executor(self, store: Store, run: _Run) -> Executor:
        rows = await asyncio.to_thread(store.fills, run.run_id)
        self._fills = [stored_fill(row) for row in rows]
        self._flows = math.fsum(f.cash_flow for f in self._fills)
        self.seen = SeenExecutions(f.exec_id for f in self._fills)
        self._store, self._run_row = store, run
        return MutedExecutor()

    def _replayed_executions(self, engine: Engine) -> list[tuple[int, Callable[[], None]]]:
        def book(fill: Fill) -> None:
            kind = FUNDING if fill.exec_type == "Funding" else FILLED
            engine.on_execution(ExecutionReport(kind, fill.symbol, fill.time, fill=fill))

        return [(fill.time, functools.partial(book, fill)) for fill in self._fills]

    async def _go_live(self, store: Store, run: _Run) -> None:
        engine, trader = self.engine, self.trader
        assert engine is not None and trader is not None
        specs = dict(zip(engine.portfolio.symbols, engine.portfolio.specs, strict=True))
        # the run's books; executions it has not seen yet are added as they are booked
        booked = {s: float(q) for s, q in zip(self.symbols, engine.portfolio.qty, strict=True)}
        orders = await asyncio.to_thread(store.order_ledger, run.run_id)
        self.executor = LiveExecutor(
            run_id=run.run_id, specs=specs,
            max_market_qty={s: self._max_market_qty.get(s, math.inf) for s in self.symbols},
            venue=trader,
            ledger=StoreLedger(store, run.run_id, self.owner, self.settings.paper.lease_ttl_s),
            emit=self._emit, rails=Rails(self.rail_limits), price_of=self._price,
            positions=booked,
            seen_exec_ids=[f.exec_id for f in self._fills],
            known_link_ids=[row["order_link_id"] for row in orders],
            resend_window_s=self.resend_window_s, settle_timeout_s=self.settle_timeout_s,
            on_foreign=self._foreign,
        )  # fmt: skip
        self.executor.start()
        # what happened while down: the orders written ahead but never seen to settle are
        # restored first, so that the executions then fetched (they explain positions) are
        # booked against them, not taken for foreign ones; then those orders are resolved
        unresolved = await asyncio.to_thread(store.unresolved_orders, run.run_id)
        self.executor.restore([restored_leg(row) for row in unresolved])
        await self._catch_up_executions(store, run)
        if unresolved:
            log.warning("resolving %d orders of unknown outcome before trading", len(unresolved))
            await self.executor.resolve_restored()
        await self._book_startup_reports()
        self._start_private_stream()
        await self._check_open_orders()
        await self._record_foreign(store, run)
        mine = {s: float(q) for s, q in zip(self.symbols, engine.portfolio.qty, strict=True)}
        positions = await trader.positions()
        await self._reconcile(store, run, mine, positions, at_start=True)
        await self._book_startup_reports()  # adoptions
        await self._start_wallet_watch(store, run, positions)
        engine.use_executor(self.executor)
        if await asyncio.to_thread(halt_requested, store, run.run_id):
            await self._halt(store, run, "halt requested by hand (bot live halt)")
        log.info("live run %s trading (%s)", run.run_id, "adopting the account's positions"
                 if self.adopt else "positions reconciled", extra=USER_EVENT)  # fmt: skip

    def _side_tasks(self, store: Store, events: asyncio.Queue) -> list[asyncio.Task]:
        self._events = events
        for report in self._startup_reports:  # what came between going live and now
            events.put_nowait((report, 0))
        self._startup_reports = []
        return [asyncio.create_task(self._reconcile_periodically(store), name="reconcile")]

    def _metric_readers(self) -> list[Reader]:
        """The private stream's, the trading client's and the executor's counters too."""
        return [functools.partial(read_live, self)]

    def _start_private_stream(self) -> None:
        """The private stream outlives the public one: at shutdown it still delivers what
        orders in flight did, until the executor has settled them."""
        assert self.trader is not None
        self.private = PrivateStream(
            self.private_ws_url, self.credentials, self._private_record, on_gap=self._gap,
            seen=self.seen, epoch_ms=self.trader.now_ms, seed=self.settings.exchange.seed,
            reconnect_initial_s=self.settings.venue.reconnect_initial_s,
            reconnect_max_s=self.settings.venue.reconnect_max_s,
        )  # fmt: skip
        self._private_task = asyncio.create_task(self.private.run(self._private_stop),
                                                 name="private-stream")  # fmt: skip

    def _step_received(self, received_ns: int) -> None:
        if self.executor is not None:  # a step without orders leaves none for the next
            self.executor.trigger_ns = received_ns

    async def _stop_private_stream(self) -> None:
        self._private_stop.set()
        if self._private_task is not None:
            await asyncio.gather(self._private_task, return_exceptions=True)

    async def _shutdown(self, store: Store, run: _Run) -> None:
        """Let orders in flight settle and book what the exchange reported meanwhile, before
        the paper daemon's shutdown flushes and hands the run back."""
        if self.executor is not None:
            await self.executor.close(2 * self.settle_timeout_s)
        await self._stop_private_stream()
        if self._events is not None:
            while not self._events.empty():
                event, _ = self._events.get_nowait()
                if isinstance(event, ExecutionReport):
                    await asyncio.to_thread(self.engine.on_execution, event)
                elif isinstance(event, RunEvent):
                    await asyncio.to_thread(self.engine.record_event, event)
        await super()._shutdown(store, run)

    # -- the executor's news ---------------------------------------------------------------------
    def _emit(self, report: ExecutionReport) -> None:
        """Reports go through the daemon's queue once it runs; at start-up they wait."""
        if report.fill is not None:
            self._flows += report.fill.cash_flow
        if self._events is None:
            self._startup_reports.append(report)
        else:
            self._events.put_nowait((report, 0))

    async def _book_startup_reports(self) -> None:
        reports, self._startup_reports = self._startup_reports, []
        for report in reports:
            await asyncio.to_thread(self.engine.on_execution, report)

    async def _private_record(self, record: Any) -> None:
        if isinstance(record, OrderUpdate):
            await self.executor.on_order(record)
        elif isinstance(record, Execution):
            self.executor.on_execution(record)

    async def _gap(self) -> None:
        """After every (re)connection of the private stream: what it may have missed."""
        await self._catch_up_executions(self._store, self._run_row)

    async def _catch_up_executions(self, store: Store, run: _Run) -> None:
        last = await asyncio.to_thread(store.last_execution, run.run_id)
        since = last.time if last is not None else run.data_start
        for attempt in range(CATCH_UP_ATTEMPTS):  # the client retried already; so do we
            try:
                missed = await fetch_missed_executions(self.trader, since, self.seen)
                break
            except BybitError as exc:
                if attempt == CATCH_UP_ATTEMPTS - 1:
                    raise
                log.warning("fetching missed executions failed (%s); trying again", exc)
                await asyncio.sleep(0.5 * 2**attempt)
        for execution in missed:
            self.executor.on_execution(execution)
        if missed:
            log.info("booked %d executions the bot had not seen", len(missed), extra=USER_EVENT)

    def _price(self, symbol: str) -> float:
        portfolio = self.engine.portfolio
        return float(portfolio.last_price[portfolio.index[symbol]])

    async def _instruments(self, market: MarketData) -> dict[str, InstrumentSpec]:
        specs = await super()._instruments(market)
        self._max_market_qty = {s: specs[s].max_market_qty for s in self.symbols}
        return specs

    # -- halting -----------------------------------------------------------------------------------
    async def _halt(self, store: Store, run: _Run, reason: str) -> None:
        """Decide no more and close every position with reduce-only market orders sized from
        the exchange's positions (not the run's books: what is really held gets closed)."""
        engine, executor = self.engine, self.executor
        engine.risk.halt(reason)
        log.warning("halting live run %s: %s; closing its positions", run.run_id, reason)
        await executor.drained()
        now = int(time.time() * 1000)
        done = await kill_switch(self.trader, executor.execute, run.run_id, self.symbols, now)
        self._emit_event(RunEvent(now, "halted", {"reason": reason, **done}))

    def _emit_event(self, event: RunEvent) -> None:
        """A run event, recorded by the engine on the consumer's side (never beside a step)."""
        if self._events is None:
            self.engine.record_event(event)  # start-up: no step runs
        else:
            self._events.put_nowait((event, 0))

    # -- reconciliation --------------------------------------------------------------------------
    def _foreign(self, subject: str, what: str) -> None:
        """The account did something this run did not ask for (a manual trade, liquidation,
        ADL). It is booked (the exchange is the truth); the run stops unless ``adopt``."""
        if subject in self._foreign_subjects:
            return  # a resting order is listed again at every reconciliation
        self._foreign_subjects.add(subject)
        self._foreign_seen.append((subject, what))
        if self._events is not None:  # trading: record it and stop (fail closed)
            task = asyncio.get_running_loop().create_task(
                self._record_foreign(self._store, self._run_row)
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _record_foreign(self, store: Store, run: _Run) -> None:
        seen, self._foreign_seen = self._foreign_seen, []
        if not seen:
            return
        action = "adopted" if self.adopt else "stopped"
        now = int(time.time() * 1000)
        for subject, what in seen:
            await asyncio.to_thread(
                store.record_drift, run.run_id, time=now, subject=subject, store=None,
                exchange=what, action=action, lease_owner=self.owner,
                lease_ttl_s=self.settings.paper.lease_ttl_s,
            )  # fmt: skip
        if not self.adopt:
            error = ReconcileError(
                f"the account shows what this run did not place ({seen[0][1]}"
                f"{f' and {len(seen) - 1} more' if len(seen) > 1 else ''}): a manual trade, "
                "a liquidation or ADL; close it or pass --adopt to take it over"
            )
            if self._events is None:
                raise error
            self._fault = error
            self.stop.set()

    async def _reconcile(
        self,
        store: Store,
        run: _Run,
        booked: dict[str, float],
        positions: list[Position],
        *,
        at_start: bool,
    ) -> None:
        """Compare the run's positions (``booked``) with the exchange's, in quantity steps;
        record each drift and what was done about it. A position the run did not open stops
        it unless ``adopt``.

        While trading, a drift counts only once two checks in a row find it: an execution
        can land between the positions' snapshot and the books (a fill the stream has not
        delivered yet), and acting on that passing difference would stop the run for nothing
        or, adopting, book the position twice."""
        portfolio = self.engine.portfolio
        theirs = {p.symbol: p for p in positions if p.symbol in self.symbols}
        now = int(time.time() * 1000)
        found: dict[str, tuple[float, float]] = {}
        for s, symbol in enumerate(self.symbols):
            mine = booked.get(symbol, 0.0)
            exchange = theirs.get(symbol)
            size = exchange.size if exchange is not None else 0.0
            if round((size - mine) / portfolio.specs[s].qty_step) != 0:
                found[symbol] = (mine, size)
        if not at_start:
            before, self._position_suspects = self._position_suspects, found
            found = {k: v for k, v in found.items() if before.get(k) == v}
        drifts = []
        for symbol, (mine, size) in found.items():
            s = portfolio.index[symbol]
            spec, exchange = portfolio.specs[s], theirs.get(symbol)
            action = "adopted" if self.adopt else "stopped"
            drifts.append(f"{symbol}: run {mine:g}, exchange {size:g}")
            await asyncio.to_thread(
                store.record_drift, run.run_id, time=now, subject=f"position:{symbol}",
                store=mine, exchange=size, action=action, lease_owner=self.owner,
                lease_ttl_s=self.settings.paper.lease_ttl_s,
            )  # fmt: skip
            if self.adopt:
                price = exchange.entry_price if exchange is not None and exchange.size else (
                    float(portfolio.last_price[s]))  # fmt: skip
                qty = round(size - mine, spec.decimals)
                fill = Fill(f"adopt-{symbol}-{now}", None, symbol, now, qty, price, 0.0,
                            ADOPT_EXEC_TYPE, -qty * price)  # fmt: skip
                self._emit(ExecutionReport(FILLED, symbol, now, fill=fill))
                self.executor.positions[symbol] = size
        if drifts and not self.adopt:
            where = "at start-up" if at_start else "while trading"
            raise ReconcileError(
                f"the account's positions differ from the run's {where} ({'; '.join(drifts)}): "
                "a manual trade, a liquidation or ADL; close them or pass --adopt to take them "
                "over"
            )

    async def _reconcile_periodically(self, store: Store) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.reconcile_interval_s)
            if self.stop.is_set():
                return
            if not self.engine.risk.halted and await asyncio.to_thread(
                halt_requested, store, self._run_row.run_id
            ):
                await self._halt(store, self._run_row, "halt requested by hand (bot live halt)")
            if self.executor.busy:
                continue  # orders in flight: positions are moving
            try:
                # the exchange's view first, then every execution up to it (what no message
                # said), so the books are compared with a snapshot they have caught up with
                positions = await self.trader.positions()
                wallet = await self._wallet_balance()
                await self._catch_up_executions(store, self._run_row)
                await self._check_open_orders()
            except BybitError as exc:
                # the client retried already; orders keep failing closed on their own, so a
                # check the exchange cannot answer now is skipped, not fatal to a long run
                self.reconcile_failures += 1
                log.warning("reconciliation skipped: the account could not be read (%s); "
                            "next try in %.0f s", exc, self.reconcile_interval_s)  # fmt: skip
                continue
            if self.executor.busy:
                continue
            await self._reconcile(store, self._run_row, dict(self.executor.positions),
                                  positions, at_start=False)  # fmt: skip
            await self._check_wallet(store, self._run_row, wallet, positions)

    async def _check_open_orders(self) -> None:
        """Open orders on the run's symbols that the run did not place (a person's resting
        limit order) are foreign: they would trade the run's symbols behind its back."""
        for order in await self.trader.open_orders():
            if order.symbol in self.symbols and not self.executor.knows(order.link_id):
                self._foreign(f"order:{order.order_id}",
                              f"open {order.order_type} {order.side} order {order.order_id} "
                              f"of {order.qty:g} {order.symbol}")  # fmt: skip

    # -- the wallet ------------------------------------------------------------------------------
    async def _wallet_balance(self) -> float:
        """The settle coin's wallet balance (unrealised PnL left out)."""
        return settle_balance(await self.trader.wallet(), self.trader.settle_coin)

    def _booked(self, positions: list[Position]) -> float:
        return booked_balance(self._flows, positions, self.symbols)

    async def _start_wallet_watch(self, store: Store, run: _Run, positions: list[Position]) -> None:
        """The wallet baseline: the run's stored one (restarts keep it, so money that moved
        while the daemon was down is found), else the wallet and the books as they are now."""
        baseline = latest_baseline(await asyncio.to_thread(store.events, run.run_id))
        wallet = await self._wallet_balance()
        if baseline is None:
            baseline = WalletBaseline(wallet, self._booked(positions))
            await self._store_baseline(store, run, baseline)
        self._wallet = WalletWatch(baseline)
        log.info("wallet: %.4f %s (baseline %.4f)", wallet, self.trader.settle_coin,
                 baseline.wallet, extra=USER_EVENT)  # fmt: skip
        await self._check_wallet(store, run, wallet, positions)

    async def _store_baseline(self, store: Store, run: _Run, baseline: WalletBaseline) -> None:
        event = RunEvent(int(time.time() * 1000), BASELINE_EVENT, baseline.detail(),
                         key=self.trader.settle_coin)  # fmt: skip
        await asyncio.to_thread(store.record_event_now, run.run_id, event,
                                lease_owner=self.owner,
                                lease_ttl_s=self.settings.paper.lease_ttl_s)  # fmt: skip

    async def _check_wallet(
        self, store: Store, run: _Run, wallet: float, positions: list[Position]
    ) -> None:
        """Compare the wallet's change with the books'; a confirmed drift is recorded (money
        moved outside the run: a transfer, another bot, a fee the run never saw) and the
        baseline moves past it. The run goes on: its positions, not its cash, are at stake."""
        portfolio = self.engine.portfolio
        ticks = {s: spec.tick_size for s, spec in zip(portfolio.symbols, portfolio.specs,
                                                      strict=True)}  # fmt: skip
        mine = [p for p in positions if p.symbol in self.symbols]
        drift = self._wallet.check(wallet, self._booked(positions), tolerance(mine, ticks))
        if drift is None:
            return
        coin = self.trader.settle_coin
        log.warning("the wallet holds %+.4f %s more than the run's books imply "
                    "(%.4f against %.4f); recorded",
                    drift.amount, coin, drift.wallet, drift.expected)  # fmt: skip
        await asyncio.to_thread(
            store.record_drift, run.run_id, time=int(time.time() * 1000),
            subject=f"wallet:{coin}", store=drift.expected, exchange=drift.wallet,
            action="recorded", lease_owner=self.owner,
            lease_ttl_s=self.settings.paper.lease_ttl_s,
        )  # fmt: skip
        await self._store_baseline(store, run, drift.rebased)
