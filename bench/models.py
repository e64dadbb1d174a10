"""Model benchmark: what the four seed-chapter models cost on this CPU — per year of backtest,
per decision and per training sample — measured in one run and printed side by side.

(1) Backtest decisions/s: a year of hourly decisions (2024-06-01..2025-06-01) for BTC, ETH,
    SOL, BNB and WIF (real 1h bars from $BOT_DATA_DIR, else seeded synthetic bars: the output
    says which), each model-backed strategy with its defaults (float32 serving; ``--precision
    float64`` for the other) through the engine, batched (``use_batch``: the decisions of a
    block, features in one pass per anchor, the model one decision per forward pass) and
    streaming (one bar at a time, the live path: features carried forward a bar, the model on
    one decision). The engine is primed with the bars since 2024-01-12 (WIF is listed on
    2024-01-11), so every bar of the year is a decision. The checkpoint is the strategy-size
    model built by the training pipeline on those earlier bars (seeded weights, normaliser
    fitted there) and trained ``--train-epochs`` epochs: none by default, since the speed does
    not depend on the weights and an epoch of the Stockformer takes minutes. Streaming runs
    the first ``--streaming-rows`` bars and is extrapolated to the year (the table says so);
    each of its decisions is timed (the strategy's ``on_bar``: features, model and decision
    rules, what the daemon waits for at a bar's close; p50/p99), and they must equal the
    batched run's on those bars, value for value. One torch thread (``--backtest-threads``):
    the cost per core, and on a busy machine two OpenMP threads per forward pass wait for each
    other far longer than they compute. Blocks of 8192 rows, the engine's default
    (``--block-rows``). Targets: a year in under 60 s; a streaming decision's p50 under 2 ms
    for TABL and 8 ms for the cross-asset model.
(2) Inference latency of one decision: one bar for all five symbols, i.e. ``[1, 5, T, F]`` for
    the cross-asset models and ``[5, T, F]`` (or ``{scale: [5, T_s, F]}``) for the
    single-series ones, which a strategy runs with the symbols folded into the batch. One
    thread, eval mode, through the strategies' own :class:`~strategies.model_backed.Serving`
    (``torch.inference_mode``, dtype casts included), in float32 (what a strategy serves by
    default) and in float64, after a warm-up: p50/p99 over ``--reps`` calls, fewer when
    they would take longer than ``--seconds`` (the table gives the count). Target: p50 < 5 ms.
    Next to it the FLOPs of a decision (torch's ``FlopCounterMode``) and the time they take at
    45 GFLOP/s, one core's practical float32 rate (225 MFLOP ≈ 5 ms): a floor no
    implementation of that architecture and size gets under on one core (float64: about
    twice). Sizes: ``chapter`` (the config class's defaults) and, where the strategy builds a
    different model by default, ``strategy`` (TABL without hidden layers, multi-scale on
    1h/4h/1d windows): the size the backtest runs.
(3) Training throughput: samples/s of optimiser steps on a fixed random batch of the
    chapter's batch size, as :func:`models.training.train` steps (the chapter's optimiser,
    gradient clipping, seeded deterministic algorithms), with one thread and with torch's
    default thread count (``--train-threads``). A sample is one training window: all five
    assets for the cross-asset models, one series for the others. A batch whose activations
    would exceed ``--train-memory-mb`` runs as accumulated micro-batches (the table shows
    their size).
(4) Peak RSS: each measurement runs in its own process, forked from this one after the
    imports and before any torch computation, so torch is imported once, not once per
    measurement. A forked process counts the pages it shares with its parent only once it
    touches them, so its own high-water mark reads ~100 MB below a fresh process's; a row's
    peak RSS is therefore this process's RSS at the fork (interpreter, torch, engine and bars;
    printed in the header) plus the child's growth over its start: within a few tens of MB of
    a fresh process doing the same (Linux: read from /proc).

No number is asserted: the machine may be shared (the header prints its load average).

    .venv/bin/python bench/models.py                        # everything: ~30 min on 2 cores
    .venv/bin/python bench/models.py --models tabl,cross_asset --streaming-rows 200
    .venv/bin/python bench/models.py --quick --json out/models.json   # smoke run, < 1 min
    .venv/bin/python bench/models.py --sections backtest        # the year and the live path
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bench import data_dir  # noqa: E402
from bot.cli.common import table  # noqa: E402
from bot.core.clock import SimulatedClock  # noqa: E402
from bot.core.engine import Engine, EngineSettings  # noqa: E402
from bot.core.events import Decision, Panel  # noqa: E402
from bot.core.execution import PaperExecutor  # noqa: E402
from bot.core.instruments import InstrumentSpec  # noqa: E402
from bot.core.journal import MemoryJournal  # noqa: E402
from bot.core.portfolio import Portfolio  # noqa: E402
from bot.core.risk import RiskLimits, RiskManager  # noqa: E402
from bot.core.timeutil import HOUR_MS, iso, to_ms  # noqa: E402
from bot.feeds.loaders import DataError, load_panel  # noqa: E402
from bot.feeds.replay import ReplayFeed  # noqa: E402
from bot.feeds.synthetic import synthetic_panel  # noqa: E402
from models.base import TradingModel, batch_len, split_batch  # noqa: E402
from models.checkpoint import save_checkpoint  # noqa: E402
from models.datasets import Normalizer  # noqa: E402
from models.pipeline import TrainOptions  # noqa: E402
from models.registry import MODELS, build, model_class  # noqa: E402
from models.training import CHAPTER_RECIPES, seed_everything  # noqa: E402
from strategies.model_backed import (  # noqa: E402
    DEFAULT_PRECISION,
    PRECISIONS,
    CrossAssetStrategy,
    ModelStrategy,
    MultiScaleStrategy,
    Serving,
    StockformerStrategy,
    TABLStrategy,
)
from strategies.model_fitting import fit_on_bars  # noqa: E402

STRATEGIES: dict[str, type[ModelStrategy]] = {
    "cross_asset": CrossAssetStrategy,
    "stockformer": StockformerStrategy,
    "multiscale": MultiScaleStrategy,
    "tabl": TABLStrategy,
}
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "WIFUSDT")
HISTORY_START = "2024-01-12"  # first whole day of WIF bars: training and warm-up history
YEAR = ("2024-06-01", "2025-06-01")  # the traded year
SEED = 7
TARGET_P50_MS = 5.0
TARGET_YEAR_S = 60.0
#: p50 of a streaming decision, features included (models without one: no target)
TARGET_STREAMING_P50_MS = {"tabl": 2.0, "cross_asset": 8.0}
SECTIONS = ("backtest", "latency", "training")
CORE_GFLOPS = 45.0  # one core's practical float32 rate: 225 MFLOP ≈ 5 ms
FEE, SLIPPAGE, CASH, QTY_STEP = 0.00055, 0.0001, 100_000.0, 0.001
QUICK = {"reps": 20, "seconds": 0.5, "min_reps": 1, "backtest_rows": 24,
         "streaming_rows": 12, "train_steps": 3, "train_seconds": 0.5, "train_batch": 2,
         "train_threads": "1"}  # fmt: skip


# -- what is measured ----------------------------------------------------------------------
def sizes(name: str) -> dict[str, dict[str, Any]]:
    """``{"chapter": {}, "strategy": hyperparameters}``: the config class's defaults, and the
    model the strategy builds by default (its ``default_model`` over inputs sized to its
    default features) when that is a different one."""
    strategy = STRATEGIES[name]
    cls = model_class(name)
    width = "input_dim" if cls.input_kind == "sequence" else "n_features"
    served: dict[str, Any] = {**strategy.default_model, width: len(strategy.default_features)}
    if cls.input_kind == "assets":
        served["n_assets"] = len(SYMBOLS)
    found = {"chapter": {}}
    if asdict(cls.config_class(**served)) != asdict(cls.config_class()):
        found["strategy"] = served
    return found


def hyperparameters(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """``{"hyperparameters": ...}``: every one of a size, for the JSON rows."""
    return {"hyperparameters": asdict(model_class(name).config_class(**config))}


def random_inputs(model: TradingModel, rows: int, generator: torch.Generator) -> Any:
    """Normalised-looking float32 inputs (standard normal) with ``rows`` samples."""
    config = model.config
    if model.input_kind == "assets":
        shape = (rows, config.n_assets, config.seq_len, config.n_features)
        return torch.randn(shape, generator=generator)
    if model.input_kind == "sequence":
        return torch.randn((rows, config.seq_len, config.input_dim), generator=generator)
    return {
        scale: torch.randn((rows, length, config.n_features), generator=generator)
        for scale, length in config.window_lengths().items()
    }


def random_targets(model: TradingModel, rows: int, generator: torch.Generator) -> Any:
    """Targets of the model's head in the form its ``loss`` expects."""
    if model.input_kind == "scales":
        returns = torch.randn((rows, len(model.config.horizons)), generator=generator)
        direction = torch.randint(0, 2, (rows,), generator=generator).float()
        return {"returns": returns, "direction": direction}
    shape = (rows, model.config.n_assets) if model.input_kind == "assets" else (rows,)
    if model.head == "classification":
        return torch.randint(0, 3, shape, generator=generator)
    if model.head == "direction":
        return torch.randint(0, 2, shape, generator=generator).float()
    return torch.randn(shape, generator=generator) * 0.01  # returns


def samples_per_decision(model: TradingModel) -> int:
    """Samples in one decision: the strategies fold the symbols into a single-series model's
    batch; a cross-asset model reads them all in one sample."""
    return 1 if model.input_kind == "assets" else len(SYMBOLS)


def shape_text(inputs: Any) -> str:
    if isinstance(inputs, dict):
        return " ".join(f"{k}:{list(v.shape)}" for k, v in inputs.items()).replace(" ", "")
    return str(list(inputs.shape)).replace(" ", "")


def count_mflop(model: TradingModel, inputs: Any) -> float:
    """FLOPs of one forward pass as ``FlopCounterMode`` counts them (matmuls, convolutions,
    attention). Counted with autograd on: in inference mode ``nn.TransformerEncoderLayer``
    runs a fused kernel the counter cannot see into, which would report the multi-scale
    model about ten times too low."""
    with FlopCounterMode(display=False) as counter:
        model(inputs)
    return counter.get_total_flops() / 1e6


def time_calls(call: Callable[[], Any], reps: int, seconds: float, min_reps: int) -> dict[str, Any]:
    """p50/p99 of ``call`` after a warm-up (10 calls or a tenth of the budget, at least one);
    stops early once ``seconds`` have passed and ``min_reps`` calls are timed."""
    started = time.perf_counter()
    for _ in range(10):
        call()
        if time.perf_counter() - started > seconds / 10:
            break
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < reps:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        if len(times) >= min_reps and time.perf_counter() - started > seconds:
            break
    p50, p99 = np.percentile(np.array(times) * 1e3, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99), "mean_ms": float(np.mean(times)) * 1e3,
            "reps": len(times), "meets_target": bool(p50 < TARGET_P50_MS)}  # fmt: skip


def measure_latency(
    name: str, config: dict, reps: int, seconds: float, min_reps: int
) -> dict[str, Any]:
    """One decision on one thread, float32 and float64, through ``Serving`` (its dtype
    casts of inputs and outputs included: they are part of every served decision)."""
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = build(name, **config).eval()
    inputs = random_inputs(model, samples_per_decision(model), generator)
    mflop = count_mflop(model, inputs)
    row: dict[str, Any] = {"input": shape_text(inputs), "mflop": mflop,
                           "floor_ms": mflop / CORE_GFLOPS, "threads": 1}  # fmt: skip
    unused = Normalizer(np.zeros(1), np.ones(1))  # run() takes normalised inputs
    per_pass = samples_per_decision(model)  # as the strategies run it
    for precision in PRECISIONS:
        serving = Serving.of(model, unused, 1.0, name, precision)
        row[precision] = time_calls(
            lambda s=serving: s.run(inputs, per_pass), reps, seconds, min_reps
        )
    return row


def measure_training(
    name: str,
    config: dict,
    steps: int,
    seconds: float,
    batch: int | None,
    threads: int,
    memory_mb: float,
) -> dict[str, Any]:
    """Optimiser steps on one fixed batch, as ``models.training.train`` takes them: after a
    warm-up step, up to ``steps`` of them while they fit in ``seconds`` (at least one).

    A step whose activations would not fit in ``memory_mb`` (estimated from a one-sample
    step) accumulates the gradients of micro-batches instead: the same work per sample,
    which is what samples/s measures (the multi-scale model at the chapter's size needs
    ~0.3 GB per sample, so ~20 GB for a batch of 64)."""
    torch.set_num_threads(threads)
    recipe = CHAPTER_RECIPES[name]
    batch = batch or recipe.batch_size
    generator = seed_everything(SEED)
    model = build(name, **config).train()
    x, y = random_inputs(model, batch, generator), random_targets(model, batch, generator)
    optimizer_class = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    before = peak_rss_mb()
    model.loss(model(split_batch(x, 1)[0]), split_batch(y, 1)[0]).backward()
    per_sample = max(peak_rss_mb() - before, 1.0)
    micro = max(1, min(batch, int(memory_mb // per_sample)))
    pieces = list(zip(split_batch(x, micro), split_batch(y, micro), strict=True))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        for xs, ys in pieces:
            share = batch_len(xs) / batch
            (model.loss(model(xs), ys) * share).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()

    step()  # warm-up: first-call allocations and kernel selection
    timed = 0
    started = time.perf_counter()
    while timed < steps:
        step()
        timed += 1
        if time.perf_counter() - started > seconds:
            break
    elapsed = time.perf_counter() - started
    return {"batch_size": batch, "micro_batch": micro, "steps": timed,
            "seconds_per_step": elapsed / timed, "samples_per_second": batch * timed / elapsed,
            "threads": torch.get_num_threads()}  # fmt: skip


# -- the backtest ----------------------------------------------------------------------------
def make_checkpoint(name: str, history: Panel, epochs: int, path: Path) -> dict[str, Any]:
    """The strategy-size model through the training pipeline on ``history`` (seeded weights,
    normaliser fitted there), trained ``epochs`` epochs (0: as initialised), saved."""
    strategy = STRATEGIES[name]
    recipe = CHAPTER_RECIPES[name].with_overrides(epochs=epochs, seed=SEED)
    options = TrainOptions(features=strategy.default_features,
                           model=dict(strategy.default_model), recipe=recipe)  # fmt: skip
    window = {"start": int(history.starts[0]), "end": int(history.starts[-1]) + HOUR_MS,
              "bars": len(history)}  # fmt: skip
    started = time.perf_counter()
    fitted = fit_on_bars(name, history.starts, np.asarray(history.values), "1h", options,
                         progress=epochs > 0)  # fmt: skip
    save_checkpoint(path, fitted.model, feature_spec=fitted.spec, normalizer=fitted.normalizer,
                    symbols=list(history.symbols), interval="1h", target=fitted.target,
                    metrics=fitted.metrics, data_window=window)  # fmt: skip
    return {"seconds": time.perf_counter() - started, "epochs": epochs,
            "train_samples": fitted.metrics["train_samples"]}  # fmt: skip


def make_engine(
    symbols: Sequence[str], strategy: ModelStrategy, block_rows: int, use_batch: bool
) -> tuple[Engine, MemoryJournal]:
    """The paper-trading engine of a backtest, keeping its journal in memory."""
    specs = {s: InstrumentSpec(s, QTY_STEP, QTY_STEP, 5.0) for s in symbols}
    journal = MemoryJournal()
    engine = Engine(
        settings=EngineSettings(run_id="benchmodels", interval="1h", block_rows=block_rows,
                                use_batch=use_batch),
        symbols=symbols, strategies=[(strategy, 1.0)],
        portfolio=Portfolio(tuple(symbols), specs, CASH),
        executor=PaperExecutor(tuple(symbols), FEE, SLIPPAGE),
        risk=RiskManager(RiskLimits(), CASH), journal=journal, clock=SimulatedClock(),
    )  # fmt: skip
    return engine, journal


class Progress:
    """``label: done/total bars`` on stderr at most every ``every`` seconds (long replays)."""

    def __init__(self, label: str, total: int, every: float = 20.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.done = 0
        self.started = self.shown = time.perf_counter()

    def __call__(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if now - self.shown >= self.every:
            self.shown = now
            print(f"    {self.label}: {self.done:,}/{self.total:,} bars, "
                  f"{now - self.started:.0f}s", file=sys.stderr, flush=True)  # fmt: skip


def timed_decisions(strategy: ModelStrategy) -> list[float]:
    """Record the seconds of each call of ``strategy.on_bar``, the engine's call at every bar
    when streaming: what the daemon waits for between a bar's close and its orders (features,
    model, decision rules). Returns the list the times go to."""
    times: list[float] = []
    decide = strategy.on_bar

    def on_bar(ctx: Any) -> Any:
        started = time.perf_counter()
        try:
            return decide(ctx)
        finally:
            times.append(time.perf_counter() - started)

    strategy.on_bar = on_bar  # type: ignore[method-assign]
    return times


def digest(decisions: Sequence[Decision]) -> str:
    """Fingerprint of decisions' times, weights and model versions (exact float reprs)."""
    text = repr([(d.time, sorted(d.weights.items()), d.model_version) for d in decisions])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_backtest(
    name: str,
    checkpoint: Path,
    history: Panel,
    bars: Panel,
    use_batch: bool,
    block_rows: int,
    compare_rows: int,
    threads: int,
    precision: str,
) -> dict[str, Any]:
    """Replay ``bars`` after priming the engine with ``history``; ``compare_rows``: the
    leading bars whose decisions the batched and streaming runs must share."""
    torch.set_num_threads(threads)
    strategy = STRATEGIES[name](bars.symbols, "1h", checkpoint=str(checkpoint), precision=precision)
    engine, journal = make_engine(bars.symbols, strategy, block_rows, use_batch)
    times = None if use_batch else timed_decisions(strategy)
    engine.prime(history)
    mode = "batched" if use_batch else "streaming"
    started = time.perf_counter()
    asyncio.run(engine.run(ReplayFeed(bars, block_rows), Progress(f"{name} {mode}", len(bars))))
    seconds = time.perf_counter() - started
    horizon = int(bars.starts[compare_rows - 1]) + HOUR_MS  # close of the last compared bar
    shared = [d for d in journal.decisions if d.time <= horizon]
    result = {"bars": len(bars), "seconds": seconds, "decisions": len(journal.decisions),
              "decisions_per_second": len(journal.decisions) / seconds,
              "fills": len(journal.fills), "threads": torch.get_num_threads(),
              "precision": strategy.precision,
              "compared": {"bars": compare_rows, "decisions": len(shared),
                           "digest": digest(shared)}}  # fmt: skip
    if times:
        p50, p99 = np.percentile(np.array(times) * 1e3, [50, 99])
        result["decision_ms"] = {"p50": float(p50), "p99": float(p99),
                                 "max": max(times) * 1e3, "calls": len(times)}  # fmt: skip
    return result


# -- running the measurements ----------------------------------------------------------------
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Resident memory now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _child(send: Connection, measure: Callable[..., dict], kwargs: dict) -> None:
    try:
        start = rss_mb()  # the high-water mark starts here too in a forked process
        result = measure(**kwargs)
        result["rss_growth_mb"] = peak_rss_mb() - start
        send.send(result)
    except BaseException:  # reported by the parent, which carries on with the next row
        send.send({"error": traceback.format_exc()})
    finally:
        send.close()


def in_child(label: str, measure: Callable[..., dict], **kwargs: Any) -> dict[str, Any]:
    """``measure(**kwargs)`` in a forked process (its own memory high-water mark, a fresh
    torch thread pool); ``{"error": ...}`` when it raised or died (e.g. killed for memory).
    ``peak_rss_mb``: this process's RSS now plus the child's growth (see the module
    docstring)."""
    print(f"  {label} ...", file=sys.stderr, flush=True)
    base, started = rss_mb(), time.perf_counter()
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, measure, kwargs))
    process.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:  # it died without a word
        result = {}
    process.join()
    if not result:
        result = {"error": f"the process died (exit code {process.exitcode})"}
    if "error" in result:
        print(f"  {label}: failed\n{result['error']}", file=sys.stderr, flush=True)
    else:
        result["peak_rss_mb"] = base + result["rss_growth_mb"]
        print(f"  {label}: done in {time.perf_counter() - started:.1f}s, peak RSS "
              f"{result['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)  # fmt: skip
    return result


def preload_dynamo() -> float:
    """Import ``torch._dynamo`` here, once: ``FlopCounterMode`` and the optimisers import it on
    first use, which would cost every latency and training process a second. (After the
    backtests, whose processes never import it, so their RSS baseline stays without it.)
    Returns this process's RSS after it."""
    import torch._dynamo  # noqa: F401, PLC0415

    return rss_mb()


def load_bars(data_dir: Path) -> tuple[Panel, str]:
    """Hourly bars of the five symbols from ``HISTORY_START`` to the end of ``YEAR``: the
    real ones, or seeded synthetic bars (and why) when they are missing."""
    start, end = to_ms(HISTORY_START), to_ms(YEAR[1])
    try:
        return load_panel(data_dir, SYMBOLS, "1h", start, end), f"real 1h bars from {data_dir}"
    except DataError as error:
        bars = (end - start) // HOUR_MS
        panel = synthetic_panel(SYMBOLS, "1h", bars, seed=SEED, start_ms=start)
        return panel, f"SYNTHETIC bars (seed {SEED}): {error}"


# -- printing --------------------------------------------------------------------------------
def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def failed(row: dict) -> str:
    return "failed: " + row["error"].strip().splitlines()[-1]


def latency_table(rows: list[dict]) -> str:
    headers = ["model", "size", "input (one decision)", "MFLOP", "floor ms", "f32 p50",
               "f32 p99", "f64 p50", "f64 p99", "reps f32/f64", "p50<5ms f32/f64",
               "peak RSS MB"]  # fmt: skip
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["model"], r["size"], failed(r), *[""] * (len(headers) - 3)])
            continue
        f32, f64 = r["float32"], r["float64"]
        lines.append([
            r["model"], r["size"], r["input"], f"{r['mflop']:,.1f}", f"{r['floor_ms']:.2f}",
            f"{f32['p50_ms']:.2f}", f"{f32['p99_ms']:.2f}", f"{f64['p50_ms']:.2f}",
            f"{f64['p99_ms']:.2f}", f"{f32['reps']}/{f64['reps']}",
            f"{yes(f32['meets_target'])}/{yes(f64['meets_target'])}", f"{r['peak_rss_mb']:.0f}",
        ])  # fmt: skip
    return table(lines, headers)


def backtest_table(rows: list[dict], year_bars: int) -> str:
    headers = ["model", "decisions", "batched s", "batched dec/s", "streaming s (year)",
               "streaming dec/s", "streaming decision p50/p99 ms", "p50 target",
               "year<60s batched/streaming", "same decisions", "checkpoint s",
               "peak RSS MB batched/streaming"]  # fmt: skip
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["model"], failed(r), *[""] * (len(headers) - 2)])
            continue
        b, s = r["batched"], r["streaming"]
        year_streaming = r["streaming_year_seconds"]
        note = "" if s["bars"] == year_bars else f" est. from {s['bars']:,} bars"
        decision = s["decision_ms"]
        target = TARGET_STREAMING_P50_MS.get(r["model"])
        met = "" if target is None else f"< {target:g} ms: {yes(decision['p50'] < target)}"
        lines.append([
            r["model"], f"{b['decisions']:,}", f"{b['seconds']:.1f}",
            f"{b['decisions_per_second']:,.1f}", f"{year_streaming:.1f}{note}",
            f"{s['decisions_per_second']:,.1f}",
            f"{decision['p50']:.2f}/{decision['p99']:.2f}", met,
            f"{yes(b['seconds'] < TARGET_YEAR_S)}/{yes(year_streaming < TARGET_YEAR_S)}",
            f"{yes(r['same_decisions'])} ({s['decisions']:,})",
            f"{r['checkpoint']['seconds']:.1f}",
            f"{b['peak_rss_mb']:.0f}/{s['peak_rss_mb']:.0f}",
        ])  # fmt: skip
    return table(lines, headers)


def training_table(rows: list[dict]) -> str:
    headers = ["model", "size", "batch (micro)", "steps", "s/step", "samples/s", "threads",
               "peak RSS MB"]  # fmt: skip
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["model"], r["size"], failed(r), *[""] * (len(headers) - 3)])
            continue
        batch = str(r["batch_size"])
        if r["micro_batch"] < r["batch_size"]:
            batch += f" ({r['micro_batch']})"
        lines.append([r["model"], r["size"], batch, str(r["steps"]),
                      f"{r['seconds_per_step']:.3f}", f"{r['samples_per_second']:,.1f}",
                      str(r["threads"]), f"{r['peak_rss_mb']:.0f}"])  # fmt: skip
    return table(lines, headers)


# -- main ------------------------------------------------------------------------------------
def backtest_model(
    name: str, history: Panel, year: Panel, args: argparse.Namespace, folder: Path
) -> dict[str, Any]:
    """Checkpoint, batched year, streaming bars: three processes, one row."""
    path = folder / f"{name}.pt"
    row: dict[str, Any] = {"model": name}
    checkpoint = in_child(f"{name}: checkpoint", make_checkpoint, name=name, history=history,
                          epochs=args.train_epochs, path=path)  # fmt: skip
    if "error" in checkpoint:
        return {**row, "error": checkpoint["error"]}
    streaming_rows = min(args.streaming_rows or len(year), len(year))
    common = {"name": name, "checkpoint": path, "history": history,
              "block_rows": args.block_rows, "compare_rows": streaming_rows,
              "threads": args.backtest_threads, "precision": args.precision}  # fmt: skip
    batched = in_child(f"{name}: batched year ({len(year):,} bars)", run_backtest, bars=year,
                       use_batch=True, **common)  # fmt: skip
    streaming = in_child(
        f"{name}: streaming ({streaming_rows:,} bars)",
        run_backtest,
        bars=year.slice(0, streaming_rows),
        use_batch=False,
        **common,
    )
    for result in (batched, streaming):
        if "error" in result:
            return {**row, "error": result["error"]}
    same = batched["compared"] == streaming["compared"]
    scale = len(year) / streaming["bars"]
    return {**row, "checkpoint": checkpoint, "batched": batched, "streaming": streaming,
            "streaming_year_seconds": streaming["seconds"] * scale,
            "same_decisions": same}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma list")
    parser.add_argument("--reps", type=int, default=300, help="timed calls per latency")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="time budget of one latency measurement"
    )
    parser.add_argument(
        "--backtest-rows", type=int, default=0, help="bars of the year to replay (0: all)"
    )
    parser.add_argument(
        "--streaming-rows",
        type=int,
        default=1000,
        help="bars replayed streaming, extrapolated to the year (0: all)",
    )
    parser.add_argument(
        "--block-rows", type=int, default=8192, help="replay block size (config default)"
    )
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default=DEFAULT_PRECISION,
        help="the strategies' serving precision in the backtests (default: theirs)",
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--train-epochs",
        type=int,
        default=0,
        help="epochs the backtest's checkpoint is trained (0: untrained)",
    )
    parser.add_argument("--train-steps", type=int, default=20, help="timed training steps")
    parser.add_argument(
        "--min-reps", type=int, default=3, help="timed latency calls however slow the model"
    )
    parser.add_argument(
        "--train-seconds", type=float, default=30.0, help="time budget of one training measurement"
    )
    parser.add_argument("--train-batch", type=int, help="batch size (default: the chapter's)")
    parser.add_argument(
        "--train-memory-mb",
        type=float,
        default=3000.0,
        help="activation memory of one training step; larger batches accumulate micro-batches",
    )
    parser.add_argument(
        "--backtest-threads",
        type=int,
        default=1,
        help="torch threads of the backtests (1: the live path's cost per core)",
    )
    parser.add_argument(
        "--train-threads",
        default=f"1,{torch.get_num_threads()}",
        help="comma list of torch thread counts to train with (default: 1 and torch's)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; available: {', '.join(STRATEGIES)}")
    sections = [n.strip() for n in args.sections.split(",") if n.strip()]
    if not sections or set(sections) - set(SECTIONS):
        parser.error(f"--sections: a comma list of {', '.join(SECTIONS)}")

    started = time.perf_counter()
    bars, source = load_bars(data_dir() / "bybit-linear")
    first = int(np.searchsorted(bars.starts, to_ms(YEAR[0])))
    history = bars.slice(0, first)
    year = bars.slice(first, first + args.backtest_rows if args.backtest_rows else len(bars))
    settings = {
        "data": source, "symbols": list(SYMBOLS), "history": [HISTORY_START, YEAR[0]],
        "year": list(YEAR), "history_bars": len(history), "year_bars": len(year),
        "torch": torch.__version__, "python": platform.python_version(),
        "cpus": os.cpu_count(), "default_threads": torch.get_num_threads(),
        "parent_rss_mb": rss_mb(), "load_average_start": os.getloadavg(),
        **{k: v for k, v in vars(args).items() if k not in ("json", "models")},
    }  # fmt: skip
    print(f"Models benchmark — torch {torch.__version__}, {os.cpu_count()} CPUs "
          f"(default threads {torch.get_num_threads()}), load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, parent RSS "
          f"{settings['parent_rss_mb']:.0f} MB")  # fmt: skip
    print(f"data: {source}")

    backtest: list[dict] = []
    if "backtest" in sections:
        span = f"{iso(int(year.starts[0]))[:10]}..{iso(int(year.starts[-1]) + HOUR_MS)[:10]}"
        print(f"\n(1) backtest: {len(year):,} hourly bars ({span}) × {len(SYMBOLS)} symbols, "
              f"strategy defaults ({args.precision} serving), {args.backtest_threads} "
              f"thread(s), block {args.block_rows} rows, primed with {len(history):,} bars; "
              f"checkpoints trained {args.train_epochs} epochs"
              f"{' (seeded weights)' if not args.train_epochs else ''}; target a year < "
              f"{TARGET_YEAR_S:g} s", flush=True)  # fmt: skip
        with tempfile.TemporaryDirectory() as folder:
            for name in names:
                backtest.append(backtest_model(name, history, year, args, Path(folder)))
        print(backtest_table(backtest, len(year)), flush=True)

    latency: list[dict] = []
    if "latency" in sections:
        settings["parent_rss_mb_with_dynamo"] = preload_dynamo()
        print(f"\n(2) inference latency per decision: 1 thread, eval, inference_mode, up to "
              f"{args.reps} reps or {args.seconds:g} s; target p50 < {TARGET_P50_MS:g} ms; "
              f"floor = MFLOP at {CORE_GFLOPS:g} GFLOP/s (parent RSS now "
              f"{settings['parent_rss_mb_with_dynamo']:.0f} MB)", flush=True)  # fmt: skip
        for name in names:
            for size, config in sizes(name).items():
                result = in_child(f"{name} ({size}): latency", measure_latency, name=name,
                                  config=config, reps=args.reps, seconds=args.seconds,
                                  min_reps=args.min_reps)  # fmt: skip
                latency.append({"model": name, "size": size, **hyperparameters(name, config),
                                **result})  # fmt: skip
        print(latency_table(latency), flush=True)

    training: list[dict] = []
    if "training" in sections:
        print(f"\n(3) training throughput: the chapter's optimiser on one fixed batch, up to "
              f"{args.train_steps} steps or {args.train_seconds:g} s after a warm-up step; "
              f"micro-batches above {args.train_memory_mb:g} MB of activations",
              flush=True)  # fmt: skip
        thread_counts = sorted({int(t) for t in args.train_threads.split(",")})
        for name in names:
            for size, config in sizes(name).items():
                for threads in thread_counts:
                    result = in_child(f"{name} ({size}, {threads} threads): training",
                                      measure_training, name=name, config=config,
                                      steps=args.train_steps, seconds=args.train_seconds,
                                      batch=args.train_batch, threads=threads,
                                      memory_mb=args.train_memory_mb)  # fmt: skip
                    training.append({"model": name, "size": size,
                                     **hyperparameters(name, config), **result})  # fmt: skip
        print(training_table(training), flush=True)

    seconds = time.perf_counter() - started
    settings["load_average_end"] = os.getloadavg()
    settings["seconds"] = seconds
    print(f"\nfinished in {seconds:.0f} s; load average now "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results = {"settings": settings, "backtest": backtest, "latency": latency,
                   "training": training}  # fmt: skip
        args.json.write_text(json.dumps(results, indent=1, default=str))
    rows = backtest + latency + training
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
