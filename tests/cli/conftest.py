"""The CLI tests' shared working folder: a small config and a month of synthetic CSV bars."""

from pathlib import Path

import pytest

from bot.feeds.synthetic import synthetic_panel
from tests.barfiles import write_csv

CONFIG = """
[engine]
symbols = ["AAAUSDT", "BBBUSDT"]
interval = "1h"
[data]
source = "store"
funding = false
[store]
url = "sqlite:///state/bot.db"
[[strategies]]
name = "momentum"
params = {{ lookback = 24, top = 1, rebalance = "1d" }}
[instruments.AAAUSDT]
qty_step = 0.01
[instruments.BBBUSDT]
qty_step = 0.01
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text(CONFIG.format())
    panel = synthetic_panel(("AAAUSDT", "BBBUSDT"), "1h", 24 * 30, seed=3, volatility=0.01)
    write_csv(tmp_path / "csv", panel)
    return tmp_path
