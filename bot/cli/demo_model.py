"""The model ``bot demo`` trades, and what the demo says about each decision it makes.

Before the local market opens, the demo fits a small model on the bars its market's history
holds before the opening (the month the daemon warms up on) and writes a checkpoint for its
strategy to load. The paper daemon and the end-of-run backtest then decide with the very same
weights, so the parity check holds as for any other strategy. (Fitting on the strategy's
walk-forward path instead would train inside the daemon's first step, while the demo's market,
at eight bars a second, runs ahead of it.) The seed is fixed and the fit runs on one CPU
thread, so every run of the demo trades the same model: one thread sums in one order whatever
the machine's cores, and trains a model this small no slower (on a busy machine, many times
faster than threads waiting for each other).

As the daemon decides, :func:`attention_note` reads the attention of the model that made the
decision, on that decision's own inputs (its strategy's :meth:`~ModelStrategy.model_inputs`
over the engine's buffer), and names what it attended to most. It only reads: decisions are
made exactly as without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backtest.runner import load_history
from bot.cli.train_cmd import train_checkpoint
from bot.config import Settings
from bot.core.engine import Engine
from bot.core.events import Decision
from models.checkpoint import Checkpoint
from models.explain import summarise
from models.pipeline import TrainOptions
from models.training import CHAPTER_RECIPES
from strategies.model_backed import ModelStrategy, strategy_for_model

#: Hyperparameters over each strategy's defaults: small enough to fit in a second or two on
#: two CPU cores. TABL attends straight over the 12 bars of its window (its default
#: ``hidden = ()``), so its attention reads as "which bar mattered".
MODELS: dict[str, dict[str, Any]] = {
    "tabl": {"seq_len": 12},
    "cross_asset": {"seq_len": 12, "d_model": 16, "n_heads": 2, "n_layers": 1},
}
#: Few features with short warm-ups (the month of history holds many training windows) and
#: none recursive, so a decision's features are a function of its window alone: the note's
#: second look at them changes no state the strategy carries from decision to decision.
FEATURES = ("log_return", "range", "relative_volume", "momentum_5", "close_position")
#: A decision every four bars (a line every half second at the demo's speed), and targets
#: that look as far ahead as a position is held.
REBALANCE = "4h"
HORIZON = 4
#: Ten times the chapters' learning rate: a model this small learns what it can in a few
#: epochs (on the real bars, both reach a lower validation loss in five epochs than at the
#: chapters' rate in twenty).
LEARNING_RATE = 1e-2
EPOCHS = 5
SEED = 7


def strategy_params(checkpoint: Path) -> dict[str, Any]:
    """The demo's model strategy parameters: the fitted checkpoint, traded at its rebalance."""
    return {"checkpoint": str(checkpoint), "rebalance": REBALANCE}


def fit_model(settings: Settings, name: str, opens: int, bars: int, out: Path) -> Checkpoint:
    """Fit the demo's ``name`` model on the last ``bars`` bars before ``opens`` of the demo's
    data source (the bars its exchange serves) and write the checkpoint to ``out``."""
    _, panel, _ = load_history(settings)
    before = panel.split(opens)[0]
    history = before.slice(max(0, len(before) - bars), len(before))
    recipe = CHAPTER_RECIPES[name].with_overrides(
        epochs=EPOCHS, lr=LEARNING_RATE, seed=SEED, device="cpu"
    )
    options = TrainOptions(
        features=FEATURES,
        horizon=HORIZON,
        model={**strategy_for_model(name).default_model, **MODELS[name]},
        recipe=recipe,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_checkpoint(name, history, settings.engine.interval, options, REBALANCE, out)
    finally:
        torch.set_num_threads(threads)


def attention_note(engine: Engine, decision: Decision) -> str | None:
    """What the model behind ``decision`` attended to most, in a few words; None for a
    strategy without a model whose attention the demo reads. Called while the engine records
    the decision, when its buffer holds the bars the decision saw."""
    strategy = next((s for s in engine.strategies if s.name == decision.strategy), None)
    if not isinstance(strategy, ModelStrategy) or strategy.serving is None:
        return None
    serving = strategy.serving
    headline = HEADLINES.get(serving.model.name)
    if headline is None:
        return None
    length = serving.model.config.seq_len + strategy.spec.lead
    bars = decision_bars(engine, strategy.symbols, decision.time, length)
    if bars is None:
        return None
    starts, ohlcv = bars
    inputs = strategy.model_inputs(serving, ohlcv, starts, np.array([length - 1]))
    summary = summarise(serving.model, inputs.to(serving.dtype), len(strategy.symbols))
    return headline(summary, strategy.symbols)


def decision_bars(
    engine: Engine, symbols: Sequence[str], time: int, length: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(starts[length], ohlcv[length, A, 5])`` of ``symbols``: the last ``length`` bars
    closed by ``time`` (None if the buffer no longer holds them: the note is left out, the run
    goes on).

    Counted back from the buffer's newest row: a block of several steps (a catch-up) is in the
    buffer before its first decision is recorded."""
    step = engine.interval_ms
    newest = int(engine.buffer.window(1).starts[-1])
    row = engine.buffer.rows - 1 - (newest - (time - step)) // step
    window = engine.buffer.window(length, None, row)
    if len(window) != length or int(window.starts[-1]) != time - step:
        return None
    columns = [engine.symbols.index(s) for s in symbols]
    ohlcv = np.asarray(window.values[columns], dtype=float).transpose(1, 0, 2)
    return np.asarray(window.starts), ohlcv


def tabl_headline(summary: dict[str, np.ndarray], symbols: Sequence[str]) -> str:
    """The bar of the window TABL weighted most, averaged over the symbols (t-0: the bar
    that just closed)."""
    temporal = summary["temporal"].mean(axis=0)  # [bars], oldest first
    peak = int(np.argmax(temporal))
    return f"TABL: most attended bar t-{len(temporal) - 1 - peak} ({temporal[peak]:.0%})"


def cross_asset_headline(summary: dict[str, np.ndarray], symbols: Sequence[str]) -> str:
    """The (source asset, lag) the assets' lead-lag context came from most, averaged over the
    reading assets."""
    lead_lag = summary["lead_lag"].mean(axis=0)  # [source asset, lag]
    source, lag = np.unravel_index(int(np.argmax(lead_lag)), lead_lag.shape)
    return f"most attended: {symbols[source]} lag {lag} ({lead_lag[source, lag]:.0%})"


HEADLINES: dict[str, Callable[[dict[str, np.ndarray], Sequence[str]], str]] = {
    "tabl": tabl_headline,
    "cross_asset": cross_asset_headline,
}
