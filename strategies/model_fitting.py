"""Training a model on the bars the engine holds, exactly as a strategy will later see them.

``models`` knows nothing of the engine; this module is the bridge used by ``bot train``, the
walk-forward retraining job of :mod:`strategies.model_backed` and ``bench/evaluate.py``:

* decisions are sampled where the strategy decides (every bar, or each period start with the
  strategy's own :func:`~strategies.indicators.period_starts` rule);
* a multi-scale model's 5m/1h/1d bars are aggregated from the base bars by the engine's own
  :class:`~bot.core.aggregate.Aggregator`, each tagged with the base row that completed it,
  so training windows hold exactly the closed bars a live decision sees.
"""

from __future__ import annotations

import numpy as np

from bot.core.aggregate import Aggregator
from bot.core.events import CLOSE
from bot.core.timeutil import interval_ms, normalize_interval
from models.pipeline import Fitted, ScaleBars, TrainOptions, fit
from models.registry import model_class
from strategies.indicators import period_starts


def decision_mask(starts: np.ndarray, interval: str, rebalance: str) -> np.ndarray:
    """Rows at which a strategy with this ``rebalance`` rule decides."""
    if rebalance == "bar":
        return np.ones(len(starts), dtype=bool)
    return period_starts(np.asarray(starts) + interval_ms(interval), interval, rebalance)


def scale_bars(starts: np.ndarray, ohlcv: np.ndarray, interval: str, scale: str) -> ScaleBars:
    """Bars of ``scale`` built from base bars ``ohlcv[T, A, 5]`` as the engine builds them."""
    if interval_ms(normalize_interval(scale)) == interval_ms(interval):
        return ScaleBars(ohlcv, np.arange(len(starts)), np.asarray(starts, dtype=np.int64))
    aggregator = Aggregator(interval_ms(interval), interval_ms(normalize_interval(scale)))
    present = np.isfinite(ohlcv[..., CLOSE])
    done = aggregator.push(np.asarray(starts, dtype=np.int64), ohlcv, present, 0)
    return ScaleBars(
        done.values, np.asarray(done.visible_at, dtype=np.int64), np.asarray(done.starts)
    )


def fit_on_bars(
    model_name: str,
    starts: np.ndarray,
    ohlcv: np.ndarray,
    interval: str,
    options: TrainOptions,
    rebalance: str = "bar",
    progress: bool = False,
) -> Fitted:
    """Train ``model_name`` on base bars starting at ``starts`` (``ohlcv[T, A, 5]``)."""
    scales = None
    if model_class(model_name).input_kind == "scales":
        defaults = model_class(model_name).config_class.__dataclass_fields__["scales"].default
        names = options.model.get("scales", defaults)
        scales = {s: scale_bars(starts, ohlcv, interval, s) for s in names}
    sampled = decision_mask(starts, interval, rebalance)
    return fit(model_name, ohlcv, options, sampled=sampled, scales=scales, progress=progress)
