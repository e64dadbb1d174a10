"""Conformance of the private side: Bybit's official client, pybit 5.17, trades on it.

pybit signs GET queries with sorted, unencoded parameters and POST bodies with
``json.dumps``'s default separators, sends protocol pings, authenticates its private
websocket with an ``expires`` only seconds ahead, and treats any auth or subscription surprise
as fatal: if it places, queries and cancels orders and hears all four private topics, the
wire format is right. The server runs on the real wall clock here (pybit reads ``time``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pybit.unified_trading as unified
import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP, WebSocket

from bot.exchange import ExchangeServer
from tests.exchange.harness import make_settings, server_thread
from tests.exchange.signed import ACCOUNTS, KEY, SECRET, START


@contextmanager
def exchange(**settings: Any) -> Iterator[ExchangeServer]:
    """An exchange in its own thread on the wall clock, market barely moving (1x)."""
    config = make_settings(speed=1.0, start=str(START), accounts=ACCOUNTS, **settings)
    with server_thread(config) as server:
        yield server


def session(server: ExchangeServer, key: str = KEY, secret: str = SECRET, **kwargs: Any) -> HTTP:
    http = HTTP(testnet=False, api_key=key, api_secret=secret, **kwargs)
    http.endpoint = server.rest_url
    return http


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_pybit_places_queries_and_cancels_orders_and_reads_the_books():
    faults = {"delayed_fill_probability": 0.0}
    with exchange(private_faults=faults) as server:
        http = session(server)
        placed = http.place_order(
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="2",
            orderLinkId="pybit-1",
        )
        assert placed["retCode"] == 0
        order_id = placed["result"]["orderId"]
        found = http.get_open_orders(category="linear", symbol="BTCUSDT", orderLinkId="pybit-1")
        [row] = found["result"]["list"]
        assert row["orderId"] == order_id and row["orderStatus"] == "Filled"
        market = server.state.private.marks(server.state.clock.now())["ETHUSDT"]
        limit = http.place_order(
            category="linear",
            symbol="ETHUSDT",
            side="Sell",
            orderType="Limit",
            qty="1",
            price=str((market * Decimal("0.95")).quantize(Decimal("0.01"))),
            timeInForce="IOC",
            reduceOnly=False,
        )
        assert limit["retCode"] == 0  # sells at the market price, above its limit
        with pytest.raises(InvalidRequestError) as duplicate:
            http.place_order(
                category="linear",
                symbol="BTCUSDT",
                side="Buy",
                orderType="Market",
                qty="2",
                orderLinkId="pybit-1",
            )
        assert duplicate.value.status_code == 110072
        with pytest.raises(InvalidRequestError) as missing:
            http.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="pybit-1")
        assert missing.value.status_code == 110001

        positions = http.get_positions(category="linear", settleCoin="USDT")["result"]["list"]
        assert {(p["symbol"], p["side"], p["size"]) for p in positions} == {
            ("BTCUSDT", "Buy", "2.000"),
            ("ETHUSDT", "Sell", "1.00"),
        }
        executions = http.get_executions(category="linear")["result"]["list"]
        assert len(executions) == 2 and {e["execType"] for e in executions} == {"Trade"}
        wallet = http.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
        fees = sum(Decimal(e["execFee"]) for e in executions)
        assert Decimal(wallet["totalWalletBalance"]) == Decimal(10000) - fees
        history = http.get_order_history(category="linear")["result"]["list"]
        assert [o["orderId"] for o in history][-1] == order_id
        info = http.get_api_key_information()["result"]
        assert info["readOnly"] == 0 and info["uta"] == 1


def test_pybit_cancels_an_order_still_open():
    faults = {"delayed_fill_probability": 1.0, "fill_delay_ms": 600_000}
    with exchange(private_faults=faults) as server:
        http = session(server)
        placed = http.place_order(
            category="linear", symbol="BTCUSDT", side="Sell", orderType="Market", qty="1"
        )
        order_id = placed["result"]["orderId"]
        open_orders = http.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]
        assert [o["orderStatus"] for o in open_orders] == ["New"]
        cancelled = http.cancel_order(category="linear", symbol="BTCUSDT", orderId=order_id)
        assert cancelled["result"]["orderId"] == order_id
        assert http.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"] == []


def test_pybit_sleeps_through_10006_until_the_reset():
    faults = {
        "rate_limit_burst_probability": 0.3,
        "rate_limit_burst_requests": 2,
        "rate_limit_reset_ms": 200,
    }
    with exchange(private_faults=faults) as server:
        http = session(server, max_retries=20)
        began = time.monotonic()
        for n in range(6):
            reply = http.place_order(
                category="linear", symbol="ETHUSDT", side="Buy", orderType="Market", qty="0.5"
            )
            assert reply["retCode"] == 0, n
        elapsed = time.monotonic() - began
        limited = server.state.private.faults.counts["rate_limit_burst"]
        assert limited >= 2  # where the bursts strike is fixed by the seed
        assert elapsed >= 0.8 * limited * 0.200  # pybit slept until each reset
        assert server.state.private.status()["accounts"]["main"]["orders_accepted"] == 6


def test_pybit_widens_its_recv_window_on_10002_and_retries():
    faults = {"clock_skew_probability": 0.5, "clock_skew_ms": 6_000}  # beyond 5000 ms
    with exchange(private_faults=faults) as server:
        # pybit waits 3 s before a retry otherwise
        http = session(server, retry_delay=0.05, max_retries=10)
        for _ in range(4):
            reply = http.get_wallet_balance(accountType="UNIFIED")
            assert reply["retCode"] == 0
        assert server.state.private.faults.counts["clock_skew"] >= 1


def test_pybit_private_websocket_authenticates_and_hears_all_four_topics(monkeypatch):
    with exchange() as server:
        monkeypatch.setattr(unified, "PRIVATE_WSS", server.private_ws_url)
        heard: dict[str, list[dict]] = {t: [] for t in ("order", "execution", "position", "wallet")}
        ws = WebSocket(
            testnet=False,
            channel_type="private",
            api_key=KEY,
            api_secret=SECRET,
            private_auth_expire=30,  # the default 1 s is too short for a busy machine
        )
        try:
            ws.order_stream(callback=heard["order"].append)
            ws.execution_stream(callback=heard["execution"].append)
            ws.position_stream(callback=heard["position"].append)
            ws.wallet_stream(callback=heard["wallet"].append)
            wait_for(lambda: server.state.private.status()["ws_authenticated"] == 1)
            wait_for(lambda: len(next(iter(server.state.private.subscribers)).topics) == 4)
            http = session(server)
            http.place_order(
                category="linear",
                symbol="BTCUSDT",
                side="Buy",
                orderType="Market",
                qty="1",
                orderLinkId="heard-1",
            )
            wait_for(lambda: all(heard.values()) and len(heard["order"]) >= 2)
            assert ws.auth and ws.is_connected() and not ws.exited
        finally:
            ws.exit()
    statuses = [m["data"][0]["orderStatus"] for m in heard["order"]]
    assert statuses == ["New", "Filled"]
    assert heard["execution"][0]["data"][0]["orderLinkId"] == "heard-1"
    assert heard["position"][0]["data"][0]["size"] == "1.000"
    assert heard["wallet"][0]["data"][0]["coin"][0]["coin"] == "USDT"
    assert all(m["topic"] == t for t, ms in heard.items() for m in ms)


def test_pybit_dies_on_an_auth_failure(monkeypatch):
    """Documents pybit: a failed private auth raises in its thread and ends the session."""
    with exchange(private_faults={"auth_failure_probability": 1.0}) as server:
        monkeypatch.setattr(unified, "PRIVATE_WSS", server.private_ws_url)
        ws = WebSocket(
            testnet=False,
            channel_type="private",
            api_key=KEY,
            api_secret=SECRET,
            private_auth_expire=30,
        )
        try:
            wait_for(lambda: server.state.private.faults.counts["auth_failure"] == 1)
            time.sleep(0.3)
            assert not ws.auth
        finally:
            ws.exit()
        assert server.state.private.status()["accounts"]["main"]["ws_auth_failures"] == 1
