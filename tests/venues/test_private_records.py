"""Private rows into typed records: Bybit's documented examples (websocket and REST forms)
parse to the right numbers; malformed and implausible rows are refused one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.venues.bybit.private_records import (
    RecordError,
    parse_execution,
    parse_key_info,
    parse_order,
    parse_position,
    parse_rows,
    parse_wallet,
)
from tests.conftest import ROOT

MESSAGES = ROOT.parent / "shared" / "bybit-messages"


def message(name: str) -> Any:
    path = MESSAGES / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


def test_documented_order_rows_websocket_and_rest():
    (option,) = message("ws_private_order_2.jsonc")["data"]
    order = parse_order(option)
    assert (order.symbol, order.side, order.order_type, order.status) == (
        "ETH-30DEC22-1400-C", "Sell", "Market", "Filled"
    )  # fmt: skip
    assert (order.qty, order.price, order.avg_price, order.cum_exec_qty) == (1, 72.5, 75, 1)
    assert order.cum_exec_fee == 0.358635 and order.leaves_qty == 0.0  # "" for options
    assert (order.created_ms, order.updated_ms) == (1672364262444, 1672364262457)
    assert order.category == "option" and order.is_final and order.reduce_only is False

    (row,) = message("rest_order_realtime_1.jsonc")["result"]["list"]
    order = parse_order(row)
    assert (order.order_id, order.link_id) == ("fd4300ae-7847-404e-b947-b46980a4d140",
                                               "test-000005")  # fmt: skip
    assert (order.qty, order.price, order.leaves_qty, order.cum_exec_qty) == (0.1, 1600, 0.1, 0)
    assert order.status == "New" and not order.is_final and order.time_in_force == "GTC"
    assert order.reject_reason == "EC_NoError" and order.position_idx == 1


def test_documented_execution_rows():
    (ws,) = message("ws_private_execution_2.jsonc")["data"]
    fill = parse_execution(ws)
    assert (fill.exec_id, fill.order_id, fill.link_id) == (
        "0ab1bdf7-4219-438b-b30a-32ec863018f7", "9aac161b-8ed6-450d-9cab-c5cc67c21784", ""
    )  # fmt: skip
    assert (fill.side, fill.qty, fill.price, fill.fee) == ("Sell", 0.5, 95900.1, 26.3725275)
    assert (fill.exec_type, fill.time_ms, fill.seq) == ("Trade", 1746270400353, 140612148849382)
    assert (fill.closed_size, fill.exec_pnl, fill.value) == (0.5, 0.05, 47950.05)
    assert fill.category == "linear" and fill.is_maker is False

    (rest,) = message("rest_execution_list_1.jsonc")["result"]["list"]
    fill = parse_execution(rest)
    assert (fill.qty, fill.price, fill.fee, fill.fee_rate) == (0.1, 1190.15, 0.071409, 0.0006)
    assert fill.closed_size == 0.0 and fill.exec_pnl is None  # "" and absent in REST rows


def test_documented_position_and_wallet_rows():
    (ws,) = message("ws_private_position_2.jsonc")["data"]
    flat = parse_position(ws)
    assert (flat.symbol, flat.size, flat.entry_price, flat.mark_price) == ("BTCUSDT", 0, 0,
                                                                            28184.5)  # fmt: skip
    assert (flat.seq, flat.updated_ms, flat.cum_realised_pnl) == (8327597863, 1697682317038,
                                                                  -25.06579337)  # fmt: skip
    (rest,) = message("rest_position_list_1.jsonc")["result"]["list"]
    short = parse_position(rest)
    assert (short.size, short.entry_price) == (-300, 27464.50441675)  # Sell → negative

    (ws_wallet,) = message("ws_private_wallet_2.jsonc")["data"]
    wallet = parse_wallet(ws_wallet)
    assert (wallet.equity, wallet.wallet_balance, wallet.available) == (
        10262.91335023, 9684.46297164, 9556.6056555
    )  # fmt: skip
    assert wallet.coin("BTC").equity == 0.00102964 and wallet.coin("USDT") is None
    (rest_wallet,) = message("rest_account_wallet_balance_1.jsonc")["result"]["list"]
    assert parse_wallet(rest_wallet).account_type == "UNIFIED"


def test_key_info_reads_permissions_without_keeping_the_key():
    info = parse_key_info({"apiKey": "SOMEKEY123", "secret": "", "readOnly": 0, "uta": 1,
                           "permissions": {"ContractTrade": ["Order", "Position"],
                                           "Wallet": ["AccountTransfer", "Withdraw"]}})  # fmt: skip
    assert (info.read_only, info.can_withdraw, info.uta) == (False, True, True)
    assert info.allows("ContractTrade", "Order") and "SOMEKEY123" not in repr(info)
    safe = parse_key_info({"readOnly": 1, "uta": 0, "permissions": {"Wallet": []}})
    assert (safe.read_only, safe.can_withdraw, safe.uta) == (True, False, False)


GOOD_FILL = {"execId": "e1", "orderId": "o1", "orderLinkId": "l1", "symbol": "BTCUSDT",
             "side": "Buy", "execQty": "0.01", "execPrice": "43000", "execValue": "430",
             "execFee": "0.2365", "feeRate": "0.00055", "execType": "Trade", "isMaker": False,
             "execTime": "1700000000000", "seq": 5, "closedSize": "", "leavesQty": "0"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"execQty": "-0.01"}, "negative"), ({"execPrice": "0"}, "a trade of"),
     ({"execPrice": "inf"}, "not finite"), ({"execPrice": "NaN"}, "not finite"),
     ({"execQty": "abc"}, "not a number"), ({"execId": ""}, "empty"),
     ({"side": "Up"}, "neither Buy nor Sell"), ({"execTime": "soon"}, "not an integer"),
     ({"execTime": "0"}, "execTime is 0"), ({"execFee": None}, "no 'execFee'"),
     ({"isMaker": "no"}, "not a boolean"), ({"execQty": True}, "bool")],
)  # fmt: skip
def test_implausible_executions_are_refused(change: dict, reason: str):
    row = {**GOOD_FILL, **change}
    if change.get("execFee", 1) is None:
        del row["execFee"]
    with pytest.raises(RecordError, match=reason):
        parse_execution(row)


def test_funding_executions_may_have_no_side_but_trades_may_not():
    funding = {**GOOD_FILL, "execType": "Funding", "side": "", "execFee": "-0.5"}
    assert parse_execution(funding).fee == -0.5
    with pytest.raises(RecordError, match="neither Buy nor Sell"):
        parse_execution({**GOOD_FILL, "side": ""})


def test_implausible_orders_and_positions_are_refused():
    (row,) = message("rest_order_realtime_1.jsonc")["result"]["list"]
    with pytest.raises(RecordError, match="exceeds qty"):
        parse_order({**row, "cumExecQty": "0.5"})
    with pytest.raises(RecordError, match="average price of 0"):
        parse_order({**row, "cumExecQty": "0.1", "avgPrice": "0"})
    with pytest.raises(RecordError, match="empty 'orderStatus'"):
        parse_order({**row, "orderStatus": ""})
    (position,) = message("ws_private_position_2.jsonc")["data"]
    with pytest.raises(RecordError, match="with no side"):
        parse_position({**position, "size": "3"})
    with pytest.raises(RecordError, match="size is negative"):
        parse_position({**position, "side": "Buy", "size": "-3"})


def test_one_bad_row_costs_only_itself():
    rows = [GOOD_FILL, {**GOOD_FILL, "execId": "e2", "execPrice": "-1"}, "garbage",
            {**GOOD_FILL, "execId": "e3"}]  # fmt: skip
    records, refused = parse_rows(parse_execution, rows)
    assert [r.exec_id for r in records] == ["e1", "e3"]
    assert len(refused) == 2 and "negative" in refused[0] and "not an object" in refused[1]
    assert parse_rows(parse_execution, {"not": "a list"}) == ([], ["data is a dict, not an array"])
