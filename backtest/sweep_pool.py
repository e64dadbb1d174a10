"""Where a sweep's backtests run: Ray tasks, or one after another in this process.

Both pools run the same :func:`~backtest.sweep_trial.run_trial` and yield its outcomes as they
complete, so a sweep gives the same table either way. Ray is local by default (a cluster of
this machine's cores, started and shut down with the sweep) or an existing cluster's address.
Each trial is a task bounded in memory and never retried: a worker killed for memory is a
failed trial in the table, not a silent second attempt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from backtest.sweep_trial import History, TrialOutcome, TrialTask, describe, failed, run_trial

log = logging.getLogger(__name__)

#: Shared-memory object store of a local cluster: store bars and outcomes pass through it.
LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2


class PoolError(ValueError):
    """A pool that cannot run the trials as asked; the message names the flag."""


class Pool(Protocol):
    def share(self, history: History) -> Any:
        """A handle on bars every task of the sweep may read (sent once, not per task)."""
        ...

    def run(
        self, tasks: Sequence[TrialTask], bars: Callable[[TrialTask], Any]
    ) -> Iterator[TrialOutcome]:
        """Outcomes of ``tasks`` in the order they complete; ``bars(task)`` is a handle from
        :meth:`share`, or None for a task that loads its own."""
        ...

    def close(self) -> None: ...


class SerialPool:
    """The tasks in order, in this process: tests, debugging, and machines without Ray."""

    def share(self, history: History) -> History:
        return history

    def run(
        self, tasks: Sequence[TrialTask], bars: Callable[[TrialTask], Any]
    ) -> Iterator[TrialOutcome]:
        for task in tasks:
            yield run_trial(task, bars(task))

    def close(self) -> None:
        return None


class RayPool:
    """Tasks on a Ray cluster: one CPU and ``memory_bytes`` each (the trial stops above it),
    never retried."""

    def __init__(self, address: str | None, workers: int | None, memory_bytes: int) -> None:
        import ray  # noqa: PLC0415 - only a Ray sweep pays for importing it (about a second)

        self._ray = ray
        options: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": False,  # a failure comes back in its outcome; no worker chatter
        }
        if address is None:  # a local cluster of this machine, gone with the sweep
            options.update(num_cpus=workers or os.cpu_count() or 1,
                           object_store_memory=LOCAL_OBJECT_STORE_BYTES)  # fmt: skip
        else:
            options["address"] = address
        ray.init(**options)
        largest = max((n["Resources"].get("memory", 0) for n in ray.nodes() if n["Alive"]),
                      default=0)  # fmt: skip
        if memory_bytes > largest:  # Ray would wait forever for a node that big
            ray.shutdown()
            raise PoolError(f"--worker-memory: {memory_bytes / 1e9:.2f} GB per trial, but the "
                            f"largest node offers {largest / 1e9:.2f} GB")  # fmt: skip
        self._memory_bytes = memory_bytes  # scheduled by Ray, enforced by the trial itself
        self._remote = ray.remote(run_trial).options(num_cpus=1, memory=memory_bytes, max_retries=0)

    def share(self, history: History) -> Any:
        return self._ray.put(history)

    def run(
        self, tasks: Sequence[TrialTask], bars: Callable[[TrialTask], Any]
    ) -> Iterator[TrialOutcome]:
        ray = self._ray
        pending = {
            self._remote.remote(task, bars(task), self._memory_bytes): task for task in tasks
        }
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died (memory, a crash)
                        yield failed(task, describe(exc))
        finally:
            for ref in pending:  # interrupted: stop what has not run rather than orphan it
                ray.cancel(ref, force=True)

    def close(self) -> None:
        self._ray.shutdown()


def open_pool(*, serial: bool, address: str | None, workers: int | None, memory_bytes: int) -> Pool:
    """A Ray pool, or the serial one when asked for or when Ray cannot start (with one line
    saying so; a cluster address that cannot be reached is the user's error, not a fallback)."""
    if serial:
        return SerialPool()
    try:
        return RayPool(address, workers, memory_bytes)
    except PoolError:
        raise
    except Exception as exc:
        if address is not None:
            raise PoolError(f"--address {address}: cannot join the Ray cluster: "
                                  f"{describe(exc)}") from None  # fmt: skip
        log.warning("Ray cannot start here (%s); running the trials one by one", describe(exc))
        return SerialPool()
