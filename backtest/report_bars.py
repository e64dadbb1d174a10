"""The bars a run traded, found again for its report: to mark open positions and to feed a
model the inputs it decided on.

A run stores no prices of its own beside its fills, so the report looks where the run read
them: the store's klines first (a paper run records every bar it saw, ``bot data`` imports
them), then the run's configured csv/parquet folder. Finding none is an answer, not an error:
the caller falls back and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backtest.run_data import RunData
from bot.core.events import Panel
from bot.feeds.loaders import DataError, align, load_panel
from bot.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunBars:
    """A run's bars (aligned, as its engine saw them) and where they came from, in words."""

    panel: Panel
    source: str

    def last_closes(self, before: int) -> dict[str, float]:
        """Each symbol's close of its last bar that closed by ``before`` (epoch ms): the price
        the run marked its positions at when it recorded its equity at ``before``."""
        panel = self.panel
        rows = np.flatnonzero(panel.starts + panel.interval_ms <= before)
        closes: dict[str, float] = {}
        for k, symbol in enumerate(panel.symbols):
            known = rows[np.isfinite(panel.values[rows, k, 3])]
            if len(known):
                closes[symbol] = float(panel.values[known[-1], k, 3])
        return closes


def run_bars(
    store: Store | None, data: RunData, start: int | None = None, end: int | None = None
) -> RunBars | None:
    """Bars of ``data``'s symbols and interval with ``start <= bar start < end``, from the store
    or else from the run's data folder; None when neither has them all."""
    symbols, interval = tuple(data.symbols), str(data.run["interval"])
    if store is not None:
        frames = {s: store.load_klines(s, interval, start, end) for s in symbols}
        if all(not frame.empty for frame in frames.values()):
            return RunBars(align(frames, symbols, interval), f"{interval} klines in the store")
    source = data.settings.get("data", {})
    if source.get("source") in ("csv", "parquet") and source.get("path"):
        root = Path(source["path"])
        try:
            panel = load_panel(root, symbols, interval, start, end)
        except (DataError, OSError) as exc:
            log.info("no bars for the report in %s: %s", root, exc)
            return None
        return RunBars(panel, f"{interval} bars from {root}")
    return None
