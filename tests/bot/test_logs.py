"""A daemon's terminal shows user events and warnings; its log file keeps everything."""

from __future__ import annotations

import io
import logging
import logging.handlers
import sys
from collections.abc import Iterator

import pytest

from bot.logs import USER_EVENT, daemon_logging
from bot.redact import MASK, register_text_secrets

log = logging.getLogger("bot.test_logs")


@pytest.fixture
def console(monkeypatch) -> Iterator[io.StringIO]:
    """A terminal: the stderr handler ``logging.basicConfig`` gives a command."""
    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield terminal
    root.removeHandler(handler)


def test_the_terminal_shows_user_events_and_warnings_the_file_everything(console, tmp_path):
    file = tmp_path / "logs" / "bot.log"
    with daemon_logging(0, file):
        log.info("BTCUSDT funding: 1 spans missing")
        log.info("new paper run r1: trading", extra=USER_EVENT)
        log.warning("websocket down")
        log.debug("not even in the file")
    shown = console.getvalue()
    assert "spans missing" not in shown
    assert "new paper run r1: trading" in shown and "INFO" not in shown  # a sentence, timed
    assert "WARNING bot.test_logs: websocket down" in shown  # a warning keeps its origin
    kept = file.read_text()
    assert "INFO bot.test_logs: BTCUSDT funding: 1 spans missing" in kept
    assert "new paper run r1" in kept and "websocket down" in kept
    assert "not even" not in kept


def test_verbose_shows_routine_lines_and_twice_verbose_debug_lines(console, tmp_path):
    with daemon_logging(1, None):
        log.info("store open: sqlite:///bot.db")
        log.debug("a detail")
    with daemon_logging(2, None):
        log.debug("another detail")
    shown = console.getvalue()
    assert "INFO bot.test_logs: store open" in shown
    assert "a detail" not in shown and "DEBUG bot.test_logs: another detail" in shown


def test_the_set_up_is_undone_after_the_block(console, tmp_path):
    before = logging.getLogger("bot").level
    with daemon_logging(0, tmp_path / "bot.log"):
        pass
    log.warning("after")
    assert logging.getLogger("bot").level == before
    assert "WARNING bot.test_logs: after" in console.getvalue()  # the old format is back
    rotating = logging.handlers.RotatingFileHandler
    assert not [h for h in logging.getLogger().handlers if isinstance(h, rotating)]


def test_secrets_never_reach_the_file(console, tmp_path):
    secret = "hunter2-not-a-real-password"
    register_text_secrets(f"postgresql://bot:{secret}@db/bot")
    file = tmp_path / "bot.log"
    with daemon_logging(0, file):
        log.info("store open: postgresql://bot:%s@db/bot", secret)
    kept = file.read_text()
    assert secret not in kept and MASK in kept
