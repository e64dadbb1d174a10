"""`bot data fetch` against the local exchange: fills the store, and a rerun adds nothing."""

from __future__ import annotations

import pytest

from bot.cli.main import main
from bot.store import Store
from tests.e2e.harness import free_port, start_exchange, stop

pytestmark = pytest.mark.slow

CONFIG = """
[engine]
symbols = ["AAAUSDT", "BBBUSDT"]
interval = "1h"
[data]
source = "synthetic"
synthetic_bars = 2000
[store]
url = "sqlite:///{store}"
[venue]
target = "local"
[exchange]
port = {port}
speed = 3600.0
start = "2024-03-01"
source = "synthetic"
[[strategies]]
name = "equal_weight"
[instruments.AAAUSDT]
qty_step = 0.01
[instruments.BBBUSDT]
qty_step = 0.01
"""


def test_fetch_fills_the_store_idempotently_and_resumes(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(store=tmp_path / "bot.db", port=free_port()))
    exchange = start_exchange(config, tmp_path / "exchange.log")
    fetch = ["--config", str(config), "data", "fetch", "--local", "--symbols", "AAAUSDT,BBBUSDT",
             "--interval", "1h", "--start", "2024-01-01", "--end", "2024-02-01"]  # fmt: skip
    try:
        assert main(fetch) == 0
        first = capsys.readouterr().out
        with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
            bars = store.load_klines("AAAUSDT", "1h")
            assert len(bars) == 31 * 24  # every hour of January
            with store.engine.begin() as conn:  # lose a week in the middle, as after a crash
                lost = conn.exec_driver_sql(
                    "DELETE FROM klines WHERE symbol = 'AAAUSDT' AND start >= 1705000000000 "
                    "AND start < 1705600000000"
                ).rowcount
            assert lost > 100
        assert main(fetch) == 0
        second = capsys.readouterr().out
    finally:
        stop(exchange)
    assert "744" in first  # fetched and new for each symbol
    rows = {line.split()[0]: line.split()[2:] for line in second.splitlines()[2:]}
    assert rows["BBBUSDT"][-1] == "0"  # nothing new where nothing was missing
    assert rows["AAAUSDT"][-1] == str(lost)  # exactly the lost week came back
    with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        assert len(store.load_klines("AAAUSDT", "1h")) == 31 * 24
