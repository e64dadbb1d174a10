"""Orders, executions, positions and the wallet as Bybit writes them (rows of REST lists and
private stream messages), after the documented examples in ``shared/bybit-messages``.

Numbers are strings, times are strings of epoch ms (market time), quantities and prices keep
the places of their step and tick, money is written exactly as booked (see
:mod:`bot.exchange.money`). Fields this exchange has no use for (take-profit, options,
RPI…) are present with Bybit's neutral values, so a client parsing the full shape works.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bot.exchange.money import ZERO, book, text

if TYPE_CHECKING:
    from bot.exchange.account import Account, Execution, Marks, Order, Position

RISK_LIMIT_VALUE = "2000000"
#: Maintenance margin rate reported (not enforced: the local exchange does not liquidate).
MAINTENANCE_RATE = Decimal("0.005")


def _q(value: Decimal) -> str:
    """A quantity or price: positional, keeping the places it was made with."""
    return "0" if value == 0 else format(value, "f")


def order_row(order: Order) -> dict[str, Any]:
    leaves = order.leaves
    return {
        "category": "linear",
        "orderId": order.order_id,
        "orderLinkId": order.link_id,
        "blockTradeId": "",
        "symbol": order.symbol,
        "price": _q(order.price),
        "qty": _q(order.qty),
        "side": order.side,
        "isLeverage": "",
        "positionIdx": order.position_idx,
        "orderStatus": order.status,
        "createType": order.create_type,
        "cancelType": order.cancel_type,
        "rejectReason": order.reject_reason,
        "avgPrice": text(order.avg_price),
        "leavesQty": _q(leaves),
        "leavesValue": text(leaves * order.price),
        "cumExecQty": _q(order.cum_qty),
        "cumExecValue": text(order.cum_value),
        "cumExecFee": text(order.cum_fee),
        "closedPnl": text(order.closed_pnl),
        "feeCurrency": "",
        "timeInForce": order.time_in_force,
        "orderType": order.order_type,
        "stopOrderType": "",
        "orderIv": "",
        "marketUnit": "",
        "triggerPrice": "",
        "takeProfit": "",
        "stopLoss": "",
        "tpslMode": "",
        "tpLimitPrice": "",
        "slLimitPrice": "",
        "tpTriggerBy": "",
        "slTriggerBy": "",
        "triggerDirection": 0,
        "triggerBy": "",
        "lastPriceOnCreated": "",
        "reduceOnly": order.reduce_only,
        "closeOnTrigger": False,
        "placeType": "",
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "createdTime": str(order.created),
        "updatedTime": str(order.updated),
    }


def execution_row(execution: Execution, mark: Decimal) -> dict[str, Any]:
    return {
        "category": "linear",
        "symbol": execution.symbol,
        "execId": execution.exec_id,
        "execPrice": _q(execution.price),
        "execQty": _q(execution.qty),
        "execValue": text(execution.value),
        "execFee": text(execution.fee),
        "feeRate": text(execution.fee_rate),
        "execType": execution.exec_type,
        "execTime": str(execution.time),
        "isMaker": False,
        "orderId": execution.order_id,
        "orderLinkId": execution.link_id,
        "orderPrice": _q(execution.order_price),
        "orderQty": _q(execution.order_qty),
        "orderType": execution.order_type,
        "stopOrderType": "UNKNOWN",
        "side": execution.side,
        "leavesQty": _q(execution.leaves_qty),
        "closedSize": _q(execution.closed_size),
        "execPnl": text(execution.pnl),
        "markPrice": _q(mark),
        "indexPrice": "",
        "underlyingPrice": "",
        "blockTradeId": "",
        "tradeIv": "",
        "markIv": "",
        "isLeverage": "",
        "marketUnit": "",
        "createType": execution.create_type,
        "feeCurrency": "USDT",
        "extraFees": "",
        "seq": execution.seq,
    }


def position_row(position: Position, mark: Decimal, leverage: Decimal) -> dict[str, Any]:
    """A position as ``/v5/position/list`` lists it; the stream's adds ``entryPrice``."""
    size = abs(position.size)
    value = position.cost
    im = book(size * mark / leverage)
    return {
        "category": "linear",
        "positionIdx": position.idx,
        "riskId": 1,
        "riskLimitValue": RISK_LIMIT_VALUE,
        "symbol": position.symbol,
        "side": position.side,
        "size": _q(size),
        "avgPrice": text(position.entry),
        "entryPrice": text(position.entry),
        "positionValue": text(value),
        "tradeMode": 0,
        "positionStatus": "Normal",
        "autoAddMargin": 0,
        "adlRankIndicator": 2 if size else 0,
        "leverage": text(leverage),
        "breakEvenPrice": text(position.entry),
        "positionBalance": text(im),
        "markPrice": _q(mark),
        "liqPrice": "",
        "bustPrice": "",
        "positionMM": text(book(size * mark * MAINTENANCE_RATE)),
        "positionMMByMp": text(book(size * mark * MAINTENANCE_RATE)),
        "positionIM": text(im),
        "positionIMByMp": text(im),
        "tpslMode": "Full",
        "takeProfit": "0",
        "stopLoss": "0",
        "trailingStop": "0",
        "unrealisedPnl": text(book(position.unrealised(mark))),
        "curRealisedPnl": text(position.cur_realised),
        "cumRealisedPnl": text(position.cum_realised),
        "sessionAvgPrice": "",
        "seq": position.seq,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "createdTime": str(position.created),
        "updatedTime": str(position.updated),
    }


def wallet_row(account: Account, marks: Marks) -> dict[str, Any]:
    """The UNIFIED account with its one coin, USDT."""
    upl = book(account.unrealised(marks))
    equity = account.wallet + upl
    im = book(account.initial_margin(marks))
    mm = book(account.maintenance_margin(marks))
    available = max(ZERO, equity - im)
    im_rate = book(im / equity) if equity > 0 else ZERO
    mm_rate = book(mm / equity) if equity > 0 else ZERO
    coin = {
        "coin": "USDT",
        "equity": text(equity),
        "usdValue": text(equity),
        "walletBalance": text(account.wallet),
        "availableToWithdraw": text(max(ZERO, account.wallet - im)),
        "availableToBorrow": "",
        "borrowAmount": "0",
        "accruedInterest": "0",
        "totalOrderIM": "0",
        "totalPositionIM": text(im),
        "totalPositionMM": text(mm),
        "unrealisedPnl": text(upl),
        "cumRealisedPnl": text(account.cum_realised),
        "bonus": "0",
        "collateralSwitch": True,
        "marginCollateral": True,
        "locked": "0",
        "spotHedgingQty": "0",
        "spotBorrow": "0",
    }
    return {
        "accountType": "UNIFIED",
        "accountLTV": "0",
        "accountIMRate": text(im_rate),
        "accountIMRateByMp": text(im_rate),
        "accountMMRate": text(mm_rate),
        "accountMMRateByMp": text(mm_rate),
        "totalEquity": text(equity),
        "totalWalletBalance": text(account.wallet),
        "totalMarginBalance": text(equity),
        "totalAvailableBalance": text(available),
        "totalPerpUPL": text(upl),
        "totalInitialMargin": text(im),
        "totalInitialMarginByMp": text(im),
        "totalMaintenanceMargin": text(mm),
        "totalMaintenanceMarginByMp": text(mm),
        "coin": [coin],
    }
