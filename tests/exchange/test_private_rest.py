"""The private REST endpoints over HTTP: orders, lookups, positions, wallet, limits, codes."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from bot.exchange.account import REALTIME_MEMORY
from bot.exchange.tape import Tape
from bot.feeds.synthetic import synthetic_panel
from tests.exchange.harness import HOUR, SYNTH_FIRST
from tests.exchange.signed import ACCOUNTS, START, venue

CREATE = "/v5/order/create"


async def test_an_order_fills_and_every_lookup_agrees():
    async with venue() as v:
        price = v.price("BTCUSDT")
        reply = await v.client.order("BTCUSDT", "Buy", "1", "run-1_btc-0")
        assert reply.code == 0 and reply.body["retMsg"] == "OK"
        assert reply.result["orderLinkId"] == "run-1_btc-0"
        assert int(reply.headers["X-Bapi-Limit"]) == 10
        order_id = reply.result["orderId"]

        found = await v.client.get(
            "/v5/order/realtime", "category=linear&symbol=BTCUSDT&orderLinkId=run-1_btc-0"
        )
        [row] = found.result["list"]
        assert row["orderId"] == order_id and row["orderStatus"] == "Filled"
        assert row["cumExecQty"] == "1.000" and Decimal(row["avgPrice"]) == price.quantize(
            Decimal("1e-8")
        )
        open_now = await v.client.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT")
        assert open_now.result["list"] == []  # filled orders are not open
        closed = await v.client.get(
            "/v5/order/realtime", "category=linear&symbol=BTCUSDT&openOnly=1"
        )
        assert [r["orderId"] for r in closed.result["list"]] == [order_id]

        history = await v.client.get("/v5/order/history", "category=linear&symbol=BTCUSDT")
        assert [r["orderId"] for r in history.result["list"]] == [order_id]

        executions = await v.client.get("/v5/execution/list", "category=linear")
        [fill] = executions.result["list"]
        assert fill["orderLinkId"] == "run-1_btc-0" and Decimal(fill["execPrice"]) == price
        fee = Decimal(fill["execFee"])
        assert fee == (price * Decimal("0.00055")).quantize(Decimal("1e-8"))
        assert isinstance(fill["seq"], int) and fill["execTime"] == str(START)

        position = await v.client.get("/v5/position/list", "category=linear&symbol=BTCUSDT")
        [pos] = position.result["list"]
        assert pos["side"] == "Buy" and pos["size"] == "1.000" and pos["positionIdx"] == 0
        assert "entryPrice" not in pos and Decimal(pos["avgPrice"]) > 0
        flat = await v.client.get("/v5/position/list", "category=linear&symbol=ETHUSDT")
        assert flat.result["list"][0]["side"] == "" and flat.result["list"][0]["size"] == "0"
        by_coin = await v.client.get("/v5/position/list", "category=linear&settleCoin=USDT")
        assert [p["symbol"] for p in by_coin.result["list"]] == ["BTCUSDT"]

        wallet = await v.client.get("/v5/account/wallet-balance", "accountType=UNIFIED")
        [account] = wallet.result["list"]
        assert account["accountType"] == "UNIFIED"
        assert Decimal(account["totalWalletBalance"]) == Decimal(10000) - fee
        assert Decimal(account["coin"][0]["walletBalance"]) == Decimal(10000) - fee


async def test_executions_page_with_a_cursor_and_filter_by_link_id_and_window():
    async with venue() as v:
        for n in range(5):
            assert (await v.client.order("ETHUSDT", "Buy", "0.1", f"e{n}")).code == 0
            v.wall.t += 0.5  # half a market hour between orders
        seen, cursor, pages = [], "", 0
        while True:
            query = "category=linear&limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = (await v.client.get("/v5/execution/list", query)).result
            seen += [r["orderLinkId"] for r in page["list"]]
            pages += 1
            cursor = page["nextPageCursor"]
            if not cursor:
                break
        assert pages == 3 and seen == ["e4", "e3", "e2", "e1", "e0"]  # newest first
        one = await v.client.get("/v5/execution/list", "category=linear&orderLinkId=e2")
        assert [r["orderLinkId"] for r in one.result["list"]] == ["e2"]
        window = f"category=linear&startTime={START}&endTime={START + HOUR}"
        early = await v.client.get("/v5/execution/list", window)
        assert [r["orderLinkId"] for r in early.result["list"]] == ["e2", "e1", "e0"]
        wide = f"category=linear&startTime={START}&endTime={START + 8 * 24 * HOUR}"
        assert (await v.client.get("/v5/execution/list", wide)).code == 10001


async def test_each_refusal_comes_with_its_code_and_http_200():
    async with venue() as v:
        c = v.client
        body = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market"}
        cases = [
            (await c.post(CREATE, {**body, "qty": 1}), 10001),  # qty must be a string
            (await c.post(CREATE, "not json"), 10001),
            (await c.order("BTCUSDT", "Buy", "0.0001"), 110017),  # truncated to zero
            (await c.order("BTCUSDT", "Sell", "1", reduceOnly=True), 110017),
            (await c.order("BTCUSDT", "Buy", "0.01"), 110094),  # ~1 USDT
            (await c.order("BTCUSDT", "Buy", "900"), 10001),  # above maxMktOrderQty
            (
                await c.order(
                    "BTCUSDT", "Buy", "999", orderType="Limit", price="110", timeInForce="IOC"
                ),
                110007,
            ),
            (await c.order("DOGEUSDT", "Buy", "1"), 10001),
            (await c.post("/v5/order/cancel", {**body, "orderId": "nope"}), 110001),
            (await c.get("/v5/order/realtime", "category=linear"), 10001),  # no symbol
            (await c.get("/v5/position/list", "category=linear"), 10001),
            (await c.get("/v5/account/wallet-balance", "accountType=CONTRACT"), 10001),
            (await v.as_(ACCOUNTS[1]).order("BTCUSDT", "Buy", "1"), 10005),  # read-only key
        ]
        for reply, code in cases:
            assert reply.status == 200 and reply.code == code, (code, reply.body)
        v.wall.t += 1.0  # a new second for the order rate limit
        assert (await c.order("BTCUSDT", "Buy", "1", "same")).code == 0
        assert (await c.order("BTCUSDT", "Buy", "1", "same")).code == 110072
        stats = v.private.status()["accounts"]
        assert stats["main"]["posts"] == 11 and stats["main"]["orders_accepted"] == 1
        assert stats["ro"]["requests"] == 1 and stats["ro"]["posts"] == 1
        assert stats["ro"]["orders_accepted"] == 0


async def test_ten_orders_a_second_then_10006_with_a_reset_ahead_on_the_wall_clock():
    async with venue() as v:
        replies = [await v.client.order("ETHUSDT", "Buy", "0.1") for _ in range(11)]
        assert [r.code for r in replies] == [0] * 10 + [10006]
        assert [r.headers["X-Bapi-Limit-Status"] for r in replies[:3]] == ["9", "8", "7"]
        reset = int(replies[-1].headers["X-Bapi-Limit-Reset-Timestamp"])
        wall_ms = int(v.wall.t * 1000)
        assert wall_ms < reset <= wall_ms + 1000
        lookup = await v.client.get("/v5/order/realtime", "category=linear&symbol=ETHUSDT")
        assert lookup.code == 0  # lookups are not order requests
        v.wall.t = reset / 1000
        assert (await v.client.order("ETHUSDT", "Buy", "0.1")).code == 0
        assert v.private.status()["accounts"]["main"]["rate_limited"] == 1


async def test_a_restart_forgets_closed_orders_in_realtime_but_not_in_history():
    async with venue(accounts=[{**ACCOUNTS[0], "balance": 1e7}], order_rate_limit=10_000) as v:
        for n in range(REALTIME_MEMORY + 3):
            side = "Buy" if n % 2 == 0 else "Sell"
            assert (await v.client.order("ETHUSDT", side, "0.1", f"m{n}")).code == 0
        query = "category=linear&symbol=ETHUSDT&openOnly=1&limit=50"
        first = await v.client.get("/v5/order/realtime", query)
        assert first.result["list"][0]["orderLinkId"] == f"m{REALTIME_MEMORY + 2}"
        oldest = await v.client.get(
            "/v5/order/realtime", "category=linear&symbol=ETHUSDT&orderLinkId=m2"
        )
        assert oldest.result["list"] == []  # beyond the 500 remembered
        kept = await v.client.get(
            "/v5/order/realtime", "category=linear&symbol=ETHUSDT&orderLinkId=m3"
        )
        assert len(kept.result["list"]) == 1
        status = await v.control("/_local/restart")
        assert status["private"]["restarts"] == 1
        gone = await v.client.get(
            "/v5/order/realtime", "category=linear&symbol=ETHUSDT&orderLinkId=m9"
        )
        assert gone.result["list"] == []
        history = await v.client.get(
            "/v5/order/history", "category=linear&symbol=ETHUSDT&orderLinkId=m9"
        )
        assert history.result["list"][0]["orderStatus"] == "Filled"
        assert (await v.client.order("ETHUSDT", "Buy", "0.1", "m9")).code == 110072


async def test_the_key_says_what_it_may_do():
    accounts = [
        ACCOUNTS[0],
        {**ACCOUNTS[1], "withdraw": True, "uta": False, "position_mode": "hedge", "name": "x"},
    ]
    async with venue(accounts=accounts) as v:
        info = (await v.client.get("/v5/user/query-api")).result
        assert (
            info["readOnly"] == 0 and info["uta"] == 1 and info["apiKey"] == ACCOUNTS[0]["api_key"]
        )
        assert "Withdraw" not in info["permissions"]["Wallet"] and info["secret"] == ""
        other = v.as_(accounts[1])
        info = (await other.get("/v5/user/query-api")).result
        assert info["readOnly"] == 1 and info["uta"] == 0
        assert "Withdraw" in info["permissions"]["Wallet"]
        assert (await other.get("/v5/account/info")).result["unifiedMarginStatus"] == 1
        assert (await v.client.get("/v5/account/info")).result["unifiedMarginStatus"] == 5
        assert (await other.get("/v5/account/wallet-balance", "accountType=UNIFIED")).code == 10001
        hedge = await other.get("/v5/position/list", "category=linear&symbol=BTCUSDT")
        assert [p["positionIdx"] for p in hedge.result["list"]] == [1, 2]


async def test_a_resting_order_is_cancelled_by_link_id():
    faults = {"delayed_fill_probability": 1.0, "fill_delay_ms": 600_000}
    async with venue(private_faults=faults) as v:
        placed = await v.client.order("BTCUSDT", "Buy", "1", "slow-1")
        assert placed.code == 0
        open_now = await v.client.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT")
        assert [r["orderStatus"] for r in open_now.result["list"]] == ["New"]
        body = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "slow-1"}
        cancelled = await v.client.post("/v5/order/cancel", body)
        assert cancelled.code == 0 and cancelled.result["orderId"] == placed.result["orderId"]
        again = await v.client.post("/v5/order/cancel", body)
        assert again.code == 110001
        row = (await v.client.get("/v5/order/history", "category=linear")).result["list"][0]
        assert row["orderStatus"] == "Cancelled" and row["cancelType"] == "CancelByUser"
        assert v.private.status()["accounts"]["main"]["cancels"] == 1


def funded_tape() -> Tape:
    panel = synthetic_panel(("BTCUSDT", "ETHUSDT"), "1h", 300, start_ms=SYNTH_FIRST)
    times = np.arange(SYNTH_FIRST, SYNTH_FIRST + 300 * HOUR, 8 * HOUR, dtype=np.int64)
    rates = np.full(len(times), 0.0001)
    return Tape(panel, "1h", {"BTCUSDT": (times, rates)})


async def test_funding_is_settled_at_the_tape_s_funding_times():
    async with venue(tape=funded_tape()) as v:
        await v.client.order("BTCUSDT", "Buy", "1", "long")
        await v.client.order("ETHUSDT", "Sell", "1", "short")
        v.wall.t += 8.0  # eight market hours: exactly one funding time of BTCUSDT passes
        found = await v.client.get("/v5/execution/list", "category=linear&execType=Funding")
        [funding] = found.result["list"]
        t = int(funding["execTime"])
        assert START < t <= START + 8 * HOUR and (t - SYNTH_FIRST) % (8 * HOUR) == 0
        assert funding["symbol"] == "BTCUSDT" and funding["side"] == "Buy"
        price = Decimal(funding["execPrice"])
        assert price == v.private.marks(t)["BTCUSDT"]
        assert Decimal(funding["execFee"]) == (price * Decimal("0.0001")).quantize(Decimal("1e-8"))
        everything = (await v.client.get("/v5/execution/list", "category=linear")).result["list"]
        wallet = await v.client.get("/v5/account/wallet-balance", "accountType=UNIFIED")
        booked = sum(Decimal(e["execPnl"]) - Decimal(e["execFee"]) for e in everything)
        assert Decimal(wallet.result["list"][0]["totalWalletBalance"]) == 10000 + booked


async def test_a_manual_order_moves_the_position_behind_the_client_s_back():
    async with venue() as v:
        await v.client.order("BTCUSDT", "Buy", "1", "mine")
        status = await v.control(
            "/_local/manual_order",
            {"account": "main", "symbol": "BTCUSDT", "side": "Sell", "qty": "3"},
        )
        assert status["status"]["private"]["accounts"]["main"]["positions"] == {"BTCUSDT:0": "-2"}
        orders = (await v.client.get("/v5/order/history", "category=linear")).result["list"]
        assert [o["orderLinkId"] for o in orders] == ["", "mine"]
        bad = await v.control("/_local/manual_order", {"account": "nobody", "side": "Up"})
        assert "no account" in bad["error"] and "side" in bad["error"]
