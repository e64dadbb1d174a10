"""Parameter sweeps: many backtests of one strategy, scored on folds, checked on a holdout.

The driver (this module) builds each trial's settings from the ``bot backtest`` ones, hands
the backtests to a pool (Ray tasks, or in order here), and writes every finished backtest into
the store as a normal ``backtest`` run: workers never open the database, so a sweep over a
cluster needs one store, reachable by the driver alone. Each stored run carries
``config["sweep"]`` (the sweep id, trial, span, parameters, metric), which ties it to its sweep
for ``bot runs show`` and to the ``--json`` file that lists them all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from backtest.runner import load_history
from backtest.sweep_folds import Span, walk_forward
from backtest.sweep_optuna import OptunaSearch
from backtest.sweep_pool import Pool
from backtest.sweep_results import METRICS, TrialResult, params_text, rank
from backtest.sweep_space import (
    Dimension,
    SpaceError,
    candidates,
    check_names,
    grid,
    random_draws,
)
from backtest.sweep_trial import History, TrialTask, store_outcome
from bot.assembly import make_strategies, warmup_span_ms
from bot.config import Settings
from bot.core.ids import new_run_id
from bot.core.timeutil import interval_ms
from bot.store import Store
from strategies import registry

#: The span name of a trial run over the whole period (no folds).
WHOLE = "all"


@dataclass(frozen=True)
class SweepSpec:
    """What to search and how. ``batch``: how many Optuna trials are asked before their scores
    are told (the workers' count; fixed, so a seeded Optuna sweep repeats exactly)."""

    dims: list[Dimension]
    search: str = "grid"
    trials: int = 0  # random and Optuna searches
    seed: int = 0
    folds: int = 0
    holdout: float = 0.0
    metric: str = "sharpe"
    batch: int = 1
    space: list[str] = field(default_factory=list)  # the --param flags, as typed


@dataclass
class SweepResult:
    sweep_id: str
    spec: SweepSpec
    spans: list[Span]
    trials: list[TrialResult]  # ranked, best first

    @property
    def best(self) -> TrialResult | None:
        """The best-ranked trial that ran, if any did."""
        ok = [t for t in self.trials if t.error is None]
        return ok[0] if ok else None


def span_text(ms: int) -> str:
    """A span boundary as ``engine.start``/``end`` text: ISO when on a whole second (people
    read it in ``bot runs show``), else epoch milliseconds (exact)."""
    if ms % 1000:
        return str(ms)
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trial_settings(base: Settings, params: dict[str, Any], span: Span | None) -> Settings:
    """``base`` (the ``bot backtest`` settings) with the strategy's parameters set to
    ``params`` and, for a fold or the holdout, the period narrowed to ``span``."""
    spec = base.strategies[0]
    update: dict[str, Any] = {
        "strategies": [spec.model_copy(update={"params": {**spec.params, **params}})]
    }
    if span is not None:
        update["engine"] = base.engine.model_copy(
            update={"start": span_text(span.start_ms), "end": span_text(span.end_ms)}
        )
    return base.model_copy(update=update)


def spans_of(base: Settings, folds: int, holdout: float) -> list[Span]:
    """The walk-forward spans of the configured period, or one span for all of it."""
    engine = base.engine
    if not folds:
        return [Span(WHOLE, engine.start_ms or 0, engine.end_ms or 0, True)]
    if engine.start_ms is None or engine.end_ms is None:
        raise SpaceError("--folds needs a period: give --start and --end (or engine.start/end)")
    return walk_forward(engine.start_ms, engine.end_ms, interval_ms(engine.interval), folds,
                        holdout)  # fmt: skip


def check_space(base: Settings, dims: Sequence[Dimension]) -> None:
    """Refuse, before anything runs, a parameter the strategy does not take or a value it
    rejects (each value tried with the other parameters as configured), naming it."""
    name = base.strategies[0].name
    check_names(name, registry.accepted_parameters(registry.resolve(name)), dims)
    for dim in dims:
        for value in candidates(dim):
            try:
                make_strategies(trial_settings(base, {dim.name: value}, None))
            except registry.StrategyParameterError as exc:
                raise SpaceError(f"--param {dim.name}={value}: {exc}") from None


class Driver:
    """Runs the trials' backtests on a pool and stores each as it finishes."""

    def __init__(self, base: Settings, spec: SweepSpec, store: Store, pool: Pool) -> None:
        self.base, self.spec, self.store, self.pool = base, spec, store, pool
        self.sweep_id = new_run_id()
        self.spans = spans_of(base, spec.folds, spec.holdout)
        self._shared: dict[tuple[int, int, int], Any] = {}

    def tasks(self, trial: TrialResult) -> list[TrialTask]:
        whole = self.spans[0].name == WHOLE
        tag = {
            "id": self.sweep_id,
            "trial": trial.trial,
            "params": trial.params,
            "search": self.spec.search,
            "metric": self.spec.metric,
            "space": self.spec.space,
        }
        return [
            TrialTask(trial.trial, span.name, new_run_id(),
                      trial_settings(self.base, trial.params, None if whole else span),
                      {**tag, "span": span.name})
            for span in self.spans
        ]  # fmt: skip

    def bars(self, task: TrialTask) -> Any:
        """Store bars, loaded here once per period and warm-up and shared with the workers
        (which have no database); None for file and synthetic bars, which workers load."""
        settings = task.settings
        if settings.data.source != "store":
            return None
        warmup_ms = warmup_span_ms(make_strategies(settings), settings.engine.interval)
        key = (settings.engine.start_ms or 0, settings.engine.end_ms or 0, warmup_ms)
        if key not in self._shared:
            history = History(*load_history(settings, self.store, warmup_ms))
            self._shared[key] = self.pool.share(history)
        return self._shared[key]

    def run(self, trials: Sequence[TrialResult], done: Callable[[TrialResult], None]) -> None:
        """Run ``trials`` to their end, storing each backtest; ``done(trial)`` once all of a
        trial's spans are in."""
        by_number = {t.trial: t for t in trials}
        tasks = [task for t in trials for task in self.tasks(t)]
        for outcome in self.pool.run(tasks, self.bars):
            if outcome.error is None:
                store_outcome(self.store, outcome)
            trial = by_number[outcome.trial]
            trial.outcomes[outcome.span] = outcome
            if len(trial.outcomes) == len(self.spans):
                trial.outcomes = {s.name: trial.outcomes[s.name] for s in self.spans}
                done(trial)


def batches(spec: SweepSpec) -> Iterator[tuple[list[TrialResult], Callable[[], None]]]:
    """Trials to run, in batches, each with what to do once it has run: grid and random
    searches are one batch known in advance; Optuna asks ``batch`` at a time and is told
    their scores in trial order."""
    if spec.search == "grid":
        draws = grid(spec.dims)
    elif spec.search == "random":
        draws = random_draws(spec.dims, spec.trials, spec.seed)
    else:
        yield from _optuna_batches(spec)
        return
    yield [TrialResult(n, params) for n, params in enumerate(draws, start=1)], lambda: None


def _optuna_batches(spec: SweepSpec) -> Iterator[tuple[list[TrialResult], Callable[[], None]]]:
    search = OptunaSearch(spec.dims, spec.seed)
    sign = METRICS[spec.metric]
    asked = 0
    while asked < spec.trials:
        size = min(spec.batch, spec.trials - asked)
        numbers, batch = [], []
        for _ in range(size):
            number, params = search.ask()
            numbers.append(number)
            batch.append(TrialResult(asked + len(batch) + 1, params))
        asked += size

        def tell(batch: list[TrialResult] = batch, numbers: list[int] = numbers) -> None:
            for number, trial in zip(numbers, batch, strict=True):
                score = None if trial.error else sign * trial.mean(spec.metric)
                search.tell(number, score)

        yield batch, tell


def run_sweep(
    base: Settings, spec: SweepSpec, store: Store, pool: Pool, *, progress: bool = False
) -> SweepResult:
    """Run every trial on every span through ``pool``, store each backtest, rank the trials.

    A failed trial (a strategy error, a worker out of memory) gets a line on stderr and a row
    with its error; the sweep goes on."""
    check_space(base, spec.dims)
    driver = Driver(base, spec, store, pool)
    total = len(grid(spec.dims)) if spec.search == "grid" else spec.trials
    bar = tqdm(total=total, unit="trial", desc="sweep", disable=not progress)
    trials: list[TrialResult] = []

    def done(trial: TrialResult) -> None:
        bar.update()
        if trial.error is not None:
            tqdm.write(f"trial {trial.trial} {params_text(trial.params)} failed: {trial.error}",
                       file=sys.stderr)  # fmt: skip

    try:
        for batch, after in batches(spec):
            driver.run(batch, done)
            trials.extend(batch)
            after()
    finally:
        bar.close()
    return SweepResult(driver.sweep_id, spec, driver.spans, rank(trials, spec.metric))
