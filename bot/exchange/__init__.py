"""A local Bybit-v5-compatible exchange replaying historical bars as a live market.

Public websocket (klines, order books) and market REST endpoints speak Bybit's exact message
shapes, so the bot's own clients and Bybit's pybit both run against it unchanged; faults
(drops, duplicates, reordering, delays, broken JSON, outages, rate limits, HTTP errors) are
injected deterministically under a seed.
"""

from bot.exchange.server import ExchangeServer, create_app, serve

__all__ = ["ExchangeServer", "create_app", "serve"]
