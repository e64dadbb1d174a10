"""``bot explain <checkpoint>``: what a trained model attends to, as PNG files.

The model is fed exactly what its strategy would feed it (same features, normalisation and
windows, built by the strategy's own code) at each bar of a period — by default the last
``--decisions`` bars of the configured data — and its attention is averaged over those
decisions (see :mod:`models.explain`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backtest.runner import load_history
from bot.assembly import warmup_span_ms
from bot.cli.common import (
    HISTORY_FLAGS,
    UsageError,
    apply_torch_threads,
    flag_overrides,
    output_path,
    settings_from,
    table,
)
from bot.core.timeutil import iso
from models.checkpoint import load_checkpoint
from models.explain import PLOTS, Explanation, summarise
from strategies.explain_inputs import NoFullWindowError, model_inputs
from strategies.model_backed import strategy_for_model


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("explain", help="plot what a trained model attends to (PNG files)")
    p.add_argument("checkpoint", type=Path, help="a checkpoint file from `bot train`")
    p.add_argument("--start", help="first bar of the period to explain (default: see --decisions)")
    p.add_argument("--end", help="end of the period (exclusive; default: config engine.end)")
    p.add_argument("--decisions", type=int, default=500,
                   help="explain the last N bars of the period (default: %(default)s)")  # fmt: skip
    p.add_argument("--source", choices=["csv", "parquet", "store"])
    p.add_argument("--data", type=Path, help="data folder for csv/parquet sources")
    p.add_argument("--out", type=output_path, default=Path("explain"),
                   help="folder for the PNG files (default: %(default)s)")  # fmt: skip
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.decisions < 1:
        raise UsageError("--decisions must be at least 1")
    meta = load_checkpoint(args.checkpoint).meta
    symbols, interval = list(meta["symbols"]), meta["interval"]
    strategy = strategy_for_model(meta["model"])(
        symbols, interval, checkpoint=str(args.checkpoint), features=meta["feature_spec"]["names"]
    )
    overrides = flag_overrides(args, HISTORY_FLAGS)
    overrides.update({"engine.symbols": symbols, "engine.interval": interval})
    settings = settings_from(args, overrides)
    apply_torch_threads(settings)
    span = warmup_span_ms([(strategy, 1.0)], interval)
    warmup, traded, _ = load_history(settings, warmup_ms=span)
    starts = np.concatenate([warmup.starts, traded.starts])
    ohlcv = np.concatenate([warmup.values, traded.values]).astype(float)
    rows = np.arange(len(warmup), len(starts))[-args.decisions :]
    try:
        inputs, rows = model_inputs(strategy, starts, ohlcv, rows, interval)
    except NoFullWindowError as exc:
        raise UsageError(f"{exc}; widen the period") from None
    serving = strategy.serving
    explanation = Explanation(
        model=meta["model"], version=meta["version"], symbols=symbols, decisions=len(rows),
        period=(iso(int(starts[rows[0]] + traded.interval_ms)),
                iso(int(starts[rows[-1]] + traded.interval_ms))),
        arrays=summarise(serving.model.float(), inputs, len(symbols)),
        labels={"scales": list(getattr(serving.model.config, "scales", ()))},
    )  # fmt: skip
    stem = args.out / meta["version"]
    written = PLOTS[meta["model"]](explanation, stem)
    print_summary(explanation)
    for path in written:
        print(f"wrote {path}")
    return 0


def print_summary(e: Explanation) -> None:
    a = e.arrays
    print(f"{e.version}: {e.decisions:,} decisions from {e.period[0]} to {e.period[1]} UTC")
    if "leadership" in a:
        order = np.argsort(-a["leadership"])
        rows = [[rank + 1, e.symbols[i], f"{a['leadership'][i]:.3f}"]
                for rank, i in enumerate(order)]  # fmt: skip
        print("lead-lag ranking (share of the others' context read from its past bars):")
        print(table(rows, ["rank", "symbol", "leadership"]))
    if "effective_scale_weights" in a:
        rows = [[s, *(f"{w:.3f}" for w in a["effective_scale_weights"][i])]
                for i, s in enumerate(e.symbols)]  # fmt: skip
        rows.append(["(prior)", *(f"{w:.3f}" for w in a["scale_importance"])])
        print(table(rows, ["symbol", *e.labels["scales"]]))
    if "temporal" in a:
        t = a["temporal"].shape[1]
        peaks = [[s, t - 1 - int(np.argmax(a["temporal"][i])), f"{a['temporal'][i].max():.3f}"]
                 for i, s in enumerate(e.symbols)]  # fmt: skip
        print(table(peaks, ["symbol", "most attended bar (bars ago)", "attention"]))
