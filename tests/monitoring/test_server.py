"""The monitoring server and its settings: it answers on 127.0.0.1 by default, a port in use
is one clear line (exit status 2 from the CLI, before the daemon touches its store or the
venue), a bad [monitoring] key or value is refused naming it, and it can be switched off."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from bot.cli.main import main
from bot.monitoring.health import Health
from bot.monitoring.metrics import registry_for
from bot.monitoring.server import MonitoringError, MonitoringServer
from bot.paper.daemon import PaperDaemon, StartupError
from tests.paper.test_daemon import settings

CONFIG = """
[engine]
symbols = ["AAAUSDT"]
[store]
url = "sqlite:///{store}"
[venue]
target = "local"
[exchange]
port = 1
[[strategies]]
name = "equal_weight"
[instruments.AAAUSDT]
qty_step = 0.01
[monitoring]
{monitoring}
"""


@pytest.fixture
def taken_port():
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def write_config(tmp_path: Path, monitoring: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(store=tmp_path / "bot.db", monitoring=monitoring))
    return path


async def test_it_serves_metrics_and_health_on_the_loopback_interface():
    state = {"health": Health(True, "ok: live")}
    registry = registry_for([lambda out: out.counter("bot_orders_total", "Orders", 7)])
    server = MonitoringServer(registry, lambda: state["health"])
    url = await server.start("127.0.0.1", 0)
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/metrics") as reply:
                assert reply.status == 200
                assert reply.headers["Content-Type"].startswith("text/plain; version=")
                assert "\nbot_orders_total 7.0\n" in await reply.text()
            async with http.get(f"{url}/healthz") as reply:
                assert (reply.status, await reply.text()) == (200, "ok: live\n")
            state["health"] = Health(False, "stream down since 2024-06-01 00:00:00 UTC")
            async with http.get(f"{url}/healthz") as reply:
                assert reply.status == 503
                assert await reply.text() == "stream down since 2024-06-01 00:00:00 UTC\n"
    finally:
        await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):  # stopped: nothing listens any more
        async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz"):
            pass


async def test_a_port_in_use_is_one_line(taken_port):
    server = MonitoringServer(registry_for([]), lambda: Health(True, "ok"))
    with pytest.raises(MonitoringError) as caught:
        await server.start("127.0.0.1", taken_port)
    message = str(caught.value)
    assert message.startswith(f"monitoring: cannot listen on 127.0.0.1:{taken_port} (")
    assert "monitoring.port" in message and "\n" not in message


async def test_a_daemon_whose_port_is_taken_stops_before_it_starts(tmp_path, taken_port):
    config = settings(tmp_path)
    config = config.model_copy(
        update={"monitoring": config.monitoring.model_copy(update={"port": taken_port})}
    )
    daemon = PaperDaemon(config)  # its venue (port 0) is never asked
    with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{taken_port}"):
        await asyncio.wait_for(daemon.run(), 30)
    assert not (tmp_path / "bot.db").exists()  # the store was not even opened


@pytest.mark.parametrize("enabled", [True, False])
async def test_monitoring_can_be_switched_off(tmp_path, caplog, enabled):
    config = settings(tmp_path, port=1)  # nothing listens: the daemon retries at start-up
    config = config.model_copy(
        update={"monitoring": config.monitoring.model_copy(update={"enabled": enabled})}
    )
    daemon = PaperDaemon(config)
    task = asyncio.create_task(daemon.run())
    deadline = time.monotonic() + 60
    while not any("venue unreachable" in r.message for r in caplog.records):  # past its start
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.02)
    assert (daemon.monitor is not None) is enabled
    daemon.stop.set()
    assert await asyncio.wait_for(task, 30) == ""


def test_the_cli_exits_2_when_the_port_is_taken(tmp_path, taken_port, capsys):
    config = write_config(tmp_path, f"port = {taken_port}")
    assert main(["--config", str(config), "paper"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bot: monitoring: cannot listen on 127.0.0.1:{taken_port} (")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ("prot = 9108", "unknown key 'monitoring.prot' (did you mean 'port'?)"),
        ("port = 70000", "monitoring.port: Input should be less than or equal to 65535"),
        ("step_slack_s = -1", "monitoring.step_slack_s: Input should be greater than or equal"),
        ('enabled = "sometimes"', "monitoring.enabled: Input should be a valid boolean"),
    ],
)
def test_a_bad_monitoring_setting_exits_2_naming_it(tmp_path, capsys, monitoring, message):
    config = write_config(tmp_path, monitoring)
    assert main(["--config", str(config), "paper"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bot: ") and message in err and err.count("\n") == 1
