"""A daemon runs for months: what it keeps per step for the latency benchmark is bounded."""

from bot.config import load_settings
from bot.core.execution import LATENCY_SAMPLES
from bot.paper.daemon import PaperDaemon
from tests.conftest import ROOT


def test_the_daemon_keeps_only_the_most_recent_latency_samples():
    daemon = PaperDaemon(load_settings(ROOT / "config.toml"))
    for sample in range(LATENCY_SAMPLES + 10):
        daemon.latencies_ns.append(sample)
    assert len(daemon.latencies_ns) == LATENCY_SAMPLES
    assert daemon.latencies_ns[0] == 10 and daemon.latencies_ns[-1] == LATENCY_SAMPLES + 9
