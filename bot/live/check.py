"""``bot live --check``: what the bot would do on the account now, sending nothing.

It reads the account through a client without order methods, fetches the recent bars the
strategies need from the venue's public REST, runs the engine over them with an executor that
only records, and turns the latest decision's target weights into the orders the bot would
send against the account's *real* positions (the exchange's, not a simulated book).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bot.assembly import build_engine, make_strategies, venue_market_data, warmup_span_ms
from bot.config import Settings
from bot.core.clock import SimulatedClock
from bot.core.events import Decision, ExecutionReport, Fill, Order
from bot.core.instruments import InstrumentSpec
from bot.core.journal import MemoryJournal
from bot.core.portfolio import Portfolio, plan_rebalance
from bot.core.timeutil import DAY_MS, interval_ms, iso
from bot.feeds.loaders import align
from bot.live.daemon import stored_fill
from bot.live.preflight import AccountSnapshot
from bot.live.wallet_check import (
    SETTLE_COIN,
    booked_balance,
    latest_baseline,
    settle_balance,
    tolerance,
)
from bot.store import Store
from bot.venues.bybit.private_rest import PrivateRest

#: How far back the check looks for the strategies' latest decision (beyond their warm-up).
DECISION_LOOKBACK_MS = 8 * DAY_MS


class RecordingExecutor:
    """Takes orders and sends them nowhere (the check only wants the decisions)."""

    def __init__(self) -> None:
        self.submitted = 0
        self.submitted_ns = 0

    @property
    def pending(self) -> list[Order]:
        return []

    def submit(self, orders: list[Order]) -> list[ExecutionReport]:
        self.submitted += len(orders)
        return []

    def on_open(self, start: int, opens: Any, present: Any) -> list[ExecutionReport]:
        return []

    def on_symbol_open(self, symbol: str, start: int, open_price: float) -> list[ExecutionReport]:
        return []


async def latest_decision(settings: Settings) -> tuple[Decision | None, np.ndarray]:
    """The strategies' decision at the newest closed bar, and the closes it saw."""
    strategies = make_strategies(settings)
    step = interval_ms(settings.engine.interval)
    symbols = tuple(settings.engine.symbols)
    async with venue_market_data(settings, asyncio.Event()) as market:
        now = await market.server_time()
        end = (now // step) * step
        # a weekly rebalance decides within eight days: its latest decision is the target now
        start = end - warmup_span_ms(strategies, settings.engine.interval) - DECISION_LOOKBACK_MS
        frames = {s: await market.rest.klines(s, settings.engine.interval, start, end)
                  for s in symbols}  # fmt: skip
    panel = align(frames, symbols, settings.engine.interval)
    journal = MemoryJournal()
    engine = build_engine(settings, "check", journal, SimulatedClock(), strategies,
                          RecordingExecutor())  # fmt: skip
    engine.process(panel)
    closes = panel.values[-1, :, 3] if len(panel) else np.full(len(symbols), np.nan)
    return (journal.decisions[-1] if journal.decisions else None), closes


async def check_account(
    settings: Settings, reader: PrivateRest, snapshot: AccountSnapshot
) -> list[str]:
    """Lines for the user: the account as the exchange sees it, and the orders the bot
    would place now."""
    lines = [
        f"account: equity {snapshot.wallet.equity:,.2f} USD, available "
        f"{snapshot.wallet.available:,.2f} (key read-only: {snapshot.key.read_only})",
    ]
    held = {p.symbol: p.size for p in snapshot.positions}
    lines += [f"position {s}: {q:g}" for s, q in sorted(held.items()) if q] or ["positions: flat"]
    lines += [f"open order {o.symbol} {o.side} {o.qty:g} ({o.link_id or o.order_id})"
              for o in snapshot.open_orders]  # fmt: skip
    decision, closes = await latest_decision(settings)
    if decision is None:
        return [*lines, "no decision yet: the strategies need more history"]
    engine_symbols = tuple(settings.engine.symbols)
    specs = {s: InstrumentSpec(s, **settings.instruments[s].model_dump()) for s in engine_symbols}
    # sized against the capital the run trades (portfolio.initial_cash), from the real positions
    portfolio = Portfolio(engine_symbols, specs, settings.portfolio.initial_cash)
    portfolio.qty[:] = [held.get(s, 0.0) for s in engine_symbols]
    target = [decision.target.get(s, 0.0) for s in engine_symbols]
    orders = plan_rebalance(portfolio, target, closes, np.zeros(len(engine_symbols), bool),
                            settings.portfolio.rebalance_threshold, "check",
                            decision.time)  # fmt: skip
    lines.append(f"decision at {iso(decision.time)}: target {decision.target}")
    lines += [f"would place: {o.side} {abs(o.qty):g} {o.symbol}" for o in orders] or [
        "would place: nothing (positions already at target)"
    ]
    return lines


def reconcile_lines(
    store: Store, run_id: str, snapshot: AccountSnapshot, ticks: Mapping[str, float]
) -> list[str]:
    """The run's books (its stored executions) against the account's positions and wallet:
    what ``bot live`` would find at start-up, and whether it would stop (a position the run
    did not open stops it unless ``--adopt``; a wallet drift is recorded, not fatal).
    ``ticks``: the symbols' price ticks (the rounding the wallet comparison allows)."""
    run = store.get_run(run_id)
    if run is None or run["kind"] != "live":
        return [f"run {run_id}: no live run by that id in the store"]
    booked: dict[str, float] = {}
    fills = [stored_fill(row) for row in store.fills(run_id)]
    for fill in fills:
        booked[fill.symbol] = booked.get(fill.symbol, 0.0) + fill.qty
    held = {p.symbol: p.size for p in snapshot.positions}
    lines = []
    for symbol in sorted(set(booked) | set(held)):
        mine, theirs = round(booked.get(symbol, 0.0), 12), held.get(symbol, 0.0)
        if abs(mine - theirs) > 1e-9:
            lines.append(f"drift {symbol}: run {run_id} booked {mine:g}, the exchange holds "
                         f"{theirs:g} (bot live stops on it unless --adopt)")  # fmt: skip
    unresolved = store.unresolved_orders(run_id)
    lines += [f"order {o['order_link_id']} on {o['symbol']}: outcome unknown, looked up before "
              "trading" for o in unresolved]  # fmt: skip
    lines = lines or [f"run {run_id}: its books equal the exchange's positions"]
    return [*lines, wallet_line(store, run_id, snapshot, fills, ticks)]


def wallet_line(
    store: Store,
    run_id: str,
    snapshot: AccountSnapshot,
    fills: list[Fill],
    ticks: Mapping[str, float],
) -> str:
    """The wallet's change since the run's baseline against its books' (see
    :mod:`bot.live.wallet_check`), as one line."""
    baseline = latest_baseline(store.events(run_id))
    if baseline is None:
        return "wallet: no baseline yet (the run has not traded live)"
    wallet = settle_balance(snapshot.wallet)
    mine = [p for p in snapshot.positions if p.symbol in ticks]
    expected = baseline.expected(booked_balance(math.fsum(f.cash_flow for f in fills), mine, ticks))
    if abs(wallet - expected) <= tolerance(mine, ticks):
        return f"wallet: {wallet:,.4f} {SETTLE_COIN}, moved as the run's books say"
    return (f"wallet: {wallet:,.4f} {SETTLE_COIN}, the run's books imply {expected:,.4f} "
            f"({wallet - expected:+,.4f}: money moved outside the run; bot live records it "
            "and trades on)")  # fmt: skip
