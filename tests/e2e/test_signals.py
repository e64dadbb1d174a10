"""SIGTERM and SIGINT stop the daemon cleanly: the step in progress finishes, the journal is
flushed, the run is marked stopped, and the process exits 0 — also while it waits on a venue
that does not answer."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import threading
import time

import pytest

from bot.config import load_settings
from bot.core.timeutil import HOUR_MS, iso, to_ms
from bot.store import Store
from tests.e2e.harness import bot, start_exchange, stop, write_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_daemon_cleanly(tmp_path, linear_dir, sig):
    start = to_ms("2024-03-01")
    first, until = (iso(t).replace(" ", "T") for t in (start, start + 5000 * HOUR_MS))
    config = write_config(tmp_path, linear_dir, first, until, 3600 / 0.05, "")
    url = load_settings(config).store.url
    exchange = start_exchange(config, tmp_path / "exchange.log")
    try:
        daemon = bot(config, "paper", "--new", log=tmp_path / "daemon.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            with Store(url) as store:
                runs = store.list_runs()
                if runs and (runs[0]["last_step"] or 0) > runs[0]["data_start"] + 20 * HOUR_MS:
                    break
        daemon.send_signal(sig)
        assert daemon.wait(15) == 0, (tmp_path / "daemon.log").read_text()[-2000:]
    finally:
        stop(exchange)
    log = (tmp_path / "daemon.log").read_text()
    assert f"{sig.name} received" in log and "stopped cleanly" in log
    with Store(url) as store:
        (run,) = store.list_runs()
        assert run["status"] == "stopped"
        equity = store.equity(run["id"])
        assert equity and equity[-1]["time"] < run["last_step"]  # flushed up to the last step


def test_sigterm_while_the_venue_does_not_answer_stops_at_once(tmp_path, linear_dir):
    """A venue that accepts connections and never answers: the daemon's first request would
    hang for its whole 30 s timeout, then back off; SIGTERM must not wait for either."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    connected = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                accepted.append(conn)  # held open, never answered
                connected.set()

    threading.Thread(target=accept, daemon=True).start()
    start = to_ms("2024-03-01")
    first, until = (iso(t).replace(" ", "T") for t in (start, start + 50 * HOUR_MS))
    config = write_config(tmp_path, linear_dir, first, until, 3600.0, "")
    text = config.read_text().replace("request_timeout_s = 5.0", "request_timeout_s = 30.0")
    config.write_text(re.sub(r"(?m)^port = \d+$", f"port = {port}", text))
    try:
        daemon = bot(config, "paper", "--new", log=tmp_path / "daemon.log")
        assert connected.wait(120), (tmp_path / "daemon.log").read_text()[-2000:]
        daemon.send_signal(signal.SIGTERM)
        began = time.monotonic()
        assert daemon.wait(60) == 0, (tmp_path / "daemon.log").read_text()[-2000:]
        waited = time.monotonic() - began
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert waited < 10, f"took {waited:.1f} s to stop; the request timeout is 30 s"
