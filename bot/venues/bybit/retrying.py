"""The I/O half of the REST retry policy, shared by the public and the private clients.

What to retry and how long to wait is decided by
:func:`~bot.venues.bybit.rest_protocol.retry_delay`; this module turns aiohttp's failures into
:class:`~bot.venues.bybit.rest_protocol.TransportError` and performs a wait the same way for
every client: counted, logged, and cut short by the stop event.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import aiohttp

from bot.venues.bybit.rest_protocol import TransportError, error_kind
from bot.venues.bybit.stopping import until_stopped


def transport_error(exc: BaseException, target: str) -> TransportError:
    """A :class:`TransportError` for aiohttp's (or asyncio's) failure ``exc``, chained to it."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    error = TransportError(reason, target)
    error.__cause__ = exc
    return error


def never_sent(exc: BaseException) -> bool:
    """Whether ``exc`` proves the request never left: the connection could not be opened.
    Anything else (a timeout, a reset, a disconnect) may strike after the server read it."""
    return isinstance(exc, aiohttp.ClientConnectorError)


async def back_off(
    delay: float,
    attempt: int,
    max_retries: int,
    error: BaseException,
    stats: Counter[str],
    stop: asyncio.Event | None,
    log: logging.Logger,
) -> None:
    """Count retry ``attempt``, say why, and wait ``delay`` seconds (or until ``stop``:
    then :class:`~bot.venues.bybit.stopping.Stopping` is raised)."""
    stats["retries"] += 1
    stats[f"retries.{error_kind(error)}"] += 1
    log.warning("retry %d of %d in %.2f s: %s", attempt, max_retries, delay, error)
    await until_stopped(asyncio.sleep(delay), stop)
