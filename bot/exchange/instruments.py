"""``/v5/market/instruments-info`` objects for the traded symbols.

Shaped like Bybit's linear perpetual instrument (``rest_market_instruments_info_1.jsonc``);
the trading rules (tick size, quantity step, minimum quantity and notional) come from the
``[instruments]`` config the bot itself trades by, funding interval from the funding data, and
the rest are Bybit's usual values for a USDT perpetual.
"""

from __future__ import annotations

from typing import Any

from bot.exchange.market import Market
from bot.exchange.numfmt import fmt

_MAX_ORDER_STEPS = 1_000_000
_MAX_PRICE_TICKS = 10**9


def instrument_info(market: Market, symbol: str) -> dict[str, Any]:
    spec, tick, qty = market.specs[symbol], market.ticks[symbol], market.qtys[symbol]
    s = market.tape.index(symbol)
    first_bar = market.tape.first_bar(s)
    launch = market.tape.slot_start(first_bar) if first_bar >= 0 else market.tape.first
    min_qty = spec.min_order_qty if spec.min_order_qty > 0 else qty.value
    max_qty = qty.format(_MAX_ORDER_STEPS)
    quote = "USDT" if symbol.endswith("USDT") else "USDC"
    return {
        "symbol": symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": symbol.removesuffix(quote),
        "quoteCoin": quote,
        "launchTime": str(launch),
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(tick.places),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {
            "minPrice": tick.format(1),
            "maxPrice": tick.format(_MAX_PRICE_TICKS),
            "tickSize": tick.format(1),
        },
        "lotSizeFilter": {
            "maxOrderQty": max_qty,
            "minOrderQty": f"{min_qty:.{qty.places}f}",
            "qtyStep": qty.format(1),
            "postOnlyMaxOrderQty": max_qty,
            "maxMktOrderQty": qty.format(_MAX_ORDER_STEPS // 2),
            "minNotionalValue": fmt(spec.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": market.funding_interval_min(symbol),
        "settleCoin": quote,
        "copyTrading": "both",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "symbolType": "",
    }
