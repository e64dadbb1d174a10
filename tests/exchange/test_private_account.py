"""The account books without sockets: matching, checks, positions, PnL, fees, funding, wallet."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.exchange.account import REALTIME_MEMORY, Account, Rules
from bot.exchange.order_request import OrderRequest, RefusalError, parse_cancel, parse_create


def d(text: str | int) -> Decimal:
    return Decimal(text)


RULES = Rules(
    tick=d("0.1"),
    qty_step=d("0.001"),
    min_qty=d("0.001"),
    max_qty=d("1000"),
    max_mkt_qty=d("500"),
    min_notional=d("5"),
)
FEE = d("0.00055")
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def account(balance: str = "10000", hedge: bool = False) -> Account:
    return Account("main", 1, 7, d(balance), d("10"), FEE, hedge=hedge)


def request(
    side: str,
    qty: str,
    order_type: str = "Market",
    price: str | None = None,
    link: str = "",
    reduce_only: bool = False,
    idx: int = 0,
) -> OrderRequest:
    return OrderRequest(
        "BTCUSDT",
        side,
        order_type,
        d(qty),
        None if price is None else d(price),
        "IOC",
        link,
        reduce_only,
        idx,
    )


def marks(price: str) -> dict[str, Decimal]:
    return {"BTCUSDT": d(price), "ETHUSDT": d("3000")}


def trade(a: Account, req: OrderRequest, price: str, now: int = 1000) -> list:
    a.reserve(req.link_id)
    qty = a.check(req, RULES, marks(price))
    order, pushes = a.accept(req, qty, RULES, d(price), now)
    return pushes + a.execute(order, d(price), now, marks(price))


def identity(a: Account, start: str = "10000") -> Decimal:
    """What a client computes from the executions it received."""
    return d(start) + sum((e.pnl - e.fee for e in a.executions), d(0))


def test_a_market_buy_fills_at_the_price_with_the_taker_fee():
    a = account()
    pushes = trade(a, request("Buy", "0.010"), "50000")
    assert [kind for kind, _ in pushes] == ["order", "execution", "position", "wallet", "order"]
    assert [row.get("orderStatus") for kind, row in pushes if kind == "order"] == ["New", "Filled"]
    execution = pushes[1][1]
    assert execution["execPrice"] == "50000" and execution["execQty"] == "0.010"
    assert execution["execValue"] == "500" and execution["execFee"] == "0.275"
    assert execution["feeRate"] == "0.00055" and execution["execType"] == "Trade"
    assert execution["closedSize"] == "0" and execution["execPnl"] == "0"
    assert a.wallet == d("9999.725")
    position = pushes[2][1]
    assert position["size"] == "0.010" and position["side"] == "Buy"
    assert position["entryPrice"] == "50000" and position["positionIdx"] == 0
    wallet = pushes[3][1]
    assert wallet["totalWalletBalance"] == "9999.725"
    assert wallet["coin"][0]["coin"] == "USDT" and wallet["coin"][0]["walletBalance"] == "9999.725"
    filled = pushes[4][1]
    assert filled["cumExecQty"] == "0.010" and filled["avgPrice"] == "50000"
    assert filled["leavesQty"] == "0" and filled["cumExecFee"] == "0.275"


def test_average_entry_realised_pnl_flip_and_the_wallet_identity():
    a = account()
    trade(a, request("Buy", "0.010"), "50000")
    trade(a, request("Buy", "0.030"), "51000")
    p = a.position("BTCUSDT", 0)
    assert p.size == d("0.040") and p.entry == d("50750")
    trade(a, request("Sell", "0.020"), "52000")  # closes half: +25 before fees
    assert a.executions[-1].pnl == d("25") and a.executions[-1].closed_size == d("0.020")
    assert a.wallet == d("10023.3115")
    trade(a, request("Sell", "0.050"), "49000")  # closes 0.020 (-35), opens 0.030 short
    assert a.executions[-1].pnl == d("-35") and p.size == d("-0.030") and p.entry == d("49000")
    assert a.wallet == d("9986.964")
    trade(a, request("Buy", "0.030"), "48000")  # the short gains 30
    assert a.executions[-1].pnl == d("30") and p.size == 0 and p.cost == 0
    assert a.wallet == d("10016.172") == identity(a)
    assert p.cum_realised == a.wallet - d("10000") == a.cum_realised


def test_unrealised_pnl_margin_and_equity_follow_the_price():
    a = account()
    trade(a, request("Sell", "0.100"), "50000")  # short 5000 USDT
    fee = d("2.75")
    assert a.unrealised(marks("49000")) == d("100")
    assert a.equity(marks("49000")) == d("10000") - fee + d("100")
    assert a.initial_margin(marks("49000")) == d("490")
    assert a.available(marks("49000")) == d("10000") - fee + d("100") - d("490")


def test_a_client_s_link_id_is_unique_forever():
    a = account()
    trade(a, request("Buy", "0.010", link="run1-0001"), "50000")
    with pytest.raises(RefusalError) as refused:
        a.reserve("run1-0001")
    assert refused.value.code == 110072
    assert a.find(link_id="run1-0001") is a.orders[a.link_ids["run1-0001"]]


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (request("Buy", "0.0004"), 110017),  # truncated to zero
        (request("Buy", "0.0001"), 110017),
        (request("Sell", "0.010", reduce_only=True), 110017),  # nothing to reduce
        (request("Buy", "0.00009", order_type="Limit", price="50000"), 110017),
        (request("Buy", "600"), 10001),  # above maxMktOrderQty
        (request("Buy", "0.010", order_type="Limit", price="50000.05"), 10001),  # off tick
        (request("Buy", "0.010", idx=1), 10001),  # hedge index on a one-way account
        (request("Buy", "0.0001", order_type="Limit", price="50000"), 110017),
        (request("Buy", "0.001", order_type="Limit", price="4000"), 110094),  # 4 USDT
        (request("Buy", "0.001"), 110094),  # 4.5 USDT at 4500
        (request("Buy", "30"), 110007),  # 135k USDT at 10x needs 13.5k margin
    ],
)
def test_each_refusal_has_bybit_s_code(req: OrderRequest, code: int):
    with pytest.raises(RefusalError) as refused:
        account().check(req, RULES, marks("4500"))
    assert refused.value.code == code


def test_quantities_are_truncated_to_the_step_and_min_qty_is_checked():
    a = account()
    assert a.check(request("Buy", "0.0109"), RULES, marks("50000")) == d("0.010")
    rules = Rules(d("0.1"), d("0.001"), d("0.005"), d("1000"), d("500"), d("5"))
    with pytest.raises(RefusalError) as refused:
        a.check(request("Buy", "0.004"), rules, marks("50000"))
    assert refused.value.code == 10001 and "minOrderQty" in refused.value.message


def test_reduce_only_is_capped_by_the_position_and_exempt_from_min_notional():
    a = account()
    trade(a, request("Buy", "0.010"), "50000")
    with pytest.raises(RefusalError):  # would increase
        a.check(request("Buy", "0.010", reduce_only=True), RULES, marks("50000"))
    pushes = trade(a, request("Sell", "0.050", reduce_only=True), "50000")
    assert a.position("BTCUSDT", 0).size == 0
    last = pushes[-1][1]
    assert last["orderStatus"] == "Cancelled" and last["cumExecQty"] == "0.010"
    assert last["cancelType"] == "CancelByReduceOnly"
    trade(a, request("Buy", "0.001"), "50000")  # 50 USDT
    trade(a, request("Sell", "0.001", reduce_only=True), "4000")  # 4 USDT: allowed to close
    assert a.position("BTCUSDT", 0).size == 0


def test_the_margin_check_counts_only_what_opens():
    a = account("100")
    trade(a, request("Buy", "0.019"), "50000")  # 950 USDT at 10x: 95 margin + fee
    with pytest.raises(RefusalError) as refused:
        a.check(request("Buy", "0.010"), RULES, marks("50000"))
    assert refused.value.code == 110007
    assert a.check(request("Sell", "0.019"), RULES, marks("50000")) == d("0.019")


def test_limit_ioc_fills_only_when_the_price_crosses_and_at_the_market_price():
    a = account()
    pushes = trade(a, request("Buy", "0.010", order_type="Limit", price="49000"), "50000")
    assert [row["orderStatus"] for kind, row in pushes if kind == "order"] == ["New", "Cancelled"]
    assert a.executions == [] and a.wallet == d("10000")
    assert pushes[-1][1]["rejectReason"] == "EC_NoImmediateQtyToFill"
    trade(a, request("Buy", "0.010", order_type="Limit", price="51000"), "50000")
    assert a.executions[-1].price == d("50000")
    trade(a, request("Sell", "0.010", order_type="Limit", price="50000.1"), "50000")
    assert a.position("BTCUSDT", 0).size == d("0.010")  # not filled: bid above market
    trade(a, request("Sell", "0.010", order_type="Limit", price="49999.9"), "50000")
    assert a.position("BTCUSDT", 0).size == 0


def test_a_partial_fill_leaves_the_rest_cancelled():
    a = account()
    req = request("Buy", "0.010")
    a.reserve(req.link_id)
    order, _ = a.accept(req, d("0.010"), RULES, d("50000"), 1)
    pushes = a.execute(order, d("50000"), 1, marks("50000"), share=d("0.004"))
    statuses = [row["orderStatus"] for kind, row in pushes if kind == "order"]
    assert statuses == ["PartiallyFilled", "Cancelled"]
    assert order.cum_qty == d("0.004") and order.status == "Cancelled"
    assert a.position("BTCUSDT", 0).size == d("0.004")


def test_funding_a_long_pays_a_short_receives():
    a = account()
    trade(a, request("Buy", "0.010"), "50000")
    before = a.wallet
    pushes = a.fund("BTCUSDT", 2000, d("0.0001"), d("50000"), marks("50000"))
    assert [kind for kind, _ in pushes] == ["execution", "position", "wallet"]
    row = pushes[0][1]
    assert row["execType"] == "Funding" and row["execFee"] == "0.05"
    assert row["feeRate"] == "0.0001" and row["execQty"] == "0.010" and row["side"] == "Buy"
    assert a.wallet == before - d("0.05")
    trade(a, request("Sell", "0.030"), "50000")  # now short 0.020
    before = a.wallet
    a.fund("BTCUSDT", 3000, d("0.0001"), d("40000"), marks("40000"))
    assert a.wallet == before + d("0.08")
    assert a.fund("ETHUSDT", 3000, d("0.0001"), d("3000"), marks("40000")) == []  # no position
    assert a.wallet == identity(a)


def test_fees_and_pnl_are_booked_to_eight_decimals_and_written_as_booked():
    a = account()
    trade(a, request("Buy", "0.003"), "33333.3")
    fee = a.executions[-1].fee
    assert fee == d("0.05499995")  # 99.9999 × 0.00055 = 0.054999945 → half up
    trade(a, request("Sell", "0.001"), "33334.1")
    assert a.executions[-1].pnl == d("0.0008")
    trade(a, request("Buy", "0.001"), "33335.7")
    trade(a, request("Sell", "0.003"), "33340")
    assert a.wallet == identity(a)
    assert all(len(str(e.fee).partition(".")[2]) <= 8 for e in a.executions)


def test_hedge_mode_keeps_two_sides_and_an_opposite_order_only_reduces():
    a = account(hedge=True)
    with pytest.raises(RefusalError) as refused:
        a.check(request("Buy", "0.010"), RULES, marks("50000"))
    assert refused.value.code == 10001 and "position idx" in refused.value.message
    with pytest.raises(RefusalError) as refused:  # a Sell on the long side reduces it: none
        a.check(request("Sell", "0.010", idx=1), RULES, marks("50000"))
    assert refused.value.code == 110017
    trade(a, request("Buy", "0.010", idx=1), "50000")
    trade(a, request("Sell", "0.020", idx=2), "50000")
    assert a.position("BTCUSDT", 1).size == d("0.010")
    assert a.position("BTCUSDT", 2).size == d("-0.020")
    trade(a, request("Buy", "0.050", idx=2), "50000")  # closes the short only
    assert a.position("BTCUSDT", 2).size == 0 and a.position("BTCUSDT", 1).size == d("0.010")


def test_realtime_remembers_the_last_500_closed_orders_until_a_restart():
    a = account("10000000")
    for n in range(REALTIME_MEMORY + 20):
        trade(a, request("Buy" if n % 2 == 0 else "Sell", "0.001", link=f"o{n}"), "50000", n)
    seen = a.realtime()
    assert len(seen) == REALTIME_MEMORY
    assert seen[0].link_id == f"o{REALTIME_MEMORY + 19}" and seen[-1].link_id == "o20"
    a.restart()
    assert a.realtime() == [] and len(a.orders) == REALTIME_MEMORY + 20
    assert a.find(link_id="o3") is not None  # history keeps them


def test_create_and_cancel_parameters_are_checked():
    good = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Limit",
        "qty": "0.01",
        "price": "50000",
        "timeInForce": "IOC",
        "orderLinkId": "a-Z_9" * 7,
        "reduceOnly": True,
    }
    req = parse_create(good, SYMBOLS)
    assert req.qty == d("0.01") and req.price == d("50000") and req.reduce_only
    bad = [
        {"category": "spot"},
        {"symbol": "DOGEUSDT"},
        {"side": "buy"},
        {"orderType": "PostOnly"},
        {"qty": 0.01},
        {"qty": "-1"},
        {"qty": "nan"},
        {"price": None},
        {"timeInForce": "GTC"},
        {"orderLinkId": "x" * 37},
        {"orderLinkId": "has space"},
        {"reduceOnly": "true"},
        {"positionIdx": 3},
    ]
    for change in bad:
        with pytest.raises(RefusalError) as refused:
            parse_create({**good, **change}, SYMBOLS)
        assert refused.value.code == 10001, change
    market = parse_create({**good, "orderType": "Market", "price": None}, SYMBOLS)
    assert market.time_in_force == "IOC" and market.price is None
    assert parse_cancel({"category": "linear", "symbol": "BTCUSDT", "orderId": "x"}, SYMBOLS)
    with pytest.raises(RefusalError):
        parse_cancel({"category": "linear", "symbol": "BTCUSDT"}, SYMBOLS)


def test_ids_are_unique_and_repeat_under_the_same_seed():
    first, again = account(), account()
    for a in (first, again):
        for _ in range(3):
            trade(a, request("Buy", "0.010"), "50000")
    ids = [e.exec_id for e in first.executions]
    assert ids == [e.exec_id for e in again.executions] and len(set(ids)) == 3
    assert list(first.orders) == list(again.orders)
    assert [e.seq for e in first.executions] == sorted({e.seq for e in first.executions})
