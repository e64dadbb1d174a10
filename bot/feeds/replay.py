"""The replay feed: history handed to the engine in blocks, as fast as it can take them.

The engine treats a replay block exactly like a run of one-row live blocks (see
:mod:`bot.core.engine`); the block size changes speed, never results.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.core.events import Panel


class ReplayFeed:
    """Yields consecutive slices of an aligned panel."""

    def __init__(self, panel: Panel, block_rows: int = 8192) -> None:
        if block_rows < 1:
            raise ValueError("block_rows must be >= 1")
        self.panel = panel
        self.block_rows = block_rows

    def __len__(self) -> int:
        return len(self.panel)

    async def __aiter__(self) -> AsyncIterator[Panel]:
        for lo in range(0, len(self.panel), self.block_rows):
            yield self.panel.slice(lo, lo + self.block_rows)
