"""One self-contained HTML page of one or several runs: ``bot report``, ``bot backtest
--report`` and the demo write it.

The page needs no network: plotly.js is embedded once, the figures are JSON drawn by one
script at the end, and the tables sort with a few lines of plain JavaScript. When every chart
is drawn the body gets ``data-charts="drawn"`` (``"failed"`` on an error), which is what a
headless browser waits for. Settings are shown as stored (masked when recorded) and masked
again here, in case a URL with a password reached a run by another road.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from backtest import report_charts as charts
from backtest.report_attention import Unexplained, explain_run
from backtest.report_bars import run_bars
from backtest.report_data import (
    MAX_TRADES,
    cumulative_costs,
    equity_curves,
    metrics_table,
    model_decisions,
    model_health,
    pnl_contributions,
    trade_table,
)
from backtest.run_data import RunData
from bot.core.timeutil import interval_ms, iso
from bot.redact import redact_data, redact_text
from bot.store import Store

#: Bars looked up before a run's end to find the closes its open positions are marked at.
MARK_BARS = 48

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 12px; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } table.sortable th { cursor: pointer; }
th[data-order=asc]::after { content: " ▲"; } th[data-order=desc]::after { content: " ▼"; }
td.text, th.text { text-align: left; }
.scroll { max-height: 480px; overflow: auto; }
.note { color: #555; font-size: 12px; } .alert { color: #b00; font-weight: bold; }
pre { background: #f7f7f7; padding: .8em; font-size: 11px; max-height: 420px; overflow: auto; }
"""

SCRIPT = """
function sortKey(cell) {
  if (cell.dataset.v === undefined) return cell.textContent;
  const v = parseFloat(cell.dataset.v);
  return Number.isNaN(v) ? -Infinity : v;
}
document.querySelectorAll("table.sortable th").forEach((th) => th.addEventListener("click", () => {
  const table = th.closest("table"), col = th.cellIndex, body = table.tBodies[0];
  const asc = th.dataset.order !== "asc";
  table.querySelectorAll("th").forEach((h) => delete h.dataset.order);
  th.dataset.order = asc ? "asc" : "desc";
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = sortKey(a.cells[col]), y = sortKey(b.cells[col]);
    const c = typeof x === "number" && typeof y === "number" ? x - y
      : String(x).localeCompare(String(y));
    return asc ? c : -c;
  });
  body.append(...rows);
}));
Promise.all(Object.entries(FIGURES).map(([id, f]) =>
  Plotly.newPlot(id, f.data, f.layout, {responsive: true, displaylogo: false})))
  .then(() => { document.body.dataset.charts = "drawn"; },
        (err) => { document.body.dataset.charts = "failed"; console.error(err); });
"""


def fmt(value: object) -> tuple[str, str | None]:
    """(text shown, sort key) of a cell: numbers get a key, everything else sorts as text."""
    if isinstance(value, bool) or value is None:
        return ("" if value is None else str(value)), None
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}", str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            return ("" if np.isnan(v) else str(v)), "NaN"
        return (f"{v:,.2f}" if abs(v) >= 1000 else f"{v:.6g}"), repr(v)
    return str(value), None


class Page:
    """HTML fragments in order, and the figures their chart divs will hold."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures: dict[str, go.Figure] = {}

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def heading(self, text: str, level: int = 2) -> None:
        self.add(f"<h{level}>{html.escape(text)}</h{level}>")

    def note(self, text: str, css: str = "note") -> None:
        self.add(f'<p class="{css}">{html.escape(text)}</p>')

    def chart(self, figure: go.Figure) -> None:
        key = f"chart-{len(self.figures) + 1}"
        self.figures[key] = figure
        self.add(f'<div id="{key}" class="chart"></div>')

    def table(self, frame: pd.DataFrame, index: bool = False, sortable: bool = True) -> None:
        shown = frame.reset_index() if index else frame
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
        rows = []
        for values in shown.itertuples(index=False):
            cells = []
            for value in values:
                text, key = fmt(value)
                attrs = f' data-v="{key}"' if key is not None else ' class="text"'
                cells.append(f"<td{attrs}>{html.escape(text)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        css = ' class="sortable"' if sortable else ""
        self.add(
            f'<div class="scroll"><table{css}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )

    def render(self, title: str) -> str:
        figures = {
            key: json.loads(pio.to_json(fig, validate=False)) for key, fig in self.figures.items()
        }
        data = json.dumps(figures, separators=(",", ":")).replace("</", "<\\/")
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
            f"<body><h1>{html.escape(title)}</h1>\n"
            + "\n".join(self.parts)
            + f"\n<script>const FIGURES = {data};\n{SCRIPT}</script></body></html>\n"
        )


def overview(page: Page, runs: Sequence[RunData]) -> None:
    """Metrics side by side, then equity and drawdown: overlaid and normalised to each run's
    initial equity when there are several runs (different cash compares), in USDT for one."""
    page.heading("Metrics")
    page.table(metrics_table(runs), index=True, sortable=False)
    several = len(runs) > 1
    pairs = [(data.label, equity_curves(data, normalise=several)) for data in runs]
    page.heading("Equity and drawdown")
    title, axis = ("equity / initial equity", "ratio") if several else ("equity", "USDT")
    page.chart(charts.curves([(n, e) for n, (e, _) in pairs], title, axis))
    page.chart(
        charts.curves(
            [(n, d) for n, (_, d) in pairs],
            "drawdown from the running peak",
            "fraction",
            fill=not several,
        )
    )


def run_header(page: Page, data: RunData) -> None:
    run = data.run
    page.heading(f"Run {data.run_id} — {data.label}")
    period = ""
    if run.get("data_start") is not None and run.get("data_end") is not None:
        period = f", bars {iso(run['data_start'])} → {iso(run['data_end'])} UTC"
    page.note(
        f"{run['kind']} of {run['strategy']} on {', '.join(data.symbols)} @ "
        f"{run['interval']}, status {run['status']}, code {run['code_version']}{period}"
    )
    if run.get("halted_reason"):
        page.note(f"HALTED: {redact_text(str(run['halted_reason']))}", css="alert")


def run_sections(page: Page, data: RunData, store: Store | None) -> None:
    """Everything about one run below the overview."""
    run_header(page, data)
    if not data.weights.empty:
        page.chart(charts.weights(data.weights))
    end = int(data.equity["time"].iloc[-1]) if len(data.equity) else None
    if end is not None:
        step = interval_ms(str(data.run["interval"]))
        found = pnl_contributions(data, run_bars(store, data, end - MARK_BARS * step, end))
        page.chart(charts.contributions(found))
        page.table(found.table, index=True)
    if len(data.fills):
        page.chart(charts.costs(cumulative_costs(data)))
    model_section(page, data, store)
    trades, total = trade_table(data)
    page.heading(f"Trades ({total:,})", level=3)
    if total > MAX_TRADES:
        page.note(f"the most recent {MAX_TRADES:,} of {total:,} trades")
    page.table(trades)
    page.heading("Settings (as stored, secrets masked)", level=3)
    shown = json.dumps(redact_data(data.settings), indent=1, default=str)
    page.add(f"<pre>{html.escape(shown)}</pre>")


def model_section(page: Page, data: RunData, store: Store | None) -> None:
    """Model versions over time, the attention summaries, model-health events."""
    made = model_decisions(data)
    if made.empty:
        return
    page.heading("Model", level=3)
    page.chart(charts.model_versions(made))
    explained = explain_run(store, data)
    if isinstance(explained, Unexplained):
        page.note(f"attention not shown: {explained.reason}")
    elif explained is not None:
        for figure in charts.attention(explained):
            page.chart(figure)
    health = model_health(data)
    if len(health):
        page.heading("Model health events", level=4)
        page.table(
            health.assign(
                when=health["when"].dt.strftime("%Y-%m-%d %H:%M"),
                detail=[json.dumps(d, default=str) for d in health["detail"]],
            )
        )


def build_page(
    runs: Sequence[RunData],
    tables: Mapping[str, pd.DataFrame] | None = None,
    store: Store | None = None,
) -> Page:
    """The page's fragments and figures (what :func:`write_report` renders)."""
    if not runs:
        raise ValueError("a report needs at least one run")
    page = Page()
    overview(page, runs)
    for name, frame in (tables or {}).items():
        page.heading(name)
        page.table(frame)
    for data in runs:
        run_sections(page, data, store)
    return page


def write_report(
    runs: Sequence[RunData],
    out: Path,
    *,
    title: str | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    store: Store | None = None,
) -> Path:
    """Write the report of ``runs`` to ``out`` and return it. ``tables`` are extra sortable
    tables (a sweep's trials) placed after the overview; ``store`` is where to look for the
    runs' bars (marks of open positions, a model's inputs) and registered checkpoints —
    without it, only the runs' configured data folders are searched."""
    page = build_page(runs, tables, store)
    title = title or "Report: " + ", ".join(data.label for data in runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page.render(title), encoding="utf-8")
    return out
