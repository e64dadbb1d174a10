"""A strategy written outside the repository, installed as its own package, runs by name."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

CONFIG = """
[engine]
symbols = ["AAAUSDT", "BBBUSDT"]
interval = "1h"
[data]
source = "synthetic"
synthetic_bars = 600
[[strategies]]
name = "equal_weight"
[instruments.AAAUSDT]
qty_step = 0.01
[instruments.BBBUSDT]
qty_step = 0.01
"""


def test_the_template_installs_as_a_plugin_and_backtests_by_entry_point_name(tmp_path):
    plugin = tmp_path / "my-strategy"
    shutil.copytree(ROOT / "strategies" / "template", plugin)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(plugin)],
        check=True,
    )  # fmt: skip
    assert list(site.glob("my_strategy-*.dist-info/entry_points.txt"))
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "backtest", "--no-store",
         "--no-progress", "--strategy", "my_trend", "--param", "length=12", "--json", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["strategies"] == ["my_trend"]
    assert result["counts"]["decisions"] > 0 and result["counts"]["fills"] > 0
