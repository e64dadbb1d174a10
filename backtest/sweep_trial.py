"""One backtest of a sweep, as a pure function a Ray worker or the driver itself can run.

The worker runs the engine exactly as ``bot backtest`` does, but into a tape instead of the
store, and returns what the store needs: the run's row, the tape and how it finished. It opens
no database: file bars it loads itself from the configured folder (every node must see it),
store bars the driver loaded once and hands over. Any failure comes back as an outcome with its
error, so one bad trial is reported, not retried and not fatal to the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch

from backtest.runner import finish_fields, load_history, replay_async, run_row
from backtest.sweep_memory import MemoryGuard
from backtest.sweep_tape import Call, TapeJournal, play
from bot.assembly import make_strategies, warmup_span_ms
from bot.config import Settings
from bot.core.clock import LiveClock
from bot.core.events import Panel
from bot.core.funding import FundingRates
from bot.feeds.loaders import DataError
from bot.store import Store


@dataclass(frozen=True)
class History:
    """Bars of one backtest, loaded by the driver (``data.source = "store"``)."""

    warmup: Panel
    panel: Panel
    funding: FundingRates


@dataclass(frozen=True)
class TrialTask:
    """One backtest to run: trial ``trial`` on span ``span`` under ``run_id``. ``tag`` is stored
    in the run's config under ``"sweep"``: how ``bot runs show`` tells which sweep it was."""

    trial: int
    span: str
    run_id: str
    settings: Settings
    tag: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker hands back. ``error`` set: the backtest failed and nothing else is."""

    trial: int
    span: str
    run_id: str
    row: dict[str, Any] | None = None
    calls: list[Call] | None = None
    finish: dict[str, Any] | None = None
    finished_at: int = 0
    error: str | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        return dict((self.finish or {}).get("metrics") or {})


def describe(exc: BaseException) -> str:
    """An error as one line for the trial table (a worker's traceback stays in its log)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def failed(task: TrialTask, error: str) -> TrialOutcome:
    return TrialOutcome(task.trial, task.span, task.run_id, error=error)


def run_trial(
    task: TrialTask, history: History | None = None, memory_bytes: int | None = None
) -> TrialOutcome:
    """Backtest ``task`` into memory: the same engine, settings and bars as ``bot backtest``
    with the same settings. Torch gets one thread: the workers already fill the cores. Above
    ``memory_bytes`` of resident memory the trial stops and fails (see :mod:`.sweep_memory`)."""
    torch.set_num_threads(1)
    settings = task.settings
    guard = MemoryGuard(memory_bytes)
    try:
        guard.check()  # a worker left swollen by an earlier trial fails this one at once
        strategies = make_strategies(settings)
        if history is None:
            warmup_ms = warmup_span_ms(strategies, settings.engine.interval)
            history = History(*load_history(settings, None, warmup_ms))
        guard.check()
        if len(history.panel) == 0:
            raise DataError("no bars to replay")
        wall = LiveClock()
        row = run_row(settings, task.run_id, history.panel, started_at=wall.now())
        row["config"]["sweep"] = task.tag
        tape = TapeJournal()
        result = asyncio.run(
            replay_async(
                settings, task.run_id, tape, strategies, history.panel,
                warmup=history.warmup, funding=history.funding, watch=guard.check,
            )
        )  # fmt: skip
    except Exception as exc:  # reported in the sweep's table, never retried
        return failed(task, describe(exc))
    return TrialOutcome(
        task.trial, task.span, task.run_id, row, tape.calls, finish_fields(result), wall.now()
    )


def store_outcome(store: Store, outcome: TrialOutcome) -> None:
    """Write a finished trial into the store as a normal backtest run (the driver's job)."""
    assert outcome.row is not None and outcome.calls is not None and outcome.finish is not None
    store.create_run(**outcome.row)
    journal = store.journal(outcome.run_id, background=True)
    try:
        play(outcome.calls, journal)
        journal.close()
    except BaseException:
        with contextlib.suppress(Exception):
            journal.close()
        store.finish_run(outcome.run_id, finished_at=outcome.finished_at, status="failed")
        raise
    store.finish_run(outcome.run_id, finished_at=outcome.finished_at, **outcome.finish)
