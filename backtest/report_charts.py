"""Plotly figures of the report, one function per chart, drawing only what
:mod:`backtest.report_data` and :mod:`models.explain` computed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backtest.report_data import Contributions, Curve, keep_points
from models.explain import Explanation

HEIGHT = 360


def _layout(fig: go.Figure, title: str, y_title: str = "", height: int = HEIGHT) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def curves(named: Sequence[tuple[str, Curve]], title: str, y_title: str, fill: bool = False):
    """One line per named curve (runs overlaid, or one run's equity)."""
    fig = go.Figure()
    for name, curve in named:
        fig.add_trace(
            go.Scatter(
                x=curve.when,
                y=curve.values,
                name=name,
                mode="lines",
                fill="tozeroy" if fill else None,
                line={"width": 1.3},
            )
        )
    return _layout(fig, title, y_title)


def weights(table: pd.DataFrame) -> go.Figure:
    """Target weights after risk, one step line per symbol."""
    fig = go.Figure()
    for symbol in table.columns:
        keep = keep_points(table[symbol].to_numpy(float))
        fig.add_trace(
            go.Scatter(
                x=table.index[keep],
                y=table[symbol].to_numpy(float)[keep],
                name=symbol,
                mode="lines",
                line_shape="hv",
            )
        )
    return _layout(fig, "target weights per symbol (after risk)", "weight")


def contributions(found: Contributions) -> go.Figure:
    """Stacked parts of each symbol's P&L, with the total as a marker."""
    table = found.table
    fig = go.Figure()
    parts = {"realised": 1, "unrealised": 1, "funding": 1, "fees": -1}
    for part, sign in parts.items():
        label = "fees (paid)" if part == "fees" else part
        fig.add_trace(go.Bar(x=table.index, y=sign * table[part], name=label))
    fig.add_trace(
        go.Scatter(
            x=table.index,
            y=table["total"],
            name="total",
            mode="markers",
            marker={"symbol": "diamond", "size": 11, "color": "black"},
        )
    )
    fig.update_layout(barmode="relative")
    title = (
        f"P&L contribution per symbol (USDT); {found.marked_with}; "
        f"unexplained {found.unexplained:+,.2f}"
    )
    return _layout(fig, title, "USDT")


def costs(costs_table: pd.DataFrame) -> go.Figure:
    """Cumulative fees paid and funding received over time."""
    fig = go.Figure()
    for column, name in (("fees", "fees paid"), ("funding", "funding received (− = paid)")):
        values = costs_table[column].to_numpy(float)
        keep = keep_points(values)
        fig.add_trace(
            go.Scatter(
                x=costs_table["when"].iloc[keep],
                y=values[keep],
                name=name,
                mode="lines",
                line_shape="hv",
            )
        )
    return _layout(fig, "fees and funding, cumulative", "USDT")


def model_versions(made: pd.DataFrame) -> go.Figure:
    """Which model version made each decision, over time (one row of markers per version)."""
    fig = go.Figure()
    for version, rows in made.groupby("model_version", sort=False):
        keep = keep_points(rows["time"].to_numpy(float))
        fig.add_trace(
            go.Scatter(
                x=rows["when"].iloc[keep],
                y=[version] * len(keep),
                name=str(version),
                mode="markers",
                marker={"size": 5},
            )
        )
    return _layout(fig, "model version of each decision", "", height=220 + 30 * len(fig.data))


def heatmap(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str):
    """A summary map with its values written in the cells."""
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=list(cols),
            y=list(rows),
            colorscale="Viridis",
            text=np.round(matrix, 3),
            texttemplate="%{text}",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title)


def ranking(names: Sequence[str], values: np.ndarray, title: str, x_title: str) -> go.Figure:
    """Horizontal bars, largest on top."""
    order = np.argsort(values)
    fig = go.Figure(
        go.Bar(x=np.asarray(values)[order], y=[names[i] for i in order], orientation="h")
    )
    fig.update_layout(xaxis_title=x_title)
    return _layout(fig, title)


def attention(e: Explanation) -> list[go.Figure]:
    """The charts of one model's attention summaries (what ``bot explain`` draws as PNGs)."""
    a, when = e.arrays, f"{e.version}: mean of {e.decisions:,} decisions to {e.period[1]} UTC"
    figures = []
    if "asset_attention" in a:
        figures.append(
            heatmap(
                a["asset_attention"],
                e.symbols,
                e.symbols,
                f"cross-asset attention, row reads column ({when})",
            )
        )
    if "leadership" in a:
        figures.append(
            ranking(
                e.symbols,
                a["leadership"],
                f"lead–lag ranking ({when})",
                "share of the others' context read from its past bars",
            )
        )
    if "temporal" in a:
        ago = [f"t-{i}" for i in range(a["temporal"].shape[1] - 1, -1, -1)]
        figures.append(
            heatmap(
                a["temporal"], e.symbols, ago, f"TABL temporal attention over the window ({when})"
            )
        )
    if "effective_scale_weights" in a:
        figures.append(
            heatmap(
                a["effective_scale_weights"],
                e.symbols,
                e.labels["scales"],
                f"multi-scale weights, importance × gates ({when})",
            )
        )
    return figures
