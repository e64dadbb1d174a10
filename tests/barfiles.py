"""Bars written as the CSV files ``bot data import`` and ``--source csv`` read."""

from pathlib import Path

from bot.core.events import Panel


def write_csv(folder: Path, panel: Panel) -> None:
    """One ``<SYMBOL>.csv`` per symbol of ``panel`` in ``folder`` (created), values exact."""
    folder.mkdir(parents=True)
    for s, symbol in enumerate(panel.symbols):
        rows = ["timestamp_ms,open,high,low,close,volume"] + [
            ",".join([str(int(t)), *(repr(float(v)) for v in panel.values[i, s])])
            for i, t in enumerate(panel.starts)
        ]
        (folder / f"{symbol}.csv").write_text("\n".join(rows) + "\n")
