"""The end-to-end tests run the daemons as processes and replay their runs in this one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from bot.config import ModelsConfig


@pytest.fixture(autouse=True)
def daemon_threads() -> Iterator[None]:
    """Replays here compute with the torch threads the daemons took (``bot paper`` applies
    ``[models] threads``, automatic in these configs): with another count, float32 models and
    their training sum in another order, and a replay must repeat the daemon's arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(ModelsConfig().torch_threads())
    yield
    torch.set_num_threads(threads)
