"""What a model strategy would feed its model at chosen bars: the inputs ``bot explain`` and the
HTML report average the model's attention over.

Built by the strategy's own code (features, normalisation, windows, multi-scale bars as the
engine's buffer holds them), so what is explained is what was decided on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strategies.model_backed import ModelStrategy
from strategies.model_fitting import scale_bars


class NoFullWindowError(ValueError):
    """No requested bar has a full window of history before it."""


def model_inputs(
    strategy: ModelStrategy, starts: np.ndarray, ohlcv: np.ndarray, rows: np.ndarray, interval: str
) -> tuple[Any, np.ndarray]:
    """The strategy's inputs for deciding at base ``rows`` (those with full windows), and those
    rows; raises :class:`NoFullWindowError` when none has one."""
    serving = strategy.serving
    warm = strategy.spec.lead
    config = serving.model.config
    if serving.model.input_kind != "scales":
        rows = rows[rows >= config.seq_len + warm - 1]
        _require(rows)
        return strategy.model_inputs(serving, ohlcv, starts, rows), rows
    bars, full = {}, np.ones(len(rows), dtype=bool)
    for scale, length in config.window_lengths().items():
        built = scale_bars(starts, ohlcv, interval, scale)
        # the scale's last bar completed by each decision row: what the engine's buffer holds
        last = np.searchsorted(built.visible_at, rows, side="right") - 1
        bars[scale] = (built.ohlcv, built.starts, last)
        full &= last >= length + warm - 1
    rows = rows[full]
    _require(rows)
    picked = {scale: (values, times, last[full]) for scale, (values, times, last) in bars.items()}
    return strategy.scale_inputs(serving, picked), rows


def _require(rows: np.ndarray) -> None:
    if not len(rows):
        raise NoFullWindowError("no bar in the period has a full window of history")
