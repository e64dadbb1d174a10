"""The replay benchmark keeps working (a small run of our engines; the peers need bench extras)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_replay_benchmark_runs_and_reports_consistent_results(tmp_path):
    out = tmp_path / "replay.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "replay.py"), "--bars", "20000", "--peers", "none",
         "--real", str(tmp_path / "absent"), "--json", str(out)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "(b) skipped: no real 1m data" in done.stdout
    full, bare = json.loads(out.read_text())["ma_crossover"]
    assert full["engine"] == "ours (full)" and bare["engine"] == "ours (bare)"
    assert full["bars"] == bare["bars"] == 20_000
    assert full["trades"] == bare["trades"] > 100
    assert full["final_equity"] == bare["final_equity"]
    assert full["stored_rows"]["fills"] == full["trades"]
    assert full["stored_rows"]["orders"] == full["trades"]
