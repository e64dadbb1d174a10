"""A small HTTP server on the daemon's own event loop: ``GET /metrics`` and ``GET /healthz``.

Both handlers read memory only (counters and a few attributes), so they are cheap and never
wait on the database or the venue; a scrape cannot slow a step down, nor a step a scrape (the
engine runs its steps on a worker thread). Bound to ``monitoring.host`` (127.0.0.1 by default:
a daemon's numbers are nobody else's business unless the user says so).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from bot.config import MonitoringConfig
from bot.logs import USER_EVENT
from bot.monitoring.health import Health, assess, cadence
from bot.monitoring.metrics import Reader, read_daemon, registry_for
from bot.monitoring.observed import Observed, facts

log = logging.getLogger(__name__)

REGISTRY = web.AppKey("registry", CollectorRegistry)
HEALTH = web.AppKey("health", Callable[[], Health])


class MonitoringError(RuntimeError):
    """The server cannot listen where ``[monitoring]`` says (a port in use, a bad host)."""


async def metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": content_type})


async def healthz(request: web.Request) -> web.Response:
    health = request.app[HEALTH]()
    return web.Response(status=health.status, text=health.reason + "\n")


class MonitoringServer:
    """``start()`` binds and answers the URL, ``stop()`` ends it."""

    def __init__(self, registry: CollectorRegistry, health: Callable[[], Health]) -> None:
        self.app = web.Application()
        self.app[REGISTRY] = registry
        self.app[HEALTH] = health
        self.app.router.add_get("/metrics", metrics)
        self.app.router.add_get("/healthz", healthz)
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> str:
        """Listen on ``host:port`` (0: any free port); raises :class:`MonitoringError` in one
        line when it cannot."""
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            why = exc.strerror or str(exc)
            raise MonitoringError(
                f"monitoring: cannot listen on {host}:{port} ({why}); set "
                "monitoring.port to a free port, or 0 for any"
            ) from None
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_daemon(
    daemon: Observed, config: MonitoringConfig, readers: Iterable[Reader] = ()
) -> MonitoringServer | None:
    """Serve a daemon's metrics (its own counters, then ``readers``' for what its kind adds)
    and health, as ``config`` says; None when monitoring is off. The URL is logged for the
    user (port 0 picks one)."""
    if not config.enabled:
        return None
    due = cadence(daemon.settings)

    def health() -> Health:
        return assess(facts(daemon), due)

    registry = registry_for([functools.partial(read_daemon, daemon, health), *readers])
    server = MonitoringServer(registry, health)
    url = await server.start(config.host, config.port)
    log.info("monitoring: %s/metrics and %s/healthz", url, url, extra=USER_EVENT)
    return server
