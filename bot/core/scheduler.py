"""Jobs on the engine's clock, with APScheduler's cron and interval triggers.

APScheduler's own schedulers sleep on the wall clock, which a replay does not follow. We keep
its triggers (the tested part: cron fields, intervals, time zones) and evaluate them on the
engine's clock instead. A job due at instant ``τ`` runs after the engine has processed every bar
that closed at or before ``τ`` and before any bar that closes after it — so it sees the same
state, and runs at the same simulated instants, in a replay as it would live.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.timeutil import interval_ms

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _to_dt(time_ms: int) -> datetime:
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC)


def _to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def parse_trigger(spec: str) -> BaseTrigger:
    """``"every 1h"`` (aligned to the epoch, so whole hours) or ``"cron 0 0 * * *"`` (UTC)."""
    text = spec.strip()
    if match := re.fullmatch(r"every\s+(\S+)", text):
        seconds = interval_ms(match.group(1)) / 1000
        return IntervalTrigger(seconds=seconds, start_date=_EPOCH, timezone=UTC)
    if match := re.fullmatch(r"cron\s+(.+)", text):
        return CronTrigger.from_crontab(match.group(1), timezone=UTC)
    raise ValueError(f"schedule {spec!r}: write 'every <interval>' or 'cron <5 crontab fields>'")


@dataclass
class _Job:
    name: str
    trigger: BaseTrigger
    func: Callable[[int], None]
    affects_decisions: bool = False
    next_fire: int | None = None
    fired: list[int] = field(default_factory=list)


class ClockScheduler:
    """Jobs whose fire times come from APScheduler triggers, run when the engine says so."""

    def __init__(self, keep_history: bool = False) -> None:
        self._jobs: list[_Job] = []
        self._keep_history = keep_history
        self._next: int | None = None  # cached earliest fire time over all jobs
        #: bumped whenever a job that changes later decisions (a model retrain) has run
        self.decision_epoch = 0

    def add_job(
        self,
        name: str,
        trigger: BaseTrigger | str,
        func: Callable[[int], None],
        affects_decisions: bool = False,
    ) -> None:
        """Register ``func(fire_time_ms)``; call :meth:`start` before the first bar.
        ``affects_decisions``: the job changes what strategies decide afterwards (the engine
        then recomputes decisions it had prepared for later bars)."""
        if isinstance(trigger, str):
            trigger = parse_trigger(trigger)
        self._jobs.append(_Job(name, trigger, func, affects_decisions))

    def start(self, now_ms: int) -> None:
        """Compute each job's first fire time at or after ``now_ms``."""
        for job in self._jobs:
            fire = job.trigger.get_next_fire_time(None, _to_dt(now_ms))
            job.next_fire = None if fire is None else _to_ms(fire)
        self._refresh()

    def _refresh(self) -> None:
        times = [j.next_fire for j in self._jobs if j.next_fire is not None]
        self._next = min(times) if times else None

    def next_fire_time(self) -> int | None:
        return self._next

    def next_decision_change(self) -> int | None:
        """When the next job that changes later decisions (a retrain) fires, if any: decisions
        computed ahead of it for later bars would only be thrown away."""
        times = [j.next_fire for j in self._jobs if j.affects_decisions and j.next_fire is not None]
        return min(times) if times else None

    def fire_due(self, before_ms: int, inclusive: bool = False) -> int:
        """Run, in time order, every job due strictly before ``before_ms`` (or at it)."""
        fired = 0
        while (due := self.next_fire_time()) is not None and (
            due < before_ms or (inclusive and due == before_ms)
        ):
            for job in self._jobs:
                if job.next_fire != due:
                    continue
                if self._keep_history:
                    job.fired.append(due)
                job.func(due)
                fired += 1
                self.decision_epoch += job.affects_decisions
                nxt = job.trigger.get_next_fire_time(_to_dt(due), _to_dt(due + 1))
                job.next_fire = None if nxt is None else _to_ms(nxt)
            self._refresh()
        return fired

    def history(self, name: str) -> list[int]:
        """Fire times of a job so far (only with ``keep_history=True``)."""
        return next(j.fired for j in self._jobs if j.name == name)
