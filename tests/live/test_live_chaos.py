"""The chaos run: the live daemon trades every decision of ≥ 600 over three symbols against
the local exchange with every private fault on. After every step the bot's positions equal the
exchange's; at the end every execution is stored once, no exchange order is missing from the
store, at most one order exists per (decision, symbol, leg), equity at the same marks equals
the booked cash flows (and the wallet reconciliation never found a drift), and the decisions
equal a backtest of the run's stored bars."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import pytest

from backtest.parity import backtest_of_run, compare_runs
from bot.exchange.server import ExchangeServer
from bot.live.daemon import LiveDaemon
from bot.store import Store
from tests.live.test_executor_exchange import FAULTS, OFTEN
from tests.live.test_live_daemon import account, assert_books_equal, daemon_for, settings

DECISIONS = 600
#: order-level faults fire per order request; equal weight sends fewer orders per decision
#: than the executor test, so they are made likelier here to fire at least OFTEN times each
CHAOS_FAULTS = FAULTS | {
    k: 0.12 for k in ("error_before_probability", "async_reject_probability",
                      "delayed_fill_probability", "insufficient_balance_probability",
                      "below_min_notional_probability", "qty_to_zero_probability")
}  # fmt: skip


class CheckedDaemon(LiveDaemon):
    """Compares its positions with the exchange's after every step (the market paused)."""

    server: ExchangeServer
    checked = 0
    mismatches: list[str]

    async def _process(self, rows, store, market, received_ns=0):
        await super()._process(rows, store, market, received_ns)
        if self.executor is None or self.engine is None:
            return  # start-up: no live executor yet
        clock = self.server.state.clock
        clock.pause()  # no new bar, so no manual order, while comparing
        try:
            await asyncio.wait_for(self.executor.drained(), 120)
            await self._catch_up_executions(store, self._run_row)  # what a lost message hid
            mine = {s: Decimal(str(q)) for s, q in self.executor.positions.items() if q}
            theirs = {p.symbol: p.size for p in account(self.server).positions.values() if p.size}
            if mine != theirs:
                self.mismatches.append(f"step {self.engine.clock.now()}: {mine} != {theirs}")
            self.checked += 1
        finally:
            clock.resume()


@pytest.mark.slow
async def test_the_chaos_run_keeps_the_books_equal_to_the_exchange_s(tmp_path):
    equal_weight = {"name": "equal_weight", "params": {"rebalance": "bar"}}
    config = settings(tmp_path, until_hours=DECISIONS + 12, strategy=equal_weight,
                      bars=24 * 120, seconds_per_bar=0.25, **CHAOS_FAULTS)  # fmt: skip
    async with ExchangeServer(config) as server:
        # manual orders are among the faults: the run takes them over (and records each)
        daemon = daemon_for(config, server, new_run=True, adopt=True, reconcile_interval_s=5.0)
        daemon.__class__ = CheckedDaemon
        daemon.server, daemon.mismatches = server, []
        run_id = await asyncio.wait_for(daemon.run(), 1500)
        fired = server.state.status()["private"]["faults"]
    assert daemon.checked >= DECISIONS
    assert daemon.mismatches == []
    rare = {"auth_failure", "manual_order", "clock_skew"}
    assert not [k for k in fired if k not in rare and fired[k] < OFTEN], fired
    with Store(config.store.url) as store:
        assert len(store.decisions(run_id)) >= DECISIONS
        assert_books_equal(server, daemon, store, run_id)
        # the wallet moved exactly as the booked executions say (reconciled every 5 s)
        assert [d for d in store.drifts(run_id) if d["subject"].startswith("wallet")] == []
        assert any(e["kind"] == "wallet_baseline" for e in store.events(run_id))
        per_leg = Counter((o["decision_time"], o["symbol"], o["leg"])
                          for o in store.order_ledger(run_id))  # fmt: skip
        assert max(per_leg.values()) == 1
        acct = account(server)
        marks = server.state.private.marks(server.state.clock.now())
        fills = store.fills(run_id)
        flows = sum(Decimal(str(f["cash_flow"])) for f in fills)
        portfolio = daemon.engine.portfolio
        held = sum(Decimal(str(float(q))) * marks[s]
                   for s, q in zip(portfolio.symbols, portfolio.qty, strict=True))  # fmt: skip
        assert abs(Decimal(100_000) + flows + held - acct.equity(marks)) < Decimal("1e-6")
        replay = await asyncio.to_thread(backtest_of_run, config, store, run_id)
        assert compare_runs(store, run_id, replay, tables=("decisions",)) == []
