"""The local Bybit-compatible exchange: an aiohttp app, and the ways to run it.

Start it with ``await serve(settings)`` (blocks until cancelled), or hold an
:class:`ExchangeServer` (``async with ExchangeServer(settings) as server: server.port``) when
the caller needs the bound port — ``exchange.port = 0`` binds any free one.

Market time begins at ``exchange.start`` (default: the first bar) and runs at
``exchange.speed`` market seconds per wall second. With ``exchange.start_on = "subscription"``
(the default) it stands at ``exchange.start`` until the first websocket subscription to a
kline or order-book topic, so a client that needs long to start (loading models on a busy
machine) still sees the replay from its beginning; REST meanwhile answers at
``exchange.start``. ``"serve"`` starts it as soon as the server accepts connections.
``/_local/start``, ``/_local/pause`` and ``/_local/resume`` control it by hand (see
:mod:`bot.exchange.control`).

At most ``exchange.max_connections`` websockets are open at once; an upgrade beyond that is
refused with HTTP 429 and a body naming the limit, and counted in ``/_local/status``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from bot.config import Settings
from bot.core.timeutil import iso
from bot.exchange.clock import WallClock
from bot.exchange.control import add_control_routes
from bot.exchange.private_rest import add_private_routes
from bot.exchange.private_ws import run_private
from bot.exchange.rest import STATE, add_routes, bybit_middleware
from bot.exchange.session import Session
from bot.exchange.state import ExchangeState
from bot.exchange.tape import Tape, load_tape
from bot.logs import USER_EVENT

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 2.0  # how long a closing websocket waits for the client's close frame
#: How often (wall s) the private side catches up with time when no request makes it: due
#: delayed fills and late acceptances, funding, manual orders, and their pushes.
TICK_S = 0.02
TICKER = web.AppKey("private_ticker", asyncio.Task)


def create_app(
    settings: Settings, wall_clock: WallClock = time.time, tape: Tape | None = None
) -> web.Application:
    """The exchange as an aiohttp application (loads the tape unless given one)."""
    tape = load_tape(settings) if tape is None else tape
    app = web.Application(middlewares=[bybit_middleware])
    app[STATE] = ExchangeState.build(settings, tape, wall_clock)
    add_routes(app)
    add_private_routes(app)
    app.router.add_get("/v5/public/{category}", public_websocket)
    app.router.add_get("/v5/private", private_websocket)
    add_control_routes(app)
    app.on_startup.append(_start_market)
    app.on_startup.append(_start_ticker)
    app.on_shutdown.append(_close_sessions)
    app.on_cleanup.append(_stop_ticker)
    return app


async def _start_market(app: web.Application) -> None:
    app[STATE].serving()


async def _start_ticker(app: web.Application) -> None:
    app[TICKER] = asyncio.create_task(_tick(app[STATE]), name="private-ticker")


async def _tick(state: ExchangeState) -> None:
    """Advance the private side while the server runs (only if it has accounts)."""
    if not state.private.members:
        return
    while True:
        try:
            state.private.advance()
        except Exception:  # a bug must not stop the clock of every account
            log.exception("the private side failed to advance")
        await asyncio.sleep(TICK_S)


async def _stop_ticker(app: web.Application) -> None:
    task = app[TICKER]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _close_sessions(app: web.Application) -> None:
    state = app[STATE]
    sessions = [*state.sessions, *state.private.sessions]
    await asyncio.gather(
        *(s.ws.close(code=1001, message=b"server shutdown") for s in sessions),
        return_exceptions=True,
    )


async def public_websocket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if request.match_info["category"] != "linear":
        raise web.HTTPNotFound(text="only /v5/public/linear is served here")
    if state.in_outage(state.clock.now()):
        state.counters.outage_refusals += 1
        return web.Response(status=503, text="service unavailable (outage)")
    if not state.admit():
        limit = state.settings.exchange.max_connections
        return web.Response(status=429, text=f"too many connections: limit {limit}")
    try:
        return await _connection(request, state)
    finally:
        state.release()


async def private_websocket(request: web.Request) -> web.StreamResponse:
    """``/v5/private``: account streams, sharing the connection slots with the public side."""
    state = request.app[STATE]
    if not state.admit():
        limit = state.settings.exchange.max_connections
        return web.Response(status=429, text=f"too many connections: limit {limit}")
    try:
        number, _ = state.new_connection()
        return await run_private(request, state.private, number)
    finally:
        state.release()


async def _connection(request: web.Request, state: ExchangeState) -> web.StreamResponse:
    """Upgrade, then run the connection's :class:`Session` until it ends."""
    ws = web.WebSocketResponse(autoping=True, timeout=CLOSE_TIMEOUT_S)
    transport = request.transport
    await ws.prepare(request)
    number, faults = state.new_connection()
    session = Session(state, ws, transport, number, faults)
    state.sessions.add(session)
    try:
        await session.run()
    finally:
        state.sessions.discard(session)
    return ws


class ExchangeServer:
    """A running exchange: ``start()`` binds, ``port`` tells where, ``stop()`` ends it.

    ``tape`` replays given bars instead of loading the configured source."""

    def __init__(
        self, settings: Settings, wall_clock: WallClock = time.time, tape: Tape | None = None
    ) -> None:
        self.settings = settings
        self.wall_clock = wall_clock
        self.tape = tape
        self.app: web.Application | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> ExchangeState:
        assert self.app is not None, "start() first"
        return self.app[STATE]

    @property
    def rest_url(self) -> str:
        return f"http://{self.settings.exchange.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.exchange.host}:{self.port}/v5/public/linear"

    @property
    def private_ws_url(self) -> str:
        return f"ws://{self.settings.exchange.host}:{self.port}/v5/private"

    async def start(self) -> None:
        if self.tape is None:
            self.tape = await asyncio.to_thread(load_tape, self.settings)  # I/O off the loop
        self.app = create_app(self.settings, self.wall_clock, self.tape)
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        exchange = self.settings.exchange
        await web.TCPSite(self._runner, exchange.host, exchange.port).start()
        self.port = int(self._runner.addresses[0][1])
        self.state.port = self.port
        clock = self.state.clock
        log.info(
            "local Bybit exchange: REST %s, websocket %s; market from %s at %g× (%s, %d symbols)%s",
            self.rest_url,
            self.ws_url,
            iso(clock.start_ms),
            clock.speed,
            self.state.market.tape.interval,
            len(self.state.market.symbols),
            ", held until the first subscription" if clock.held else "",
            extra=USER_EVENT,
        )
        if self.state.private.members:
            log.info(
                "private side: %d account(s) (%s), /v5/private at %s",
                len(self.state.private.members),
                ", ".join(self.state.private.members),
                self.private_ws_url,
                extra=USER_EVENT,
            )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ExchangeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


async def serve(
    settings: Settings,
    ready: asyncio.Event | None = None,
    server: ExchangeServer | None = None,
) -> None:
    """Run the exchange until cancelled; ``ready`` is set once it accepts connections. Pass
    your own ``server`` to read its bound ``port`` once ``ready`` is set."""
    server = server or ExchangeServer(settings)
    async with server:
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
