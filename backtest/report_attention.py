"""What a model run's model attended to, for its report: the summaries ``bot explain``
computes (:mod:`models.explain`), over the run's own last decisions.

The inputs are rebuilt exactly as the strategy built them (its own code, its checkpoint's
features and normalisation) from the bars the run traded. Every way this can be impossible —
the version was fitted inside the run and never written, its file is gone or was replaced,
the bars are nowhere to be found — is an answer in one line for the page, never a failure of
the whole report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backtest.report_bars import run_bars
from backtest.run_data import RunData
from bot.assembly import warmup_span_ms
from bot.core.timeutil import interval_ms, iso
from bot.store import Store
from models.checkpoint import CheckpointMismatchError, load_checkpoint
from models.explain import Explanation, summarise
from strategies.explain_inputs import NoFullWindowError, model_inputs
from strategies.model_backed import strategy_for_model

#: Decisions the summaries average over: the run's last ones made by its last model version.
DECISIONS = 200


@dataclass(frozen=True)
class Unexplained:
    """Why a model run's attention is not shown (one line for the page)."""

    reason: str


def checkpoint_path(store: Store | None, data: RunData, version: str) -> Path | None:
    """A file on disk holding ``version``: registered in the store's ``models`` table, else
    named by one of the run's strategies (``checkpoint`` parameter), if it still exists."""
    named = []
    if store is not None:
        model = version.split("-", 1)[0]
        named += [
            m["path"] for m in store.list_models(model, limit=10_000) if m["version"] == version
        ]
    for strategy in data.settings.get("strategies") or []:
        named.append((strategy.get("params") or {}).get("checkpoint"))
    return next((Path(p) for p in named if p and Path(p).is_file()), None)


def explain_run(
    store: Store | None, data: RunData, decisions: int = DECISIONS
) -> Explanation | Unexplained | None:
    """The attention summaries of the model behind the run's last decisions (None when no
    decision of the run was made by a model)."""
    made = data.decisions[data.decisions["model_version"].notna()]
    if made.empty:
        return None
    version = str(made["model_version"].iloc[-1])
    path = checkpoint_path(store, data, version)
    if path is None:
        return Unexplained(
            f"no checkpoint of {version} on disk (not registered in the store nor named by "
            "the run's settings, or fitted inside the run)"
        )
    try:
        meta = load_checkpoint(path).meta
    except CheckpointMismatchError as exc:
        return Unexplained(f"checkpoint {path} cannot be read: {exc}")
    if meta.get("version") != version:
        return Unexplained(f"{path} now holds {meta.get('version')}, not {version}")
    times = made.loc[made["model_version"] == version, "time"].to_numpy(np.int64)[-decisions:]
    return _summarise(store, data, path, meta, times)


def _summarise(
    store: Store | None, data: RunData, path: Path, meta: dict, times: np.ndarray
) -> Explanation | Unexplained:
    symbols, interval = list(meta["symbols"]), str(meta["interval"])
    strategy = strategy_for_model(meta["model"])(
        symbols, interval, checkpoint=str(path), features=meta["feature_spec"]["names"]
    )
    span = warmup_span_ms([(strategy, 1.0)], interval)
    step = interval_ms(interval)
    bars = run_bars(store, data, int(times[0]) - span - step, int(times[-1]))
    if bars is None:
        return Unexplained("the run's bars are neither in the store nor in its data folder")
    panel = bars.panel
    if not set(symbols) <= set(panel.symbols):
        return Unexplained(f"the model trades {symbols}, the run's bars are of {panel.symbols}")
    columns = [panel.symbols.index(s) for s in symbols]
    ohlcv = panel.values[:, columns].astype(float)
    index = {int(start): row for row, start in enumerate(panel.starts)}
    rows = np.array([index[t - step] for t in times if t - step in index], dtype=np.int64)
    try:
        inputs, rows = model_inputs(strategy, panel.starts, ohlcv, rows, interval)
    except NoFullWindowError:
        return Unexplained("the run's bars before its last decisions are too few for a window")
    model = strategy.serving.model.float()
    return Explanation(
        model=meta["model"],
        version=meta["version"],
        symbols=symbols,
        decisions=len(rows),
        period=(
            iso(int(panel.starts[rows[0]]) + panel.interval_ms),
            iso(int(panel.starts[rows[-1]]) + panel.interval_ms),
        ),
        arrays=summarise(model, inputs, len(symbols)),
        labels={"scales": list(getattr(model.config, "scales", ()))},
    )
