"""Waiting for the venue without outliving a request to stop.

A daemon told to stop (SIGTERM) while the venue is unreachable must not sit out a connect
timeout or a backoff of tens of seconds first: every wait on the network goes through
:func:`until_stopped`, which gives up the moment the stop event is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Stopping(Exception):  # noqa: N818 - not an error: the owner asked to stop
    """Work given up because the stop event was set."""


async def until_stopped(work: Awaitable[T], stop: asyncio.Event | None) -> T:
    """Await ``work``, unless ``stop`` is (or becomes) set first: then cancel it and raise
    :class:`Stopping`. Without a stop event this is a plain ``await``."""
    if stop is None:
        return await work
    task = asyncio.ensure_future(work)
    if stop.is_set():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise Stopping("stopping")
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise Stopping("stopping")
