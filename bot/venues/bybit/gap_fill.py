"""Executions missed while the private stream was down, fetched over REST, each exactly once.

A websocket outage, a reconnect or a restart can hide fills: Bybit does not replay the stream.
After every gap the executor asks ``/v5/execution/list`` for everything since the last
execution it saw (:func:`fetch_missed_executions`). The same execution can then arrive twice —
from REST and from the stream, or from two overlapping windows — so both paths share one
:class:`SeenExecutions`, and an ``execId`` is passed on once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.venues.bybit.private_records import Execution

if TYPE_CHECKING:
    from bot.venues.bybit.private_rest import PrivateRest

#: Execution ids remembered; older ones are forgotten first. Far more than a gap can hold,
#: small enough to keep in memory for a run of months.
SEEN_CAPACITY = 200_000


class SeenExecutions:
    """The ``execId`` s already passed on (bounded: the oldest are forgotten first). Seed it
    with the ids the store holds when a run restarts."""

    def __init__(self, initial: Iterable[str] = (), capacity: int = SEEN_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        for exec_id in initial:
            self.add(exec_id)

    def add(self, exec_id: str) -> bool:
        """Remember ``exec_id``; True if it was new (pass the execution on), False if seen."""
        if exec_id in self._ids:
            return False
        self._ids[exec_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, exec_id: object) -> bool:
        return exec_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


async def fetch_missed_executions(
    rest: PrivateRest,
    since_ms: int,
    seen: SeenExecutions,
    symbol: str | None = None,
    until_ms: int | None = None,
) -> list[Execution]:
    """Executions from ``since_ms`` (the time of the last one seen; inclusive, so one sharing
    its millisecond is not lost) to now, oldest first, without those ``seen`` already holds.
    The ones returned are marked seen: the caller must book them all."""
    found = await rest.executions_since(since_ms, until_ms=until_ms, symbol=symbol)
    return [execution for execution in found if seen.add(execution.exec_id)]
