"""Shared fixtures. Real market data lives outside the repository (../shared/data, or the
folder named by BOT_DATA_DIR); tests that need it skip with the reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def real_data_dir() -> Path:
    return Path(os.environ.get("BOT_DATA_DIR", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real-data folder (with bybit-linear/, lob/); skips the test when it is missing."""
    path = real_data_dir()
    if not (path / "bybit-linear").is_dir():
        pytest.skip(f"real Bybit data not found at {path} (set BOT_DATA_DIR to its folder)")
    return path


@pytest.fixture(scope="session")
def linear_dir(data_dir: Path) -> Path:
    return data_dir / "bybit-linear"
