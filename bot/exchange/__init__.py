"""A local Bybit-v5-compatible exchange replaying historical bars as a live market.

Public websocket (klines, order books) and market REST endpoints speak Bybit's exact message
shapes, so the bot's own clients and Bybit's pybit both run against it unchanged; faults
(drops, duplicates, reordering, delays, broken JSON, outages, rate limits, HTTP errors) are
injected deterministically under a seed.

Market time stands at ``exchange.start`` until the first websocket subscription to a kline or
order-book topic (``exchange.start_on = "subscription"``, the default), so a slow client misses
none of the replay; ``"serve"`` starts it when the server starts serving. A REST-only client —
``bot data fetch --local`` — therefore sees the market at ``exchange.start`` (the bars closed by
then) unless something subscribes, ``POST /_local/start`` is sent, or ``start_on = "serve"``.
``POST /_local/pause`` / ``/_local/resume`` freeze and continue market time. Order books and
messages are computed once and shared by all connections; at most ``exchange.max_connections``
websockets are served at once (beyond: HTTP 429).

The private side trades the accounts of ``exchange.accounts`` (test API keys): signed REST
(order create/cancel/realtime/history, executions, positions, wallet, key info) verified on
the raw bytes against the *wall* clock, the ``/v5/private`` websocket with the ``order``,
``execution``, ``position`` and ``wallet`` topics, market and limit-IOC orders matched at the
price the kline stream shows with ``exchange.taker_fee``, funding at the tape's funding
times, ``exchange.order_rate_limit`` creates and cancels per second, and the faults of
``exchange.private_faults`` (lost answers, late acceptance, 10006 bursts, clock skew, server
errors, asynchronous rejects, partial IOC fills, delayed fills, stream drops, duplicates,
reordering, double Filled, auth failures, manual orders, forced refusals), each counted in
``/_local/status``. See :mod:`bot.exchange.private`.
"""

from bot.exchange.server import ExchangeServer, create_app, serve

__all__ = ["ExchangeServer", "create_app", "serve"]
