"""Running the local exchange and the paper daemon as real processes for end-to-end tests.

The exchange's market waits for the daemon's first subscription (``exchange.start_on``), so
how long a daemon takes to start — importing torch on a busy machine — never decides how much
of the replay it sees; a test that restarts the daemon pauses the market while it is down.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

from bot.store import Store
from tests.conftest import ROOT

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "WIFUSDT"]

CONFIG = """
[engine]
symbols = {symbols}
interval = "1h"
grace_ms = 15000

[data]
source = "csv"
path = "{data}"

[portfolio]
initial_cash = 100000.0
fee_bp = 5.5
slippage_bp = 1.0
rebalance_threshold = 0.01

[risk]
max_weight = 0.5
max_gross = 1.0
max_drawdown = 0.9

[store]
url = "sqlite:///{store}"

[venue]
target = "local"
reconnect_initial_s = 0.2
reconnect_max_s = 2.0
request_timeout_s = 5.0

[paper]
heartbeat_s = 5.0
until = "{until}"

[exchange]
port = {port}
speed = {speed}
start = "{start}"
seed = 11
bar_updates = 3

[exchange.faults]
{faults}

[[strategies]]
name = "momentum"
allocation = 0.5
params = {{ lookback = 24, top = 2, rebalance = "1d" }}

[[strategies]]
name = "ma_crossover"
allocation = 0.5
params = {{ fast = 5, slow = 20 }}
"""

ALL_FAULTS = """
drop_probability = 0.0008
duplicate_probability = 0.01
reorder_window = 3
delay_ms = 2
malformed_probability = 0.004
outage_at = "{outage_at}"
outage_bars = 150
rate_limit_every = 25
rate_limit_reset_ms = 150
http_error_every = 60
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(tmp: Path, data: Path, start: str, until: str, speed: float, faults: str) -> Path:
    instruments = tomllib.loads((ROOT / "config.toml").read_text())["instruments"]
    lines = [CONFIG.format(symbols=json.dumps(SYMBOLS), data=data, store=tmp / "bot.db",
                           until=until, port=free_port(), speed=speed, start=start,
                           faults=faults)]  # fmt: skip
    for symbol in SYMBOLS:
        spec = instruments[symbol]
        lines.append(f"[instruments.{symbol}]")
        lines += [f"{k} = {v}" for k, v in spec.items()]
    path = tmp / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def last_step(url: str) -> int:
    """The newest run's last processed step (0 before the daemon stored one)."""
    with Store(url) as store:
        runs = store.list_runs()
        return (runs[0]["last_step"] or 0) if runs else 0


def bot(config: Path, *args: str, log: Path) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def exchange_status(config: Path) -> dict:
    port = tomllib.loads(config.read_text())["exchange"]["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_local/status", timeout=10) as reply:
        return json.loads(reply.read())


def exchange_clock(config: Path, action: str) -> dict:
    """``pause`` or ``resume`` the exchange's market time; returns its status."""
    port = tomllib.loads(config.read_text())["exchange"]["port"]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_local/{action}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def wait_until(condition, what: str, timeout: float = 180.0, every: float = 0.1) -> None:
    """Poll ``condition`` until it holds; a generous deadline, for a busy machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(every)


def start_exchange(config: Path, log: Path) -> subprocess.Popen:
    process = bot(config, "exchange", log=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            exchange_status(config)
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"exchange exited: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("exchange did not come up")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
