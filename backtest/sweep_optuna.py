"""Optuna's TPE sampler behind an ask/tell pair, so the sweep's driver keeps the loop.

The driver asks for a batch of parameter sets, runs them wherever it runs trials (Ray or in
order) and tells the scores back in trial order. Optuna never runs anything itself, and for a
given seed and batch size the same scores lead to the same next draws.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from backtest.sweep_space import Choice, Dimension, SpaceError

#: What ``suggest_categorical`` can hold (and a study can store).
_CATEGORICAL = (type(None), bool, int, float, str)


class OptunaSearch:
    """A seeded TPE study maximising the sweep's score."""

    def __init__(self, dims: Sequence[Dimension], seed: int) -> None:
        import optuna  # noqa: PLC0415 - only an Optuna sweep pays for importing it

        for dim in dims:
            if isinstance(dim, Choice) and not all(isinstance(v, _CATEGORICAL) for v in dim.values):
                raise SpaceError(
                    f"--param {dim.name}: Optuna picks only numbers, strings, booleans"
                )
        optuna.logging.set_verbosity(logging.WARNING)  # no line per trial: the driver reports
        self._dims = list(dims)
        self._study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        self._asked: dict[int, Any] = {}
        self._failed = optuna.trial.TrialState.FAIL

    def ask(self) -> tuple[int, dict[str, Any]]:
        """(Optuna's trial number, the parameter set to run)."""
        trial = self._study.ask()
        self._asked[trial.number] = trial
        params: dict[str, Any] = {}
        for dim in self._dims:
            if isinstance(dim, Choice):
                params[dim.name] = trial.suggest_categorical(dim.name, list(dim.values))
            elif dim.integer:
                params[dim.name] = trial.suggest_int(dim.name, dim.low, dim.high, log=dim.log)
            else:
                params[dim.name] = trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log)
        return trial.number, params

    def tell(self, number: int, score: float | None) -> None:
        """The score of an asked trial; None or NaN (it failed, or its ratio is undefined)
        tells Optuna the trial failed, so it learns nothing false from it."""
        trial = self._asked.pop(number)
        if score is None or not math.isfinite(score):
            self._study.tell(trial, state=self._failed)
        else:
            self._study.tell(trial, score)
