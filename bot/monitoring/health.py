"""The health rule behind ``/healthz``: a pure function of a few facts, so each answer is a test.

A daemon is healthy when it trades: its run started, nothing halted it, its store works, its
stream is connected and its last step is recent. "Recent" is not a constant: a step is due
every interval of *market* time, which on the local exchange passes ``exchange.speed`` times
faster than the wall clock the daemon waits on, and the barrier may hold a step back for
``engine.grace_ms`` more; ``monitoring.step_slack_s`` is the tolerance on top (REST catch-up,
a slow step, a busy machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.config import Settings
from bot.core.timeutil import interval_ms


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often a step is due on the daemon's wall clock, and how late it may come."""

    step_ms: float  # wall ms between steps: the interval over the market clock's speed
    grace_ms: float  # the barrier's wait for late symbols (wall ms)
    slack_ms: float  # tolerance beyond both

    @property
    def limit_ms(self) -> float:
        return self.step_ms + self.grace_ms + self.slack_ms

    def describe(self) -> str:
        return (
            f"expected every {seconds(self.step_ms)} s + {seconds(self.grace_ms)} s grace "
            f"+ {seconds(self.slack_ms)} s slack"
        )


def market_speed(settings: Settings) -> float:
    """Market seconds per wall second of the venue the daemon streams: the local exchange
    replays history at ``exchange.speed``; Bybit's clock is the wall's."""
    return settings.exchange.speed if settings.venue.target == "local" else 1.0


def cadence(settings: Settings) -> Cadence:
    """The daemon's step cadence from its settings (interval, venue speed, grace, slack)."""
    return Cadence(
        step_ms=interval_ms(settings.engine.interval) / market_speed(settings),
        grace_ms=float(settings.engine.grace_ms),
        slack_ms=settings.monitoring.step_slack_s * 1000.0,
    )


@dataclass(frozen=True, slots=True)
class Facts:
    """What the answer depends on, read from the daemon at the moment of the request.

    Times are the daemon's wall clock, epoch ms."""

    now_ms: int
    stopping: bool
    fault: str | None  # a store fault that stops the daemon
    halted: str | None  # why the run decides no more
    stream_up: bool
    last_message_ms: int | None  # when the stream last received a message
    last_step_ms: int | None  # when the last step was processed
    live_since_ms: int | None  # when the daemon went live (None: still starting up)


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    reason: str  # the body of the answer: "ok: ..." or what is wrong

    @property
    def status(self) -> int:
        return 200 if self.ok else 503


def assess(facts: Facts, due: Cadence) -> Health:
    """The daemon's health; the first problem found names the answer, worst first."""
    if facts.fault is not None:
        return Health(False, f"store fault: {facts.fault}")
    if facts.halted is not None:
        return Health(False, f"halted: {facts.halted}")
    if facts.stopping:
        return Health(False, "stopping")
    if facts.live_since_ms is None:
        return Health(False, "starting: catching up")
    if not facts.stream_up:
        if facts.last_message_ms is None:
            return Health(False, "stream down: no message received yet")
        quiet = facts.now_ms - facts.last_message_ms
        return Health(
            False,
            f"stream down since {clock_time(facts.last_message_ms)} "
            f"(last message {seconds(quiet)} s ago)",
        )
    since = max(facts.last_step_ms or 0, facts.live_since_ms)
    age = facts.now_ms - since
    if age > due.limit_ms:
        return Health(False, f"no step for {seconds(age)} s ({due.describe()})")
    last = "none yet" if facts.last_step_ms is None else f"{seconds(age)} s ago"
    return Health(True, f"ok: live, last step {last} (due every {seconds(due.step_ms)} s)")


def seconds(ms: float) -> str:
    """Milliseconds as seconds, as precise as a reader needs: 312, 5, 0.05."""
    value = ms / 1000.0
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.3g}"


def clock_time(ms: int) -> str:
    """A wall time to the second, UTC."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
