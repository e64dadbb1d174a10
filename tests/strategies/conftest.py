"""Shared by the strategy tests: tiny models trained once per session on the months before the
traded ones (the models never saw the traded bars)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.events import Panel
from tests.modelkit import real_panel, train_tiny

TRAIN = ("2024-09-01", "2025-01-01")
TRADE = ("2025-01-01", "2025-03-01")


class TinyCheckpoints:
    """``checkpoints[name]``: the path of a tiny ``name`` model trained on :data:`TRAIN`,
    trained the first time a test asks for it (the suite needs each once, not per module)."""

    def __init__(self, linear_dir: Path, folder: Path) -> None:
        self.linear_dir, self.folder = linear_dir, folder
        self._paths: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._paths:
            path = self.folder / f"{name}.pt"
            train_tiny(name, real_panel(self.linear_dir, *TRAIN), path)
            self._paths[name] = path
        return self._paths[name]


@pytest.fixture(scope="session")
def checkpoints(linear_dir: Path, tmp_path_factory) -> TinyCheckpoints:
    return TinyCheckpoints(linear_dir, tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def traded(linear_dir: Path) -> Panel:
    return real_panel(linear_dir, *TRADE)
