"""What can go wrong with the database, said in one line, and the bounded retry around it.

A store fault must never surface as a traceback or freeze a daemon: opening a database that is
read-only, unwritable, corrupt or unreachable is a :class:`StoreOpenError` naming the URL
(redacted) and the cause; a database locked by another process is retried with backoff for a
bounded time, with a log line per wait, and then reported as :class:`StoreUnavailableError`; a
database that vanished or was replaced under a running process is :class:`StoreGoneError`. The
daemon stops cleanly on any of them (see ``bot.paper.daemon``), the CLI exits with status 2
(could not open) or 3 (failed while running).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

log = logging.getLogger("bot.store")

T = TypeVar("T")

#: Phrases of the drivers' errors that mean "another connection holds the lock" or "the
#: connection went away": waiting can fix both.
_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "could not obtain lock",
    "deadlock detected",
    "could not serialize access",
    "server closed the connection",
    "connection refused",
    "terminating connection",
    "connection is closed",
    "ssl connection has been closed",
)


class StoreError(Exception):
    """A store problem, phrased as one line that names the database (password-free)."""


class StoreOpenError(StoreError):
    """The database cannot be opened or brought to the current schema."""


class StoreUnavailableError(StoreError):
    """The database stayed locked or unreachable for longer than the retry budget."""


class StoreGoneError(StoreError):
    """The database a process was writing to was deleted or replaced under it."""


class LeaseHeldError(StoreError):
    """Another live process drives the run."""


class LeaseLostError(StoreError):
    """This process no longer holds the lease of its run (another one took it over)."""


def cause(exc: BaseException) -> str:
    """The driver's own first line for an exception (what a person needs to act on)."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return (lines[0] if lines else "") or type(original).__name__


def is_transient(exc: BaseException) -> bool:
    """Whether waiting may fix the failure: a lock held elsewhere, a dropped connection."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return False
    text = cause(exc).lower()
    return any(phrase in text for phrase in _TRANSIENT)


class Retrying:
    """Runs database operations, retrying transient failures with backoff for up to
    ``budget_s`` seconds in all, each wait logged (the caller is never the event loop: the
    waits are plain sleeps). An operational failure waiting cannot fix (a read-only file, a
    full disk) is :class:`StoreUnavailableError` at once; other errors (a constraint) are
    raised as they are."""

    def __init__(self, shown_url: str, budget_s: float, first_wait_s: float = 0.25) -> None:
        self.shown_url = shown_url
        self.budget_s = budget_s
        self.first_wait_s = first_wait_s
        # One write of this process at a time. SQLite admits one writer; a second one of the
        # same process waiting in SQLite's busy handler sleeps in steps of 1 to 25 ms, while a
        # thread waiting here wakes the moment the first commits: the live daemon's
        # write-ahead of an order queues behind the step's journal flush, not behind a sleep.
        # Re-entrant: an operation may run another on the same thread.
        self._one_writer = threading.RLock()

    def __call__(self, operation: Callable[[], T], what: str) -> T:
        began = time.monotonic()
        wait = self.first_wait_s
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._one_writer:
                    return operation()
            except sa.exc.DBAPIError as exc:
                if not is_transient(exc):
                    if isinstance(exc, sa.exc.OperationalError):  # read-only, disk full, I/O
                        raise StoreUnavailableError(
                            f"store {self.shown_url}: {what} failed: {cause(exc)}"
                        ) from None
                    raise
                waited = time.monotonic() - began
                if waited + wait > self.budget_s:
                    raise StoreUnavailableError(
                        f"store {self.shown_url}: {what} failed for {waited:.0f} s "
                        f"({cause(exc)}); giving up"
                    ) from None
                log.warning(
                    "store %s: %s: %s; retry %d in %.1f s (giving up after %.0f s)",
                    self.shown_url, what, cause(exc), attempt, wait, self.budget_s,
                )  # fmt: skip
                time.sleep(wait)
                wait = min(wait * 2, 8.0)
