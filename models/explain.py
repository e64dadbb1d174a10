"""What a model attended to, summarised over many decisions and drawn as PNG files.

One decision's attention map is noise; the chapters read their maps averaged over a period,
and so does this module: every summary is a mean over the decisions given. The summaries are
plain arrays (tested on their own), the plots only draw them.

* cross-asset network: the asset × asset attention (query asset reads source asset, averaged
  over heads, steps and decisions) and the **lead–lag ranking**: how much of the other assets'
  lead–lag context comes from each asset's *past* bars (lags ≥ 1) — an asset others read with
  a delay leads them;
* Stockformer: the cross-ticker attention, likewise averaged;
* TABL: the temporal attention over the window, per symbol (which bars ago mattered; a
  multi-head TABL's heads averaged);
* multi-scale network: the effective weight of each scale (learned importance × the dynamic
  gates), per symbol, beside the learned prior.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: the bot runs on servers without a display

import matplotlib.pyplot as plt
import numpy as np
import torch

from models.base import TradingModel, batch_len, split_batch

CHUNK = 32  # decisions per forward pass: the temporal maps are [B, A, heads, T, T]


@dataclass
class Explanation:
    """Summaries of one model's attention over a set of decisions."""

    model: str
    version: str
    symbols: list[str]
    decisions: int
    period: tuple[str, str]  # first and last decision, readable UTC
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)


def mean_attention(
    model: TradingModel, inputs: Any, keys: tuple[str, ...], chunk: int = CHUNK
) -> dict[str, np.ndarray]:
    """Mean over all decisions of ``inputs`` of each attention map in ``keys`` (first axis =
    decisions), ``chunk`` decisions per forward pass."""
    totals: dict[str, np.ndarray] = {}
    model.eval()
    with torch.inference_mode():
        for part in split_batch(inputs, chunk):
            attention = model(part, return_attention=True).attention
            for key in keys:
                summed = attention[key].double().sum(dim=0).numpy()
                totals[key] = totals[key] + summed if key in totals else summed
    count = batch_len(inputs)
    if count == 0:
        raise ValueError("no decisions to explain")
    return {key: total / count for key, total in totals.items()}


def lead_lag_ranking(lead_lag: np.ndarray) -> np.ndarray:
    """Leadership of each asset from the mean ``lead_lag[A_target, A_source, lags]`` map: the
    share of the other assets' context read from its lagged (≥ 1 bar old) values, averaged
    over those other assets. Same-step reads (lag 0) are co-movement, not leadership."""
    n_assets = lead_lag.shape[0]
    lagged = lead_lag[:, :, 1:].sum(axis=-1)  # [target, source]
    np.fill_diagonal(lagged, 0.0)
    return lagged.sum(axis=0) / max(n_assets - 1, 1)


def summarise(
    model: TradingModel, inputs: Any, n_assets: int, chunk: int = CHUNK
) -> dict[str, np.ndarray]:
    """The per-model summaries named in the module docstring, from all ``inputs``."""
    name = model.name
    if name == "cross_asset":
        maps = mean_attention(model, inputs, ("cross_asset", "lead_lag"), chunk)
        cross = maps["cross_asset"].mean(axis=(0, 1))  # heads, steps → [A, A]
        return {
            "asset_attention": cross,
            "lead_lag": maps["lead_lag"],
            "leadership": lead_lag_ranking(maps["lead_lag"]),
            "lag_profile": maps["lead_lag"].sum(axis=(0, 1)) / n_assets,
        }
    if name == "stockformer":
        maps = mean_attention(model, inputs, ("cross_ticker",), chunk)
        return {"asset_attention": maps["cross_ticker"].mean(axis=0)}
    # single-series models: the decisions are [B·A] with the assets innermost
    return _per_asset(model, inputs, n_assets, chunk)


def _per_asset(model: TradingModel, inputs: Any, n_assets: int, chunk: int) -> dict:
    key = "temporal" if model.name == "tabl" else "effective_scale_weights"
    rows = np.arange(batch_len(inputs)) % n_assets
    out = []
    for asset in range(n_assets):
        picked = _take(inputs, np.flatnonzero(rows == asset))
        out.append(mean_attention(model, picked, (key,), chunk)[key])
    stacked = np.stack(out)  # [A, T] (multi-head TABL: [A, heads, T]) or [A, S]
    summary = {key: stacked.mean(axis=1) if stacked.ndim == 3 else stacked}
    if model.name == "multiscale":  # the learned prior is the same for every input
        with torch.inference_mode():
            output = model(_take(inputs, np.arange(1)), return_attention=True)
        summary["scale_importance"] = output.attention["scale_importance"].double().numpy()
    return summary


def _take(inputs: Any, index: np.ndarray) -> Any:
    picked = torch.from_numpy(index)
    if isinstance(inputs, dict):
        return {k: v[picked] for k, v in inputs.items()}
    return inputs[picked]


# -- drawing ---------------------------------------------------------------------------------
def _heatmap(ax, matrix: np.ndarray, rows: list[str], cols: list[str], title: str) -> None:
    image = ax.imshow(matrix, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            bright = matrix[i, j] > 0.6 * matrix.max()
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="k" if bright else "w")  # fmt: skip
    plt.colorbar(image, ax=ax, fraction=0.046)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _subtitle(e: Explanation) -> str:
    return f"{e.version}: mean of {e.decisions:,} decisions, {e.period[0]} – {e.period[1]} UTC"


def plot_cross_asset(e: Explanation, stem: Path) -> list[Path]:
    a = e.arrays
    fig, ax = plt.subplots(figsize=(7, 6))
    _heatmap(ax, a["asset_attention"], e.symbols, e.symbols,
             "cross-asset attention (row reads column)")  # fmt: skip
    fig.suptitle(_subtitle(e), fontsize=8)
    heat = _save(fig, stem.with_name(f"{stem.name}-attention.png"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    order = np.argsort(-a["leadership"])
    left.barh([e.symbols[i] for i in order][::-1], a["leadership"][order][::-1], color="tab:blue")
    left.set_xlabel("share of the others' context read from its past bars")
    left.set_title("lead–lag ranking (top leads)")
    lags = np.arange(len(a["lag_profile"]))
    right.bar(lags, a["lag_profile"], color="tab:orange")
    right.set_xlabel("lag (bars)")
    right.set_ylabel("share of context")
    right.set_title("where in time the context comes from")
    fig.suptitle(_subtitle(e), fontsize=8)
    return [heat, _save(fig, stem.with_name(f"{stem.name}-lead-lag.png"))]


def plot_stockformer(e: Explanation, stem: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(7, 6))
    _heatmap(ax, e.arrays["asset_attention"], e.symbols, e.symbols,
             "cross-ticker attention (row reads column)")  # fmt: skip
    fig.suptitle(_subtitle(e), fontsize=8)
    return [_save(fig, stem.with_name(f"{stem.name}-attention.png"))]


def plot_tabl(e: Explanation, stem: Path) -> list[Path]:
    temporal = e.arrays["temporal"]  # [A, T], oldest bar first
    ago = np.arange(temporal.shape[1])[::-1]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    extent = (ago[0] + 0.5, ago[-1] - 0.5, len(e.symbols) - 0.5, -0.5)
    image = top.imshow(temporal, cmap="viridis", aspect="auto", extent=extent)
    top.set_yticks(range(len(e.symbols)), e.symbols)
    top.set_title("TABL temporal attention over the window")
    plt.colorbar(image, ax=top, fraction=0.03)
    for i, symbol in enumerate(e.symbols):
        bottom.plot(ago, temporal[i], label=symbol, lw=1)
    bottom.axhline(1 / temporal.shape[1], color="k", ls=":", lw=0.8, label="uniform")
    bottom.set_xlabel("bars before the decision")
    bottom.set_ylabel("attention")
    bottom.invert_xaxis()
    bottom.legend(fontsize=7, ncol=3)
    fig.suptitle(_subtitle(e), fontsize=8)
    return [_save(fig, stem.with_name(f"{stem.name}-temporal-attention.png"))]


def plot_multiscale(e: Explanation, stem: Path) -> list[Path]:
    weights, prior = e.arrays["effective_scale_weights"], e.arrays["scale_importance"]
    scales = e.labels["scales"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / (len(e.symbols) + 1)
    x = np.arange(len(scales))
    ax.bar(x, prior, width, label="learned prior", color="grey")
    for i, symbol in enumerate(e.symbols):
        ax.bar(x + (i + 1) * width, weights[i], width, label=symbol)
    ax.set_xticks(x + width * len(e.symbols) / 2, scales)
    ax.set_ylabel("weight in the fused representation")
    ax.set_title("multi-scale importance (importance × gates)")
    ax.legend(fontsize=7, ncol=3)
    fig.suptitle(_subtitle(e), fontsize=8)
    return [_save(fig, stem.with_name(f"{stem.name}-scale-importance.png"))]


PLOTS: dict[str, Callable[[Explanation, Path], list[Path]]] = {
    "cross_asset": plot_cross_asset,
    "stockformer": plot_stockformer,
    "tabl": plot_tabl,
    "multiscale": plot_multiscale,
}
