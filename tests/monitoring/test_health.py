"""The /healthz rule: each reason for a 503, the order they are checked in, recovery to 200,
and the step cadence derived from the settings (the local exchange's speed included)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.config import parse_settings
from bot.monitoring.health import Cadence, Facts, assess, cadence

NOW = 1_717_200_000_000  # 2024-06-01 00:00:00 UTC
EVERY_MINUTE = Cadence(step_ms=60_000, grace_ms=5_000, slack_ms=30_000)  # limit 95 s


def trading(**changes) -> Facts:
    """A daemon live for an hour whose last step was 2 s ago and whose stream is up."""
    base = Facts(now_ms=NOW, stopping=False, fault=None, halted=None, stream_up=True,
                 last_message_ms=NOW - 300, last_step_ms=NOW - 2_000,
                 live_since_ms=NOW - 3_600_000)  # fmt: skip
    return replace(base, **changes)


def test_a_live_daemon_with_a_recent_step_is_healthy():
    health = assess(trading(), EVERY_MINUTE)
    assert (health.status, health.reason) == (200, "ok: live, last step 2 s ago (due every 60 s)")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"fault": "database file deleted"}, "store fault: database file deleted"),
        ({"halted": "max drawdown breached: 51.00%"}, "halted: max drawdown breached: 51.00%"),
        ({"stopping": True}, "stopping"),
        ({"live_since_ms": None, "last_step_ms": None}, "starting: catching up"),
        ({"stream_up": False, "last_message_ms": NOW - 12_000},
         "stream down since 2024-05-31 23:59:48 UTC (last message 12 s ago)"),
        ({"stream_up": False, "last_message_ms": None}, "stream down: no message received yet"),
        ({"last_step_ms": NOW - 312_000},
         "no step for 312 s (expected every 60 s + 5 s grace + 30 s slack)"),
        ({"last_step_ms": None, "live_since_ms": NOW - 100_000},
         "no step for 100 s (expected every 60 s + 5 s grace + 30 s slack)"),
    ],
)  # fmt: skip
def test_each_problem_is_a_503_naming_it(changes, reason):
    health = assess(trading(**changes), EVERY_MINUTE)
    assert (health.status, health.reason) == (503, reason)


def test_the_worst_problem_names_the_answer():
    everything = trading(fault="lease lost", halted="by hand", stopping=True, stream_up=False,
                         last_step_ms=NOW - 10_000_000)  # fmt: skip
    assert assess(everything, EVERY_MINUTE).reason == "store fault: lease lost"
    assert assess(replace(everything, fault=None), EVERY_MINUTE).reason == "halted: by hand"
    no_stream = replace(everything, fault=None, halted=None, stopping=False)
    assert assess(no_stream, EVERY_MINUTE).reason.startswith("stream down since ")


def test_a_step_may_be_late_by_the_interval_grace_and_slack_and_no_more():
    assert assess(trading(last_step_ms=NOW - 95_000), EVERY_MINUTE).ok
    assert not assess(trading(last_step_ms=NOW - 95_001), EVERY_MINUTE).ok
    # a daemon that just went live is given a whole period for its first step
    fresh = trading(last_step_ms=None, live_since_ms=NOW - 1_000)
    assert assess(fresh, EVERY_MINUTE).reason == "ok: live, last step none yet (due every 60 s)"
    # an old step from the catch-up before going live does not count against it
    assert assess(trading(last_step_ms=NOW - 10**9, live_since_ms=NOW - 5_000), EVERY_MINUTE).ok


def test_it_recovers_once_the_stream_is_back_and_a_step_comes():
    seen = [
        trading(),
        trading(stream_up=False, last_message_ms=NOW - 1_000),  # the connection dropped
        trading(now_ms=NOW + 200_000, stream_up=False),  # still down, 200 s later
        trading(now_ms=NOW + 201_000),  # reconnected; the last step is 203 s old
        trading(now_ms=NOW + 202_000, last_step_ms=NOW + 201_500),  # the catch-up stepped
    ]
    assert [assess(f, EVERY_MINUTE).status for f in seen] == [200, 503, 503, 503, 200]
    assert assess(seen[3], EVERY_MINUTE).reason.startswith("no step for 203 s")


def settings(target: str, speed: float = 3600.0, interval: str = "1h"):
    return parse_settings(
        {
            "engine": {"symbols": ["BTCUSDT"], "interval": interval, "grace_ms": 2_000},
            "strategies": [{"name": "equal_weight"}],
            "instruments": {"BTCUSDT": {"qty_step": 0.001}},
            "venue": {"target": target},
            "exchange": {"speed": speed},
            "monitoring": {"step_slack_s": 7.5},
        },
        "test",
    )


def test_the_cadence_follows_the_interval_the_market_speed_grace_and_slack():
    assert cadence(settings("bybit")) == Cadence(3_600_000, 2_000, 7_500)
    # the local exchange replays an hour per wall second: a step is due every second
    assert cadence(settings("local")) == Cadence(1_000, 2_000, 7_500)
    assert cadence(settings("local", speed=3600 / 0.05, interval="15m")).step_ms == 12.5
    late = trading(last_step_ms=NOW - 11_000)
    assert assess(late, cadence(settings("bybit"))).ok
    assert assess(late, cadence(settings("local"))).reason == (
        "no step for 11 s (expected every 1 s + 2 s grace + 7.5 s slack)"
    )
