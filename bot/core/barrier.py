"""The multi-asset barrier: one decision per step, when every symbol's bar has closed.

Pure logic, no I/O: feed it closed bars as they arrive (in any order across symbols, in order
within a symbol) and clock ticks; it releases aligned rows. Step ``t`` is released when

* every symbol has delivered bar ``t`` or already a later bar (a known gap: stale at ``t``), or
* the grace period has passed since the first bar of ``t`` arrived; the missing symbols are
  then marked stale. The wait starts at the first arrival, not at the bar's close, so bars
  backfilled after an outage (all arriving long after their close) still meet each other; and
  a step with no bar at all is never released on time alone — a feed that is down entirely
  must backfill rather than let the strategy decide on nothing.

A bar for an already released step is *late*: it is returned for the buffer to patch in place
(decisions already made are not revisited). Duplicates are dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bot.core.events import FIELDS, Bar, Panel


@dataclass
class BarrierOutput:
    rows: Panel | None = None
    late: list[Bar] = field(default_factory=list)


class Barrier:
    def __init__(
        self,
        symbols: tuple[str, ...],
        interval_ms: int,
        grace_ms: int,
        resume_after: int | None = None,
    ) -> None:
        """``resume_after``: start of the last step already decided (a restarted daemon);
        bars up to it are late, and the next step is the one after it."""
        self.symbols = symbols
        self.interval_ms = interval_ms
        self.grace_ms = grace_ms
        self._index = {s: i for i, s in enumerate(symbols)}
        self._waiting: dict[int, dict[int, Bar]] = {}
        self._first_seen: dict[int, int] = {}  # step start → when its first bar arrived
        self._latest = np.full(len(symbols), np.iinfo(np.int64).min, dtype=np.int64)
        self._released = resume_after  # start of the last released step
        self._next = None if resume_after is None else resume_after + interval_ms
        self.duplicates = 0
        self.late = 0

    def deadline(self) -> int | None:
        """When the grace period of the next step runs out (for the caller's timer); None
        while no bar of that step has arrived."""
        seen = None if self._next is None else self._first_seen.get(self._next)
        return None if seen is None else seen + self.grace_ms

    def add(self, bar: Bar, now: int) -> BarrierOutput:
        s = self._index.get(bar.symbol)
        if s is None:
            raise KeyError(f"barrier got a bar for unsubscribed symbol {bar.symbol}")
        if self._released is not None and bar.start <= self._released:
            self.late += 1
            return BarrierOutput(late=[bar])
        slot = self._waiting.setdefault(bar.start, {})
        if s in slot:
            self.duplicates += 1
            return BarrierOutput()
        slot[s] = bar
        self._first_seen.setdefault(bar.start, now)
        self._latest[s] = max(self._latest[s], bar.start)
        if self._released is None:
            self._next = min(self._waiting)  # before the first release, start at the earliest
        return BarrierOutput(rows=self._release(now))

    def poll(self, now: int) -> BarrierOutput:
        """Release steps whose grace period has expired."""
        return BarrierOutput(rows=self._release(now))

    def _release(self, now: int) -> Panel | None:
        starts: list[int] = []
        rows: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        while self._next is not None:
            t = self._next
            have = self._waiting.get(t, {})
            complete = all(s in have or self._latest[s] > t for s in range(len(self.symbols)))
            seen = self._first_seen.get(t)
            expired = seen is not None and now >= seen + self.grace_ms
            if not (complete or expired):
                break
            self._waiting.pop(t, None)
            self._first_seen.pop(t, None)
            if have:
                values = np.full((len(self.symbols), len(FIELDS)), np.nan)
                mask = np.zeros(len(self.symbols), dtype=bool)
                for s, bar in have.items():
                    values[s] = (bar.open, bar.high, bar.low, bar.close, bar.volume)
                    mask[s] = True
                starts.append(t)
                rows.append(values)
                masks.append(mask)
            self._released = t
            self._next = t + self.interval_ms  # an empty step is skipped once all pass it
        if not starts:
            return None
        return Panel(
            self.symbols,
            self.interval_ms,
            np.asarray(starts, dtype=np.int64),
            np.stack(rows),
            np.stack(masks),
        )
