"""The live daemon against the local exchange, public and private: it trades the account, its
books equal the exchange's, every execution is stored once, its decisions equal a backtest of
the bars it stored, and a restart rebuilds the portfolio from the stored executions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from decimal import Decimal

import pytest

from backtest.parity import backtest_of_run, compare_runs
from bot.config import parse_settings
from bot.core.timeutil import HOUR_MS
from bot.exchange.server import ExchangeServer
from bot.live.daemon import LiveDaemon, ReconcileError
from bot.live.halt import request_halt
from bot.live.rails import RailLimits
from bot.store import Store
from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.rest_protocol import BybitHTTPError

SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
START = 1_706_745_600_000 + 30 * 24 * HOUR_MS
KEY, SECRET = "daemonTESTkey01", "daemonTESTsecret01"


MOMENTUM = {"name": "momentum", "params": {"lookback": 6, "top": 1, "rebalance": "bar"}}


def settings(
    tmp_path,
    port: int = 0,
    until_hours: int = 24,
    strategy: dict = MOMENTUM,
    bars: int = 24 * 90,
    seconds_per_bar: float = 0.2,
    **private_faults,
):
    return parse_settings(
        {
            "engine": {"symbols": SYMBOLS, "interval": "1h", "grace_ms": 5000},
            "data": {"source": "synthetic", "synthetic_bars": bars, "synthetic_seed": 3,
                     "funding": False},
            "strategies": [strategy],
            "portfolio": {"initial_cash": 10_000.0},
            "instruments": {s: {"qty_step": 0.01, "tick_size": 0.01} for s in SYMBOLS},
            "store": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
            "venue": {"target": "local", "reconnect_initial_s": 0.05, "reconnect_max_s": 0.2,
                      "request_timeout_s": 5.0, "max_retries": 2},
            "paper": {"heartbeat_s": 5.0, "until": str(START + until_hours * HOUR_MS)},
            "exchange": {
                "port": port, "speed": 3600 / seconds_per_bar, "source": "synthetic", "seed": 4,
                "start": str(START),
                "accounts": [{"name": "bot", "api_key": KEY, "api_secret": SECRET,
                              "balance": 100_000.0}],
                "private_faults": private_faults,
            },
        },
        "test",
    )  # fmt: skip


def daemon_for(config, server: ExchangeServer, **kwargs) -> LiveDaemon:
    exchange = config.exchange.model_copy(update={"port": server.port})
    config = config.model_copy(update={"exchange": exchange})
    return LiveDaemon(
        config, credentials=Credentials(KEY, SECRET), rest_url=server.rest_url,
        private_ws_url=server.rest_url.replace("http://", "ws://") + "/v5/private",
        rails=RailLimits(), settle_timeout_s=1.0, **kwargs,
    )  # fmt: skip


def account(server: ExchangeServer):
    return server.state.private.members["bot"].account


def assert_books_equal(server: ExchangeServer, daemon: LiveDaemon, store: Store, run_id: str):
    acct = account(server)
    exchange = {p.symbol: float(p.size) for p in acct.positions.values() if p.size}
    portfolio = daemon.engine.portfolio
    mine = {s: float(q) for s, q in zip(portfolio.symbols, portfolio.qty, strict=True) if q}
    assert mine == pytest.approx(exchange, abs=1e-9)
    stored = [f["exec_id"] for f in store.fills(run_id)]
    assert Counter(stored) == Counter(e.exec_id for e in acct.executions)  # each once
    links = [o.link_id for o in acct.orders.values() if o.link_id]  # manual: none
    assert len(links) == len(set(links))
    ledger = {row["order_link_id"]: row["order_id"] for row in store.order_ledger(run_id)}
    assert set(links) <= set(ledger)
    # every order the exchange took is filed under the exchange's own id
    assert {o.link_id: o.order_id for o in acct.orders.values() if o.link_id} == {
        link: ledger[link] for link in links
    }


@pytest.mark.slow
async def test_a_live_run_trades_the_account_and_equals_its_backtest(tmp_path):
    config = settings(tmp_path, lost_response_probability=0.1, ws_drop_probability=0.1,
                      error_after_probability=0.1, ioc_partial_probability=0.1,
                      async_reject_probability=0.1,
                      insufficient_balance_probability=0.1)  # fmt: skip
    async with ExchangeServer(config) as server:
        daemon = daemon_for(config, server, new_run=True)
        run_id = await asyncio.wait_for(daemon.run(), 300)
        with Store(config.store.url) as store:
            assert store.get_run(run_id)["kind"] == "live"
            assert len(store.decisions(run_id)) >= 15
            assert len(account(server).orders) >= 10  # it traded
            assert_books_equal(server, daemon, store, run_id)
            statuses = Counter(o["status"] for o in store.order_ledger(run_id))
            assert statuses["Rejected"] >= 1 and daemon.engine.stats.rejected >= 1
            per_leg = Counter(
                (o["decision_time"], o["symbol"], o["leg"]) for o in store.order_ledger(run_id)
                if o["attempt"] == 0
            )  # fmt: skip
            assert max(per_leg.values()) == 1
            assert wallet_drifts(store, run_id) == []  # every fault, yet the wallet agrees
            replay = await asyncio.to_thread(backtest_of_run, config, store, run_id)
            assert compare_runs(store, run_id, replay, tables=("decisions",)) == []


@pytest.mark.slow
async def test_a_restart_rebuilds_the_books_from_stored_executions(tmp_path):
    config = settings(tmp_path, until_hours=12)
    async with ExchangeServer(config) as server:
        first = daemon_for(config, server, new_run=True)
        run_id = await asyncio.wait_for(first.run(), 300)
        held = first.engine.portfolio.qty.copy()
        assert held.any(), "the first run left positions to rebuild"

        later = config.model_copy(update={"paper": config.paper.model_copy(
            update={"until": str(START + 24 * HOUR_MS)})})  # fmt: skip
        second = daemon_for(later, server)  # resumes the run
        assert await asyncio.wait_for(second.run(), 300) == run_id
        with Store(config.store.url) as store:
            assert_books_equal(server, second, store, run_id)
            replay = await asyncio.to_thread(backtest_of_run, later, store, run_id)
            assert compare_runs(store, run_id, replay, tables=("decisions",)) == []


@pytest.mark.slow
async def test_a_trade_the_run_did_not_place_stops_it(tmp_path):
    config = settings(tmp_path, until_hours=6)
    async with ExchangeServer(config) as server:
        server.state.private.manual_order("bot", "BBBUSDT", "Buy", None)
        with pytest.raises(ReconcileError, match=r"BBBUSDT.*--adopt"):
            await asyncio.wait_for(daemon_for(config, server, new_run=True).run(), 300)
        with Store(config.store.url) as store:
            (run,) = store.list_runs()
            assert [d["action"] for d in store.drifts(run["id"])] == ["stopped"]
            assert store.lease_holder(run["id"]) is None  # handed back on the way out


@pytest.mark.slow
async def test_adopt_takes_over_what_the_account_holds_and_records_it(tmp_path):
    config = settings(tmp_path, until_hours=6)
    async with ExchangeServer(config) as server:
        server.state.private.manual_order("bot", "BBBUSDT", "Buy", None)
        adopting = daemon_for(config, server, new_run=True, adopt=True)
        run_id = await asyncio.wait_for(adopting.run(), 300)
        with Store(config.store.url) as store:
            assert [d["action"] for d in store.drifts(run_id)] == ["adopted"]
            assert_books_equal(server, adopting, store, run_id)


async def wait_until(condition, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def in_background(daemon: LiveDaemon):
    """``daemon.run()`` as a task for the block; cancelled on the way out if still running
    (a failed assertion must not leave a daemon trading into the next test)."""
    task = asyncio.create_task(daemon.run())
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def trading(store: Store, fills: int = 1) -> str:
    """The id of the store's one run, once it has stored ``fills`` executions."""

    def traded() -> bool:
        runs = store.list_runs()
        return bool(runs) and len(store.fills(runs[0]["id"])) >= fills

    await wait_until(traded, "the run trades")
    return store.list_runs()[0]["id"]


@pytest.mark.slow
async def test_a_halt_by_hand_flattens_from_the_exchange_s_positions_and_survives_restart(
    tmp_path,
):
    config = settings(tmp_path, until_hours=400)
    async with ExchangeServer(config) as server:
        daemon = daemon_for(config, server, new_run=True, reconcile_interval_s=0.2)
        with Store(config.store.url) as store:
            async with in_background(daemon) as task:
                run_id = await trading(store)
                now = int(time.time() * 1000)
                assert "flattens and halts" in request_halt(store, run_id, now)
                await wait_until(
                    lambda: any(e["kind"] == "halted" for e in store.events(run_id)), "it halts"
                )
                assert not any(p.size for p in account(server).positions.values())
                orders = len(account(server).orders)
                await asyncio.sleep(1.0)  # bars keep closing: a halted run decides no more
                assert len(account(server).orders) == orders
                daemon.stop.set()
                await asyncio.wait_for(task, 120)

            again = daemon_for(config, server, reconcile_interval_s=0.2)
            async with in_background(again) as task:
                await wait_until(lambda: again.engine is not None and again.engine.risk.halted,
                                 "the restarted daemon halts again")  # fmt: skip
                await asyncio.sleep(1.0)
                assert len(account(server).orders) == orders
                again.stop.set()
                assert await asyncio.wait_for(task, 120) == run_id


def wallet_drifts(store: Store, run_id: str) -> list[dict]:
    return [d for d in store.drifts(run_id) if d["subject"] == "wallet:USDT"]


@pytest.mark.slow
async def test_money_moved_outside_the_run_is_a_wallet_drift_recorded_once_across_restarts(
    tmp_path,
):
    """A transfer into the account while the run trades, and another while it is down: each is
    found by the wallet reconciliation (against the baseline the store keeps), recorded once
    with both views, and the run trades on — its positions, not its cash, are at stake."""
    config = settings(tmp_path, until_hours=400)
    async with ExchangeServer(config) as server:
        daemon = daemon_for(config, server, new_run=True, reconcile_interval_s=0.2)
        with Store(config.store.url) as store:
            async with in_background(daemon) as task:
                run_id = await trading(store, fills=3)
                await asyncio.sleep(1.0)  # several reconciliations of a run that trades
                assert wallet_drifts(store, run_id) == []
                account(server).wallet += Decimal("25")
                await wait_until(lambda: wallet_drifts(store, run_id), "the transfer is found")
                await asyncio.sleep(1.0)  # reconciliations go on: the drift is recorded once
                (drift,) = wallet_drifts(store, run_id)
                assert drift["action"] == "recorded"
                assert drift["exchange"] - drift["store"] == pytest.approx(25.0, abs=0.02)
                assert not task.done()  # the run trades on
                daemon.stop.set()
                assert await asyncio.wait_for(task, 120) == run_id
                assert_books_equal(server, daemon, store, run_id)

            account(server).wallet -= Decimal("10")  # while no daemon runs
            again = daemon_for(config, server, reconcile_interval_s=0.2)
            async with in_background(again) as task:
                await wait_until(lambda: len(wallet_drifts(store, run_id)) == 2,
                                 "the restarted daemon finds the withdrawal")  # fmt: skip
                later = wallet_drifts(store, run_id)[1]
                assert later["exchange"] - later["store"] == pytest.approx(-10.0, abs=0.02)
                again.stop.set()
                assert await asyncio.wait_for(task, 120) == run_id
            assert len(wallet_drifts(store, run_id)) == 2


@pytest.mark.slow
async def test_a_resting_order_the_run_did_not_place_stops_it_at_start_up(tmp_path):
    config = settings(tmp_path, until_hours=6)
    async with ExchangeServer(config) as server:
        order = server.state.private.manual_order("bot", "AAAUSDT", "Buy", resting=True)
        with pytest.raises(ReconcileError, match=r"open Limit Buy order .* AAAUSDT.*--adopt"):
            await asyncio.wait_for(daemon_for(config, server, new_run=True).run(), 300)
        with Store(config.store.url) as store:
            (run,) = store.list_runs()
            ((subject, action),) = [(d["subject"], d["action"]) for d in store.drifts(run["id"])]
            assert (subject, action) == (f"order:{order.order_id}", "stopped")


@pytest.mark.slow
async def test_a_resting_order_placed_while_trading_stops_the_run(tmp_path):
    config = settings(tmp_path, until_hours=400)
    async with ExchangeServer(config) as server:
        daemon = daemon_for(config, server, new_run=True, reconcile_interval_s=0.2)
        with Store(config.store.url) as store:
            async with in_background(daemon) as task:
                run_id = await trading(store)
                order = server.state.private.manual_order("bot", "CCCUSDT", "Sell", resting=True)
                # the order topic tells first; the periodic listing of open orders would too
                # (the subject is the same, so it is recorded once)
                with pytest.raises(ReconcileError, match=rf"{order.order_id}.*CCCUSDT.*--adopt"):
                    await asyncio.wait_for(task, 120)
            subjects = [d["subject"] for d in store.drifts(run_id)]
            assert subjects == [f"order:{order.order_id}"]
            assert store.lease_holder(run_id) is None  # handed back on the way out


@pytest.mark.slow
async def test_a_reconciliation_the_exchange_cannot_answer_is_skipped_and_the_run_goes_on(
    tmp_path,
):
    config = settings(tmp_path, until_hours=400)
    async with ExchangeServer(config) as server:
        daemon = daemon_for(config, server, new_run=True, reconcile_interval_s=0.2)
        with Store(config.store.url) as store:
            async with in_background(daemon) as task:
                run_id = await trading(store)
                positions = daemon.trader.positions

                async def unavailable(symbol=None):
                    raise BybitHTTPError(503, "Service Unavailable", "/v5/position/list")

                daemon.trader.positions = unavailable  # the exchange's REST is down a while
                await wait_until(lambda: daemon.reconcile_failures >= 3, "checks are skipped")
                assert not task.done()  # not fatal
                daemon.trader.positions = positions
                fills = len(store.fills(run_id))
                await wait_until(lambda: len(store.fills(run_id)) > fills, "it trades on")
                daemon.stop.set()
                assert await asyncio.wait_for(task, 120) == run_id
                assert_books_equal(server, daemon, store, run_id)
