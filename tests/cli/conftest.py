"""The CLI tests' shared working folder: a small config and a month of synthetic CSV bars."""

from pathlib import Path

import pytest

from bot.feeds.synthetic import synthetic_panel

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
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    for s, symbol in enumerate(panel.symbols):
        rows = ["timestamp_ms,open,high,low,close,volume"] + [
            ",".join([str(int(t)), *(repr(float(v)) for v in panel.values[i, s])])
            for i, t in enumerate(panel.starts)
        ]
        (csv_dir / f"{symbol}.csv").write_text("\n".join(rows) + "\n")
    return tmp_path
