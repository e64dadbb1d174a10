"""Honest out-of-sample evaluation: the four models against simple baselines, after costs,
over several seeds, with and without the cost-aware decision layer.

Part A — portfolio. Each model trades the real hourly Bybit bars of BTC, ETH, SOL, BNB and
WIF through its model-backed strategy in the backtest engine (the paper daemon's code path),
retrained walk-forward: a first model is fitted on the ``--train-window`` bars closed by the
first decision, then every ``--retrain-every`` an engine job fits a fresh one on the latest
window and the strategy trades the following period with it, so every decision comes after
all the bars (and targets) its model learnt from. Each model runs once per seed (``--seeds``,
default 7, 8, 9) in two variants on the same fits:

* ``signal`` — the model's target weights as they come (the chapter's signal);
* ``decided`` — through the decision layer (:mod:`strategies.decision_layer`) with settings
  fixed before any evaluation (:data:`DECIDED`): an automatic no-trade band whose scale, and
  the signal's smoothing, each refit chooses on its own validation slice
  (:mod:`strategies.selection`); a day's minimum holding; a turnover budget of 40× a year.

Training is cost-aware in both (labels and losses know the 13 bp round trip). Beside the
models, on the same bars and period: equal weight (weekly rebalance, as in config.toml),
buy-and-hold BTC, cross-sectional momentum (168-bar lookback, top 2, daily) long only and
long/short. Every run is made twice on the same decisions, with config.toml's costs and with
none, which gives the Sharpe ratio gross of costs and the break-even cost per fill at which
the net Sharpe ratio would be zero (:mod:`bench.evaluation_stats`). Reported per strategy and
variant, as mean ± standard deviation over seeds: Sharpe (annualised, 365 days) net and
gross, total return, maximum drawdown, turnover a year (traded notional / mean equity), fees
(share of the initial equity), the break-even cost, and the Sharpe difference to equal weight
with a 95% block-bootstrap interval (10-day blocks of daily returns, the same blocks for
every seed and for equal weight).

Costs and limits: config.toml's taker fee (5.5 bp) and slippage (1 bp) on every fill, funding
from the 8-hourly rates; long only (config default) except the long/short momentum row; at
most 100% of equity in one symbol and 100% gross (the per-symbol cap is raised from
config.toml's 0.5 so buy-and-hold BTC can hold BTC fully, the same limits for every row); no
drawdown kill switch, so each curve runs to the end.

Choices (full run), made to fit about an hour on two shared CPU cores:

* out-of-sample period 2024-07-01 → 2025-07-01 (8,760 hourly bars; the first decision at the
  close of the first bar, the first training window ending there);
* retrain every 720 h (30 days; the scheduler's grid is aligned to the epoch, so the first
  refit comes before 30 days have passed) on the latest 4,000 bars (~5.5 months), 2 epochs per
  fit (the chapters' optimiser recipes otherwise; a fit's latest 20% validates);
* decisions every 4 h (``rebalance="4h"``) on targets 4 bars ahead (``horizon=4``; multiscale
  ``horizons=(4, 16, 96)``, the strategy's (1, 4, 24) scaled to the holding period);
* sizes: the model's default (the chapter's) for cross-asset; Stockformer reduced (d_model
  64, 4 heads, 2 layers, d_ff 128 instead of 128/8/3/256: at the default size a training
  sample costs ~3× as much); multiscale and TABL at their strategies' defaults (1h/4h/1d
  windows 48/42/30 with d_model 64; TABL attending straight over 100 bars). The "config"
  column says where a size differs from the model's default;
* torch uses one thread (``--threads``): on two cores shared with other work, two threads
  made training an order of magnitude slower (spinning threads waiting for each other).

The runs of one seed share their walk-forward fits (:func:`reused_fits`): the four runs of a
model and seed differ only after the fit. ``--results DIR`` keeps each finished run, so an
interrupted evaluation resumes, and two processes over different ``--models`` (one with
``--no-baselines --no-book``) share the work of two cores; a last call renders them all.

Part B — order book. TABL on the Bitstamp BTC/USD book (5,011 snapshots, ~3.6 s apart):
features from :func:`models.features.orderbook_features` on 10 levels (relative spread,
top-level imbalance, each level's log distance to the mid and log1p size; the log mid itself
is replaced by its change since the previous snapshot, because a price level z-scored with
the training part's statistics runs out of range on later snapshots), windows of 10
snapshots, labels from the mid's log move 10, 50 and 100 snapshots ahead in three classes
(down / stationary / up) with the threshold at the 1/3 quantile of |move| on the training
part (:func:`models.datasets.balanced_threshold`): a third of the training labels are
stationary, and the rest split between down and up as the training part's moves did (the
threshold is symmetric, so a label's sign keeps its meaning; 28–39% each here).
Split in time order: 60% train, 20% validation, 20% test, with an embargo of horizon + window
snapshots before validation and before test (no training target overlaps a later window);
normalisation fitted on the training windows only. TABL is the paper's C(TABL) topology
(43×10 → 60×10 → 120×5 → 3×1) with the chapter's recipe and four attention heads, early
stopped on validation loss. Beside it: the majority class of the training part, and a
multinomial logistic regression (torch, L-BFGS) on the same flattened normalised windows with
its L2 penalty picked on the validation part. Reported: test accuracy and macro-F1.

Everything is seeded: two runs print the same table.

    .venv/bin/python bench/evaluate.py                          # the full run
    .venv/bin/python bench/evaluate.py --json out/evaluate.json --markdown out/evaluate.md
    .venv/bin/python bench/evaluate.py --models tabl,multiscale --epochs 3 --start 2025-01-01
    .venv/bin/python bench/evaluate.py --quick                  # tiny models, two weeks: < 1 min
    .venv/bin/python bench/evaluate.py --models cross_asset,tabl --results out/rows &
    .venv/bin/python bench/evaluate.py --models stockformer,multiscale --results out/rows \
        --no-baselines --no-book; .venv/bin/python bench/evaluate.py --results out/rows
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backtest.metrics import bar_returns  # noqa: E402
from backtest.runner import run_backtest  # noqa: E402
from bench import data_dir  # noqa: E402
from bench.evaluation_stats import (  # noqa: E402
    break_even_bp,
    daily_returns,
    sharpe_difference_interval,
)
from bot.cli.common import table  # noqa: E402
from bot.config import Settings, load_settings  # noqa: E402
from bot.core.timeutil import iso, normalize_interval  # noqa: E402
from models.datasets import (  # noqa: E402
    Normalizer,
    WindowDataset,
    balanced_threshold,
    forward_log_returns,
    three_classes,
)
from models.features import orderbook_features  # noqa: E402
from models.registry import build, model_class  # noqa: E402
from models.training import CHAPTER_RECIPES, predict, seed_everything, train  # noqa: E402
from strategies import model_backed  # noqa: E402
from strategies.registry import resolve  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "WIFUSDT")
MODELS = ("cross_asset", "stockformer", "multiscale", "tabl")
#: (row label, strategy, parameters, symbols it trades (None = all five), shorts allowed)
BASELINES: tuple[tuple[str, str, dict[str, Any], list[str] | None, bool], ...] = (
    ("equal weight", "equal_weight", {"rebalance": "1w"}, None, False),
    ("buy-and-hold BTC", "buy_and_hold", {}, ["BTCUSDT"], False),
    ("momentum", "momentum", {"lookback": 168, "top": 2, "rebalance": "1d"}, None, False),
    ("long/short momentum", "momentum",
     {"lookback": 168, "top": 2, "long_short": True, "rebalance": "1d"}, None, True),
)  # fmt: skip
#: What the Sharpe differences are measured against.
BENCHMARK = "equal weight"
#: The decision layer's settings, fixed before any evaluation (not tuned on these bars): an
#: automatic no-trade band whose scale, with the signal's smoothing, each refit picks on its
#: own validation slice; positions held a day at least; 40× equity a year at most.
DECIDED = {"band": "auto", "select": {"band_scale": [0.5, 1, 2, 4], "smoothing": [1, 3, 6]},
           "min_hold": "1d", "turnover_budget": 40.0}  # fmt: skip
#: Each model runs with its raw signal and through the decision layer (``--variants``; the
#: ensemble, three models fitted with consecutive seeds at every refit, on request).
VARIANTS: dict[str, dict[str, Any]] = {
    "signal": {},
    "decided": DECIDED,
    "ensemble": {**DECIDED, "ensemble": 3},
}
DEFAULT_VARIANTS = ("signal", "decided")
SEEDS = (7, 8, 9)
BARS_PER_DAY = 24
BARS_PER_YEAR = 365 * BARS_PER_DAY
INITIAL_CASH = 100_000.0  # config.toml's; fees are shown as a share of it
ROUND_TRIP_BP = 13.0  # config.toml's 5.5 bp fee + 1 bp slippage, bought and sold
#: The same limits for every row (see the module docstring).
RISK = {"max_weight": 1.0, "max_gross": 1.0, "allow_short": False, "max_drawdown": None}
LOB_FILE = Path("lob") / "bitstamp-btcusd-2015-05-01-lob20.csv"
CLASSES = ("down", "stationary", "up")

#: The hyperparameters a "config" cell shows, with their short labels.
SIZE_LABELS = {
    "cross_asset": {"seq_len": "seq", "d_model": "d", "n_heads": "heads", "n_layers": "layers",
                    "d_ff": "ff"},
    "stockformer": {"seq_len": "seq", "d_model": "d", "n_heads": "heads", "n_layers": "layers",
                    "d_ff": "ff"},
    "multiscale": {"scales": "scales", "seq_lens": "seq", "d_model": "d", "n_layers": "layers",
                   "n_heads": "heads"},
    "tabl": {"seq_len": "seq", "hidden": "hidden", "n_heads": "heads"},
}  # fmt: skip


@dataclass(frozen=True)
class PortfolioPlan:
    """Part A's walk-forward settings (the same for every model)."""

    start: str  # first traded bar (its close is the first decision)
    end: str  # exclusive
    retrain_every: str  # an interval: "720h", "30d"
    train_window: int  # bars each fit learns from
    epochs: int
    rebalance: str
    horizon: int  # bars ahead the targets look (multiscale: horizon × (1, 4, 24))
    sizes: dict[str, dict[str, Any]]  # hyperparameters over each strategy's defaults


@dataclass(frozen=True)
class BookPlan:
    """Part B's settings."""

    levels: int = 10
    window: int = 10
    horizons: tuple[int, ...] = (10, 50, 100)
    train_share: float = 0.6
    val_share: float = 0.2
    epochs: int = 40
    hidden: tuple[tuple[int, int], ...] = ((60, 10), (120, 5))  # the paper's C(TABL)
    penalties: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)  # logistic regression L2 grid


FULL = PortfolioPlan(
    start="2024-07-01", end="2025-07-01", retrain_every="720h", train_window=4000, epochs=2,
    rebalance="4h", horizon=4,
    sizes={"stockformer": {"d_model": 64, "n_heads": 4, "n_layers": 2, "d_ff": 128}},
)  # fmt: skip
#: The smoke test's: two weeks, weekly refits of tiny models for one epoch.
QUICK = PortfolioPlan(
    start="2025-06-01", end="2025-06-15", retrain_every="168h", train_window=1300, epochs=1,
    rebalance="4h", horizon=4,
    sizes={
        "cross_asset": {"seq_len": 24, "d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32},
        "stockformer": {"seq_len": 24, "d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32},
        "multiscale": {"seq_lens": (12, 6, 5), "n_layers": (1, 1, 1), "n_heads": (2, 2, 2),
                       "d_model": 16, "cross_heads": 2},
        "tabl": {"seq_len": 24},
    },
)  # fmt: skip
QUICK_BOOK = BookPlan(epochs=2, penalties=(1e-2,))

_started = time.perf_counter()


def note(message: str) -> None:
    """Progress on stderr (stdout carries only the table)."""
    print(f"[{time.perf_counter() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- Part A: walk-forward portfolio backtests -----------------------------------------------


def settings_for(
    data_dir: Path, plan: PortfolioPlan, strategy: dict[str, Any],
    risk: dict[str, Any] = RISK, free: bool = False,
) -> Settings:  # fmt: skip
    """config.toml with the evaluation's data, period and risk limits, and one strategy;
    ``free``: without fees and slippage (the strategy's own cost settings stay as given)."""
    costs = {"portfolio.fee_bp": 0.0, "portfolio.slippage_bp": 0.0} if free else {}
    return load_settings(
        ROOT / "config.toml",
        {
            "engine.symbols": list(SYMBOLS),
            "engine.interval": "1h",
            "engine.start": plan.start,
            "engine.end": plan.end,
            "data.source": "csv",
            "data.path": str(data_dir / "bybit-linear"),
            **{f"risk.{key}": value for key, value in risk.items()},
            **costs,
            "strategies": [strategy],
        },
    )


def model_params(name: str, plan: PortfolioPlan, seed: int) -> dict[str, Any]:
    """The strategy parameters that make ``name`` retrain walk-forward under ``plan`` (the
    round trip given, so the run without costs trains and decides as the one with them)."""
    params: dict[str, Any] = {
        "round_trip_bp": ROUND_TRIP_BP,
        "retrain_every": f"every {plan.retrain_every}",
        "train_window": plan.train_window,
        "epochs": plan.epochs,
        "horizon": plan.horizon,
        "rebalance": plan.rebalance,
        "seed": seed,
        "model": plan.sizes.get(name, {}),
    }
    if name == "multiscale":  # the strategy's (1, 4, 24) in units of the holding period
        params["horizons"] = [plan.horizon * k for k in (1, 4, 24)]
    return params


def _short(value: Any) -> str:
    if isinstance(value, tuple | list):
        if value and isinstance(value[0], tuple | list):  # TABL hidden layers
            return ",".join("×".join(str(v) for v in pair) for pair in value)
        return "/".join(str(v) for v in value) if value else "none"
    return str(value)


def describe_model(name: str, overrides: dict[str, Any], epochs: int) -> str:
    """The model's size as the strategy builds it, and where it differs from the model's
    defaults (the chapter's sizes, see each config class)."""
    defaults = {
        key: field.default
        for key, field in model_class(name).config_class.__dataclass_fields__.items()
    }
    strategy_defaults = getattr(resolve(name), "default_model", {})
    used = {**defaults, **strategy_defaults, **overrides}
    labels = SIZE_LABELS[name]
    shown = " ".join(f"{label} {_short(used[key])}" for key, label in labels.items())
    changed = [
        f"{label} {_short(defaults[key])}"
        for key, label in labels.items()
        if _short(used[key]) != _short(defaults[key])
    ]
    size = f"default size: {shown}" if not changed else f"{shown} (default: {' '.join(changed)})"
    return f"{size}; {epochs} epoch{'s' if epochs != 1 else ''}/fit"


def _backtest(settings: Settings) -> Any:
    """One engine replay, without the store (the evaluation keeps only what it reports)."""
    return run_backtest(settings, record=False, progress=True)


def run_row(
    data_dir: Path, plan: PortfolioPlan, label: str, kind: str, variant: str, seed: int | None,
    config: str, strategy: dict[str, Any], risk: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """One strategy run twice on the same decisions, with the configured costs and with
    none: the metrics net of costs, the Sharpe ratio and return gross of them, the break-even
    cost and the daily returns the bootstrap resamples."""
    note(f"A: {label} ({variant}{'' if seed is None else f', seed {seed}'}) ...")
    started = time.perf_counter()
    net_settings = settings_for(data_dir, plan, strategy, risk)
    costs = net_settings.portfolio
    cost_bp = costs.fee_bp + costs.slippage_bp
    net = _backtest(net_settings)
    gross = _backtest(settings_for(data_dir, plan, strategy, risk, free=True))
    if not np.array_equal(net.times, gross.times):
        raise RuntimeError(f"{label}: the runs with and without costs cover other bars")
    initial = float(costs.initial_cash)
    net_bars, gross_bars = bar_returns(net.equity, initial), bar_returns(gross.equity, initial)
    metrics, free = net.metrics.as_dict(), gross.metrics.as_dict()
    years = metrics["bars"] / BARS_PER_YEAR
    seconds = time.perf_counter() - started
    row = {
        "name": label, "kind": kind, "variant": variant, "seed": seed, "config": config,
        "strategy": strategy, "start": metrics["start"], "end": metrics["end"],
        "bars": metrics["bars"], "sharpe": metrics["sharpe"],
        "total_return": metrics["total_return"], "max_drawdown": metrics["max_drawdown"],
        "turnover": metrics["turnover"], "turnover_per_year": metrics["turnover"] / years,
        "trades": metrics["trade_count"], "decisions": net.stats.decisions,
        "fees": metrics["fees"], "funding": metrics["funding"],
        "final_equity": metrics["final_equity"], "halted": net.halted_reason,
        "gross_sharpe": free["sharpe"], "gross_return": free["total_return"],
        "break_even_bp": break_even_bp(gross_bars, net_bars, cost_bp),
        "daily_returns": daily_returns(net.equity, initial, BARS_PER_DAY).tolist(),
        "seconds": round(seconds, 1),
    }  # fmt: skip
    note(f"A: {label} ({variant}) done in {seconds:.0f}s: Sharpe net "
         f"{_number(row['sharpe'], '.2f')} gross {_number(row['gross_sharpe'], '.2f')}, "
         f"return {_number(row['total_return'], '+.1%')}, "
         f"turnover {row['turnover_per_year']:.0f}×/yr")  # fmt: skip
    return row


def _slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts if p is not None)
    return "".join(c if c.isalnum() else "_" for c in text)


def cached_row(results: Path | None, key: str, compute: Any) -> dict[str, Any]:
    """A row from ``results`` when an earlier (or parallel) run stored it, else computed and
    stored: the hour-long evaluation resumes where it stopped and splits across processes."""
    path = None if results is None else results / f"{key}.json"
    if path is not None and path.exists():
        note(f"A: {key} from {path}")
        return json.loads(path.read_text())
    row = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(row, allow_nan=False))
    return row


def portfolio_rows(
    data_dir: Path, plan: PortfolioPlan, models: list[str], seeds: list[int],
    baselines: bool, results: Path | None, variants: tuple[str, ...] = DEFAULT_VARIANTS,
) -> list[dict[str, Any]]:  # fmt: skip
    """Part A: each model over every seed, with its raw signal and through the decision
    layer (the same fits serve both), then the baselines over the same bars."""
    rows = []
    with reused_fits():
        for name in models:
            config = describe_model(name, plan.sizes.get(name, {}), plan.epochs)
            for seed in seeds:
                for variant in variants:
                    params = {**model_params(name, plan, seed), **VARIANTS[variant]}
                    strategy = {"name": name, "params": params}
                    rows.append(cached_row(results, _slug(name, variant, seed), lambda: run_row(
                        data_dir, plan, name, "model", variant, seed, config, strategy, RISK)))  # noqa: B023  # fmt: skip
                forget_fits()  # the next seed fits anew
    if baselines:
        for label, name, params, symbols, shorts in BASELINES:
            strategy = {"name": name, "params": params, "symbols": symbols}
            config = " ".join(f"{k} {v}" for k, v in params.items()) or "hold from the first bar"
            risk = {**RISK, "allow_short": shorts}
            rows.append(cached_row(results, _slug(label), lambda: run_row(
                data_dir, plan, label, "baseline", "-", None, config, strategy, risk)))  # noqa: B023  # fmt: skip
    return rows


_FITS: dict[tuple[Any, ...], Any] = {}


@contextlib.contextmanager
def reused_fits() -> Iterator[None]:
    """Walk-forward fits keyed by what they learn from, so the runs of one seed (with and
    without costs, with and without the decision layer) train each model once: they differ
    only after the fit. Fitting is seeded, so a reused fit is the one a fresh run makes."""
    original = model_backed.fit_on_bars

    def fit(model_name, starts, ohlcv, interval, options, rebalance="bar", progress=False):  # type: ignore[no-untyped-def]
        data = np.ascontiguousarray(ohlcv)
        key = (model_name, interval, rebalance, repr(options), zlib.crc32(data.tobytes()),
               int(starts[0]), len(starts))  # fmt: skip
        if key not in _FITS:
            _FITS[key] = original(model_name, starts, ohlcv, interval, options, rebalance,
                                  progress)  # fmt: skip
        return _FITS[key]

    model_backed.fit_on_bars = fit
    try:
        yield
    finally:
        model_backed.fit_on_bars = original
        forget_fits()


def forget_fits() -> None:
    _FITS.clear()


def summaries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per strategy and variant: means and spreads over seeds, and the bootstrap
    interval of the Sharpe difference to equal weight on the same days."""
    benchmark = next((r for r in rows if r["name"] == BENCHMARK), None)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["name"], r["variant"]), []).append(r)
    out = []
    for (name, variant), runs in groups.items():

        def stat(key: str, runs: list[dict[str, Any]] = runs) -> tuple[float, float]:
            values = np.array([np.nan if r[key] is None else r[key] for r in runs], dtype=float)
            return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

        line = {"name": name, "kind": runs[0]["kind"], "variant": variant,
                "config": runs[0]["config"], "seeds": [r["seed"] for r in runs]}  # fmt: skip
        for key in ("sharpe", "gross_sharpe", "total_return", "max_drawdown",
                    "turnover_per_year", "fees", "break_even_bp"):  # fmt: skip
            line[key] = stat(key)
        if benchmark is not None and name != BENCHMARK:
            days = min(len(benchmark["daily_returns"]), *(len(r["daily_returns"]) for r in runs))
            matrix = np.array([r["daily_returns"][:days] for r in runs])
            line["vs_benchmark"] = sharpe_difference_interval(
                matrix, np.array(benchmark["daily_returns"][:days])
            )
        out.append(line)
    return out


# -- Part B: TABL on the order book ---------------------------------------------------------


def book_inputs(path: Path, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(features ``[T, 3 + 4·levels]``, mid prices ``[T]``) of the snapshots in ``path``.

    The first feature, the log mid, becomes its change since the previous snapshot (see the
    module docstring), so the first snapshot, which has none, is dropped."""
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    features = orderbook_features(raw[:, 1:], levels)
    features[1:, 0] = np.diff(features[:, 0])
    mid = (raw[:, 1] + raw[:, 3]) / 2  # best ask and best bid (FI-2010 order)
    return features[1:], mid[1:]


def chronological_split(n: int, window: int, horizon: int, plan: BookPlan) -> dict[str, np.ndarray]:
    """Train / validation / test decision rows in time order, each later part starting
    ``horizon + window`` rows after the previous one ends: its first window then begins after
    the last target the previous part saw."""
    rows = np.arange(window - 1, n - horizon)  # a full window behind, a known target ahead
    embargo = horizon + window
    first_val = int(len(rows) * plan.train_share)
    first_test = int(len(rows) * (plan.train_share + plan.val_share))
    return {
        "train": rows[:first_val],
        "val": rows[first_val + embargo : first_test],
        "test": rows[first_test + embargo :],
    }


def classification_scores(truth: np.ndarray, guess: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 over the three classes (a class's F1 is 0 when it is neither
    present nor predicted, as scikit-learn's ``zero_division=0``)."""
    f1 = []
    for k in range(len(CLASSES)):
        hit = int(np.sum((guess == k) & (truth == k)))
        wrong = int(np.sum(guess == k)) - hit
        missed = int(np.sum(truth == k)) - hit
        f1.append(2 * hit / (2 * hit + wrong + missed) if hit else 0.0)
    return {"accuracy": float(np.mean(guess == truth)), "macro_f1": float(np.mean(f1))}


def logistic_regression(x: torch.Tensor, y: torch.Tensor, penalty: float) -> nn.Linear:
    """Multinomial logistic regression with an L2 ``penalty``, by L-BFGS from zero weights:
    the problem is convex, so the fit is unique and reproducible."""
    linear = nn.Linear(x.shape[1], len(CLASSES), dtype=torch.float64)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(linear(x), y) + penalty * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return linear


def fit_logistic(
    x: dict[str, torch.Tensor], y: dict[str, torch.Tensor], penalties: tuple[float, ...]
) -> tuple[nn.Linear, float]:
    """The logistic regression, with the L2 penalty of lowest validation loss."""
    fits = [(logistic_regression(x["train"], y["train"], p), p) for p in penalties]
    with torch.no_grad():
        losses = [float(nn.functional.cross_entropy(f(x["val"]), y["val"])) for f, _ in fits]
    return fits[int(np.argmin(losses))]


def book_horizon(
    features: np.ndarray, mid: np.ndarray, horizon: int, plan: BookPlan, seed: int
) -> dict[str, Any]:
    """Part B for one horizon: labels, split, the three classifiers on the test part."""
    window = plan.window
    parts = chronological_split(len(mid), window, horizon, plan)
    moves = forward_log_returns(mid, horizon)
    threshold = balanced_threshold(moves[parts["train"]])
    labels = three_classes(moves, threshold)
    normalizer = Normalizer.fit(features, parts["train"], window)
    series = normalizer.apply(features)[:, None, :]  # one "asset": [T, 1, F]
    sets = {k: WindowDataset(series, rows, window, labels, squeeze_assets=True)
            for k, rows in parts.items()}  # fmt: skip
    truth = {k: labels[rows] for k, rows in parts.items()}
    shares = {k: (np.bincount(t, minlength=3) / len(t)).tolist() for k, t in truth.items()}

    majority = int(np.bincount(truth["train"], minlength=3).argmax())
    results = [
        {
            "method": "majority class (train)",
            "config": f"always {CLASSES[majority]!r}",
            **classification_scores(truth["test"], np.full(len(truth["test"]), majority)),
        }
    ]

    x = {k: s.inputs(parts[k]).reshape(len(parts[k]), -1).double() for k, s in sets.items()}
    y = {k: torch.from_numpy(t) for k, t in truth.items()}
    linear, penalty = fit_logistic(x, y, plan.penalties)
    with torch.no_grad():
        guess = linear(x["test"]).argmax(-1).numpy()
    results.append({"method": "logistic regression",
                    "config": f"flattened {window}×{features.shape[1]} window, L2 {penalty:g}",
                    **classification_scores(truth["test"], guess)})  # fmt: skip

    recipe = CHAPTER_RECIPES["tabl"].with_overrides(epochs=plan.epochs, seed=seed, device="cpu")
    seed_everything(seed)
    model = build("tabl", input_dim=features.shape[1], seq_len=window, hidden=plan.hidden)
    fitted = train(model, sets["train"], sets["val"], recipe, progress=False)
    guess = predict(model, sets["test"].inputs(parts["test"])).prediction.argmax(-1).numpy()
    layers = "→".join(f"{d}×{t}" for d, t in [(features.shape[1], window), *plan.hidden])
    results.append({"method": "TABL",
                    "config": f"C(TABL) {layers}→3×1, {model.config.n_heads} heads, best epoch "
                              f"{fitted.best_epoch + 1}/{len(fitted.history)}",
                    **classification_scores(truth["test"], guess)})  # fmt: skip
    note(f"B: horizon {horizon}: " + ", ".join(
        f"{r['method']} {r['accuracy']:.3f}" for r in results))  # fmt: skip
    return {
        "horizon": horizon,
        "threshold": threshold,
        "embargo": horizon + window,
        "samples": {k: len(rows) for k, rows in parts.items()},
        "first_row": {k: int(rows[0]) for k, rows in parts.items()},
        "class_shares": shares,
        "majority_class": majority,
        "results": results,
    }


def orderbook_part(path: Path, plan: BookPlan, seed: int) -> dict[str, Any]:
    """Part B: every horizon on the same features and split fractions."""
    features, mid = book_inputs(path, plan.levels)
    note(f"B: {len(mid):,} snapshots, {features.shape[1]} features per snapshot")
    horizons = [book_horizon(features, mid, h, plan, seed) for h in plan.horizons]
    return {"file": str(path), "snapshots": len(mid), "features": int(features.shape[1]),
            "plan": asdict(plan), "horizons": horizons}  # fmt: skip


# -- output ---------------------------------------------------------------------------------


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, spec)


def _spread(pair: tuple[float, float], spec: str, seeds: int) -> str:
    mean, sd = pair
    if not math.isfinite(mean):
        return "n/a"
    if seeds < 2:
        return format(mean, spec)
    return f"{format(mean, spec)} ± {format(sd, spec.lstrip('+'))}"


def tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(caption, headers, cells) of Part A and Part B."""
    settings = report["settings"]
    first = report["portfolio"][0]
    caption_a = (
        f"A. Walk-forward, {iso(first['start'])} → {iso(first['end'])} UTC ({first['bars']:,} "
        f"1h bars of {', '.join(SYMBOLS)}); fee {settings['fee_bp']:g} bp + slippage "
        f"{settings['slippage_bp']:g} bp per fill, funding, long only (long/short momentum "
        f"excepted); models refit every {settings['retrain_every']} on "
        f"{settings['train_window']:,} bars, decide every {settings['rebalance']} on "
        f"{settings['horizon']}-bar targets, seeds {', '.join(map(str, settings['seeds']))} "
        "(mean ± standard deviation over seeds); 'decided' = through the decision layer, "
        "'ensemble' = decided on the mean signal of 3 models fitted with consecutive seeds; "
        f"ΔSharpe: vs {BENCHMARK}, 95% block-bootstrap interval (10-day blocks)"
    )
    cells_a = []
    for line in report["summary"]:
        n = len(line["seeds"])
        delta = line.get("vs_benchmark")
        shown = "–" if delta is None else f"{delta[0]:+.2f} [{delta[1]:+.2f}, {delta[2]:+.2f}]"
        breakeven = line["break_even_bp"]
        config = line["config"] if line["variant"] in ("signal", "-") else ""
        cells_a.append([
            line["name"], line["variant"], config,
            _spread(line["sharpe"], ".2f", n), _spread(line["gross_sharpe"], ".2f", n),
            _spread(line["total_return"], "+.1%", n), _spread(line["max_drawdown"], ".1%", n),
            _spread(line["turnover_per_year"], ".0f", n),
            _spread((line["fees"][0] / INITIAL_CASH, line["fees"][1] / INITIAL_CASH), ".1%", n),
            "n/a" if not math.isfinite(breakeven[0]) else f"{breakeven[0]:.1f}", shown,
        ])  # fmt: skip
    headers_a = ["strategy", "variant", "config", "Sharpe", "Sharpe gross", "total return",
                 "max DD", "turnover/yr", "fees", "break-even bp", "ΔSharpe vs EW"]  # fmt: skip
    out = [(caption_a, headers_a, cells_a)]
    book = report.get("orderbook")
    if book is None:
        return out
    caption_b = (
        f"B. Order book, Bitstamp BTC/USD ({book['snapshots']:,} snapshots, "
        f"{book['plan']['levels']} levels, windows of {book['plan']['window']}): test part, "
        "3 classes, threshold balancing the training part"
    )
    cells_b = []
    for h in book["horizons"]:
        for r in h["results"]:
            cells_b.append([str(h["horizon"]), r["method"], r["config"],
                            f"{h['samples']['test']:,}", f"{r['accuracy']:.3f}",
                            f"{r['macro_f1']:.3f}"])  # fmt: skip
    headers_b = ["horizon", "method", "config", "test samples", "accuracy", "macro-F1"]
    out.append((caption_b, headers_b, cells_b))
    return out


def render_text(report: dict[str, Any]) -> str:
    out = []
    for caption, headers, cells in tables(report):
        out += [caption, table(cells, headers), ""]
    out.append(f"wall time {report['wall_seconds'] / 60:.1f} min")
    return "\n".join(out)


def render_markdown(report: dict[str, Any]) -> str:
    out = []
    for caption, headers, cells in tables(report):
        out += [f"**{caption}**", "", "| " + " | ".join(headers) + " |"]
        out.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(headers))) + "|")
        out += ["| " + " | ".join(row) + " |" for row in cells]
        out.append("")
    return "\n".join(out)


# -- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=data_dir(),
        help="folder with bybit-linear/ and lob/ (default: $BOT_DATA_DIR)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny models, two weeks (smoke test)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of models")
    parser.add_argument("--start", help="first traded bar (UTC date or time)")
    parser.add_argument("--end", help="end of the period (exclusive)")
    parser.add_argument("--retrain-every", help="refit period, e.g. 720h or 30d")
    parser.add_argument("--train-window", type=int, help="bars each fit learns from")
    parser.add_argument("--epochs", type=int, help="epochs per walk-forward fit (Part A)")
    parser.add_argument("--book-epochs", type=int, help="Part B's TABL epochs (early stopped)")
    parser.add_argument(
        "--seeds",
        default=",".join(map(str, SEEDS)),
        help="comma list of seeds: each model runs once per seed",
    )
    parser.add_argument("--seed", type=int, default=7, help="Part B's seed")
    parser.add_argument(
        "--results",
        type=Path,
        help="folder keeping each finished run: a rerun resumes, and parallel "
        "runs over other --models share it",
    )
    parser.add_argument("--no-baselines", action="store_true", help="models only (Part A)")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma list of {', '.join(VARIANTS)}",
    )
    parser.add_argument("--no-book", action="store_true", help="skip Part B")
    parser.add_argument(
        "--stored",
        action="store_true",
        help="render every run kept in --results, running nothing (Part A)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--markdown", type=Path, help="also write the tables here (markdown)")
    args = parser.parse_args()
    unknown = sorted(set(args.models.split(",")) - set(MODELS))
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    args.variants = tuple(args.variants.split(","))
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    try:
        args.seeds = [int(x) for x in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds: whole numbers separated by commas, not {args.seeds!r}")
    if args.retrain_every:
        try:
            args.retrain_every = normalize_interval(args.retrain_every)
        except ValueError as exc:
            parser.error(f"--retrain-every: {exc}")
    if args.stored and args.results is None:
        parser.error("--stored renders the runs kept in --results: give --results")
    return args


def stored_rows(results: Path) -> list[dict[str, Any]]:
    """Every run kept in ``results``: models in the table's order (by variant, then seed),
    then the baselines."""
    rows = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    variants, baselines = list(VARIANTS), [b[0] for b in BASELINES]

    def order(row: dict[str, Any]) -> tuple[int, int, int]:
        if row["kind"] == "model":
            return 0, MODELS.index(row["name"]) * 10 + variants.index(row["variant"]), row["seed"]
        return 1, baselines.index(row["name"]), 0

    return sorted(rows, key=order)


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    bars_dir, book_file = args.data / "bybit-linear" / "1h", args.data / LOB_FILE
    missing = [p for p in (bars_dir, book_file) if not p.exists()]
    if missing:
        print(f"real data not found: {missing[0]} (set BOT_DATA_DIR or --data)", file=sys.stderr)
        return 2
    base, book_plan = (QUICK, QUICK_BOOK) if args.quick else (FULL, BookPlan())
    changes = {"start": args.start, "end": args.end, "retrain_every": args.retrain_every,
               "train_window": args.train_window, "epochs": args.epochs}  # fmt: skip
    plan = replace(base, **{k: v for k, v in changes.items() if v is not None})
    if args.book_epochs is not None:
        book_plan = replace(book_plan, epochs=args.book_epochs)
    models = [m for m in MODELS if m in args.models.split(",")]

    costs = settings_for(args.data, plan, {"name": "equal_weight"}).portfolio
    if 2 * (costs.fee_bp + costs.slippage_bp) != ROUND_TRIP_BP or \
            costs.initial_cash != INITIAL_CASH:  # fmt: skip
        print("config.toml's costs or cash changed: update ROUND_TRIP_BP and INITIAL_CASH",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.stored:
        portfolio = stored_rows(args.results)
        args.seeds = sorted({r["seed"] for r in portfolio if r["seed"] is not None})
    else:
        portfolio = portfolio_rows(
            args.data, plan, models, args.seeds, not args.no_baselines, args.results,
            args.variants,
        )  # fmt: skip
    orderbook = None if args.no_book else orderbook_part(book_file, book_plan, args.seed)
    report = {
        "settings": {**asdict(plan), "quick": args.quick, "seeds": args.seeds,
                     "seed": args.seed, "threads": args.threads, "fee_bp": costs.fee_bp,
                     "slippage_bp": costs.slippage_bp, "symbols": list(SYMBOLS), "risk": RISK,
                     "decided": DECIDED},
        "portfolio": portfolio,
        "summary": summaries(portfolio),
        "orderbook": orderbook,
        "wall_seconds": round(time.perf_counter() - _started, 1),
    }  # fmt: skip
    print(render_text(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, allow_nan=False))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
