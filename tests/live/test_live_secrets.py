"""The API key and secret of a live run appear nowhere: not in DEBUG logs, stdout/stderr,
exception texts, the SQLite database or its WAL — raw, URL-encoded or base64 — even when
the exchange answers 10004 with a message that echoes the signed string (key included)."""

from __future__ import annotations

import asyncio
import base64
import logging
import urllib.parse
from pathlib import Path

import pytest

from bot.exchange.server import ExchangeServer
from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.private_rest import PrivateRest
from bot.venues.bybit.rest_protocol import BybitAPIError
from tests.live.test_live_daemon import daemon_for, settings

MARKER_KEY = "mArKeRkEy0123456789"
MARKER_SECRET = "mArKeRsEcReT9876543210"


def forms(marker: str) -> list[bytes]:
    """The marker as it could leak: raw, URL-encoded, and base64 at each alignment (a
    substring of a larger base64 text holds one of these)."""
    raw = marker.encode()
    out = [raw, urllib.parse.quote(marker).encode(), urllib.parse.quote_plus(marker).encode()]
    for shift in range(3):
        encoded = base64.b64encode(b"x" * shift + raw)
        out.append(encoded[4 if shift else 0 : -4])  # the part that only the marker decides
    return [f for f in out if len(f) >= 8]


def leaks(blob: bytes) -> list[str]:
    return [f"{m[:4]}… as {form!r}" for m in (MARKER_KEY, MARKER_SECRET) for form in forms(m)
            if form in blob]  # fmt: skip


def test_the_leak_finder_finds_every_form():
    text = f"GET?k={MARKER_KEY}&s={urllib.parse.quote(MARKER_SECRET)}"
    assert leaks(text.encode()) and leaks(base64.b64encode(b"ab" + text.encode()))


@pytest.mark.slow
async def test_keys_leak_nowhere_in_logs_output_errors_or_the_database(
    tmp_path: Path, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="bot")  # a CLI test may have left "bot" at INFO
    config = settings(tmp_path, until_hours=8, lost_response_probability=0.2)
    accounts = [{"name": "bot", "api_key": MARKER_KEY, "api_secret": MARKER_SECRET,
                 "balance": 100_000.0}]  # fmt: skip
    config = config.model_copy(update={"exchange": config.exchange.model_copy(
        update={"accounts": config.exchange.model_validate(
            {**config.exchange.model_dump(), "accounts": accounts}).accounts})})  # fmt: skip
    errors: list[str] = []
    async with ExchangeServer(config) as server:
        daemon = daemon_for(config, server, new_run=True)
        daemon.credentials = Credentials(MARKER_KEY, MARKER_SECRET)
        run_id = await asyncio.wait_for(daemon.run(), 300)
        assert run_id
        # a wrong secret: the exchange answers 10004 echoing the signed string, key included
        async with PrivateRest(server.rest_url, Credentials(MARKER_KEY, "wrong-secret-0000"),
                               max_retries=0) as bad:  # fmt: skip
            for _ in range(3):
                try:
                    await bad.wallet()
                except BybitAPIError as exc:
                    errors.append(f"{type(exc).__name__}: {exc!s} {exc!r}")
                    logging.getLogger("bot.test").exception("forced 10004")
    assert len(errors) == 3 and all("10004" in e for e in errors), errors
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records).encode()
    out, err = capfd.readouterr()
    assert not leaks(logged), leaks(logged)
    assert not leaks((out + err).encode())
    assert not leaks("\n".join(errors).encode())
    db = tmp_path / "bot.db"
    for path in (db, db.with_name("bot.db-wal")):
        if path.exists():
            assert not leaks(path.read_bytes()), f"{path.name}: {leaks(path.read_bytes())}"
    assert db.exists()
