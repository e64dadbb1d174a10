"""A trial's memory bound, enforced by the trial itself.

Ray's ``memory=`` only tells the scheduler how much a task will need; nothing stops a task that
needs more. A sweep promises each trial ``--worker-memory``, so the trial measures its worker's
resident memory between the engine's blocks and, above the bound, stops with an error that
names it: a failed row in the table instead of a machine swapping or a node's out-of-memory
killer picking a victim.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Where Linux reports a process's memory in pages: size, then resident.
_STATM = Path("/proc/self/statm")


class MemoryBoundError(RuntimeError):
    """A trial's worker holds more memory than ``--worker-memory`` allows."""


def resident_bytes() -> int | None:
    """This process's resident memory now, or None where the system does not say (not Linux)."""
    try:
        pages = int(_STATM.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class MemoryGuard:
    """Checks the worker against ``limit_bytes`` (None: no bound, e.g. a serial sweep, whose
    trials run in the driver beside the store and the results)."""

    def __init__(self, limit_bytes: int | None) -> None:
        self.limit_bytes = limit_bytes

    def check(self) -> None:
        if self.limit_bytes is None:
            return
        held = resident_bytes()
        if held is not None and held > self.limit_bytes:
            raise MemoryBoundError(
                f"the trial's worker holds {held / 1e9:.2f} GB, above --worker-memory "
                f"{self.limit_bytes / 1e9:.2f} GB"
            )
