"""Benchmarks: measured speed and memory, compared with named peers in the same run."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The real market data: ``$BOT_DATA_DIR``, else ``../shared/data`` beside the checkout."""
    return Path(os.environ.get("BOT_DATA_DIR", ROOT.parent / "shared" / "data"))
