"""Preflight, the kill switch and the live targets, on fakes of the account (the local
exchange covers the same refusals end to end in test_live_cli.py): what demo trading does not
answer, a refused key, the mainnet opt-in, market data following the traded target, and a
kill switch that cancels every resting order before it flattens."""

from __future__ import annotations

import dataclasses

import pytest

from bot.config import MAINNET_TOKEN, ConfigError, parse_settings
from bot.core.events import Order
from bot.live.halt import kill_switch
from bot.live.preflight import PreflightError, preflight
from bot.live.targets import (
    check_mainnet_allowed,
    live_endpoints,
    market_data_for_target,
    rail_limits,
)
from bot.venues.bybit.private_records import KeyInfo, OrderAck, OrderUpdate, Position, Wallet
from bot.venues.bybit.rest_protocol import BybitAPIError

WALLET = Wallet("UNIFIED", 1000.0, 1000.0, 1000.0, 1000.0, ())
KEY = KeyInfo(read_only=False, can_withdraw=False, uta=True, permissions=())


def position(symbol: str, size: float, idx: int = 0) -> Position:
    return Position(symbol, size, 100.0, 100.0, 0.0, 0.0, idx, 1, 0, "linear")


def order(symbol: str, order_id: str, link_id: str = "") -> OrderUpdate:
    return OrderUpdate(order_id, link_id, symbol, "Buy", "Limit", 1.0, 90.0, 0.0, 0.0, 0.0, 0.0,
                       1.0, "New", "", False, "GTC", 0, "linear", 0, 0)  # fmt: skip


class FakeAccount:
    def __init__(self, key=KEY, key_error=None, wallet_error=None, positions=(), orders=()):
        self.key, self.key_error, self.wallet_error = key, key_error, wallet_error
        self._positions, self._orders = list(positions), list(orders)
        self.cancelled: list[str] = []

    async def key_info(self):
        if self.key_error:
            raise self.key_error
        return self.key

    async def wallet(self, account_type="UNIFIED"):
        if self.wallet_error:
            raise self.wallet_error
        return WALLET

    async def positions(self, symbol=None):
        return [p for p in self._positions if symbol in (None, p.symbol)]

    async def open_orders(self, symbol=None):
        return [o for o in self._orders if symbol in (None, o.symbol) and o.order_id not in
                self.cancelled]  # fmt: skip

    async def cancel_order(self, symbol, link_id=None, *, order_id=None):
        self.cancelled.append(order_id)
        return OrderAck(order_id, link_id or "")


async def test_a_healthy_account_passes_and_is_described():
    account = FakeAccount(positions=[position("BTCUSDT", 0.5)], orders=[order("BTCUSDT", "o1")])
    snapshot = await preflight(account, ["BTCUSDT"], trading=True, target="testnet")
    assert snapshot.key == KEY and snapshot.wallet == WALLET
    assert [p.size for p in snapshot.positions] == [0.5]
    assert [o.order_id for o in snapshot.open_orders] == ["o1"]


async def test_demo_without_the_key_query_goes_on_other_targets_do_not():
    refused = BybitAPIError(10001, "not supported in demo trading", "/v5/user/query-api")
    snapshot = await preflight(FakeAccount(key_error=refused), ["BTCUSDT"], trading=True,
                               target="demo")  # fmt: skip
    assert snapshot.key is None  # permissions unknown, said in a warning
    with pytest.raises(BybitAPIError):
        await preflight(FakeAccount(key_error=refused), ["BTCUSDT"], trading=True,
                        target="testnet")  # fmt: skip


@pytest.mark.parametrize("code", [10003, 10004, 33004])
async def test_a_refused_key_says_which_settings_name_it(code):
    refused = BybitAPIError(code, "invalid", "/v5/user/query-api")
    with pytest.raises(PreflightError, match=r"live\.key_env"):
        await preflight(FakeAccount(key_error=refused), ["BTCUSDT"], trading=True, target="demo")


async def test_refusals_read_only_withdraw_classic_account_and_hedge_mode():
    cases = [
        (FakeAccount(key=dataclasses.replace(KEY, read_only=True)), "read-only"),
        (FakeAccount(key=dataclasses.replace(KEY, can_withdraw=True)), "Withdraw"),
        (FakeAccount(key=dataclasses.replace(KEY, uta=False)), "unified trading account"),
        (FakeAccount(wallet_error=BybitAPIError(10001, "accountType only support UNIFIED",
                                                "/v5/account/wallet-balance")),
         "unified trading account"),
        (FakeAccount(positions=[position("BTCUSDT", 0.0, 1), position("BTCUSDT", 0.0, 2)]),
         "BTCUSDT in hedge mode"),
    ]  # fmt: skip
    for account, reason in cases:
        with pytest.raises(PreflightError, match=reason):
            await preflight(account, ["BTCUSDT"], trading=True, target="testnet")
    read_only = FakeAccount(key=dataclasses.replace(KEY, read_only=True))
    assert await preflight(read_only, ["BTCUSDT"], trading=False, target="testnet")


async def test_the_kill_switch_cancels_resting_orders_then_flattens_from_the_exchange():
    account = FakeAccount(
        positions=[position("BTCUSDT", 0.5), position("ETHUSDT", -2.0), position("XRPUSDT", 9.0)],
        orders=[order("BTCUSDT", "manual-1"), order("ETHUSDT", "bot-1", "run-link"),
                order("XRPUSDT", "not-ours")],
    )  # fmt: skip
    sent: list[Order] = []

    async def execute(o: Order) -> None:
        assert account.cancelled == ["manual-1", "bot-1"]  # cancels come first
        sent.append(o)

    done = await kill_switch(account, execute, "a" * 16, ["BTCUSDT", "ETHUSDT"], 1_000)
    assert done["cancelled_orders"] == ["manual-1", "run-link"]
    assert [(o.symbol, o.qty, o.reason) for o in sent] == [("BTCUSDT", -0.5, "halt"),
                                                           ("ETHUSDT", 2.0, "halt")]  # fmt: skip
    assert done["flatten_orders"] == [o.link_id for o in sent]


def settings(**live):
    return parse_settings({
        "engine": {"symbols": ["BTCUSDT"]}, "strategies": [{"name": "momentum"}],
        "instruments": {"BTCUSDT": {"qty_step": 0.001}},
        "portfolio": {"initial_cash": 2_000.0}, "live": live,
    })  # fmt: skip


def test_mainnet_takes_the_config_switch_or_the_token():
    check_mainnet_allowed(settings(target="mainnet", allow_mainnet=True), None)
    check_mainnet_allowed(settings(target="mainnet"), MAINNET_TOKEN)
    for token in (None, "i-understand", ""):
        with pytest.raises(ConfigError, match="real money"):
            check_mainnet_allowed(settings(target="mainnet"), token)
    check_mainnet_allowed(settings(target="demo"), None)


def test_decisions_use_the_traded_target_s_prices_unless_told_otherwise():
    testnet = market_data_for_target(settings(target="testnet")).venue
    assert testnet.rest_url == "https://api-testnet.bybit.com"
    assert testnet.ws_url == "wss://stream-testnet.bybit.com/v5/public/linear"
    demo = market_data_for_target(settings(target="demo")).venue  # no public data of its own
    assert (demo.rest_url, demo.ws_url) == ("https://api.bybit.com",
                                            "wss://stream.bybit.com/v5/public/linear")  # fmt: skip
    assert live_endpoints(settings(target="demo")).rest_url == "https://api-demo.bybit.com"
    mine = settings(target="testnet").model_copy()
    mine = mine.model_copy(update={"venue": mine.venue.model_copy(update={"ws_url": "wss://x"})})
    assert market_data_for_target(mine).venue.ws_url == "wss://x"
    assert market_data_for_target(settings(target="local")).venue.target == "local"


def test_rails_default_to_the_starting_capital_and_take_the_config():
    derived = rail_limits(settings())
    assert derived.max_order_notional == derived.max_position_notional == 3_000.0
    set_ = rail_limits(settings(max_order_notional=100, max_position_notional=500,
                                max_orders_per_minute=5))  # fmt: skip
    assert (set_.max_order_notional, set_.max_position_notional,
            set_.max_orders_per_minute) == (100, 500, 5)  # fmt: skip
