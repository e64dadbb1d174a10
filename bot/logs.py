"""What a daemon's terminal shows, and where the rest of its log goes.

A daemon runs for months and its terminal is read by a person: it shows one line per event that
person acts on or wants to see (a run started or resumed, a status line, a correction, a stop,
every warning) and nothing routine. Routine lines (each funding fetch, each store open, each
subscription) stay at INFO, so nothing is lost: they go to a rotating log file
(``[log] file``), and ``-v`` shows them on the terminal too.

A log call marks a user event with ``extra=USER_EVENT``; the console handler lets those and
warnings through. Only the handler the command itself installed is filtered: a test harness's
capturing handlers keep seeing everything.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

from bot.redact import install_log_redaction

#: ``extra=`` of a log call whose line the user should see on the terminal.
USER_EVENT = {"user_event": True}

#: The format of the log file and of ``-v`` lines: when, how bad, which part, what.
DETAILED = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def is_user_event(record: logging.LogRecord) -> bool:
    return bool(getattr(record, "user_event", False))


class _UserEvents(logging.Filter):
    """Passes user events and warnings; drops routine lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or is_user_event(record)


class _ConsoleFormat(logging.Formatter):
    """User events read as sentences with a time; anything else keeps its level and origin,
    because a warning's source is what the user needs to act on it."""

    def __init__(self) -> None:
        super().__init__(DETAILED)
        self._event = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if is_user_event(record) and record.levelno < logging.WARNING:
            return self._event.format(record)
        return super().format(record)


def _console_handlers() -> list[logging.Handler]:
    """The terminal handler ``logging.basicConfig`` installed for the command: a plain
    StreamHandler (a test harness's capturing handlers subclass it, and file handlers too)."""
    return [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]


@contextlib.contextmanager
def daemon_logging(
    verbose: int, file: Path | None, *, max_mb: float = 20.0, keep: int = 5
) -> Iterator[None]:
    """Route a daemon's log for the length of the block: user events and warnings to the
    terminal (everything with ``-v``, debug lines too with ``-vv``), everything at INFO and up
    to ``file`` (rotated at ``max_mb``, ``keep`` old files). Restores the previous set-up after,
    so in-process callers (tests) do not inherit it."""
    bot_log = logging.getLogger("bot")
    previous_level = bot_log.level
    bot_log.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    console = _console_handlers()
    filters: list[tuple[logging.Handler, logging.Filter, logging.Formatter | None]] = []
    if verbose == 0:
        for handler in console:
            only_events = _UserEvents()
            handler.addFilter(only_events)
            filters.append((handler, only_events, handler.formatter))
            handler.setFormatter(_ConsoleFormat())
    to_file: logging.Handler | None = None
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.handlers.RotatingFileHandler(
            file, maxBytes=int(max_mb * 1024 * 1024), backupCount=keep, encoding="utf-8"
        )
        to_file.setFormatter(logging.Formatter(DETAILED))
        logging.getLogger().addHandler(to_file)
        install_log_redaction()  # the file gets the secret filter every handler has
    try:
        yield
    finally:
        if to_file is not None:
            logging.getLogger().removeHandler(to_file)
            to_file.close()
        for handler, only_events, formatter in filters:
            handler.removeFilter(only_events)
            handler.setFormatter(formatter)
        bot_log.setLevel(previous_level)
