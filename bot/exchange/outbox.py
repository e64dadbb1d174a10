"""What one websocket connection is about to send, after the faults had their way.

Producing a message never waits (``data``/``control`` are plain calls), so a subscription's
snapshot and the stream's next delta can never interleave wrongly; a separate sender task
drains the queue. Data messages pass, in order: malformed (replaced by broken JSON), duplicate
(queued twice), reorder (windows of W produced messages sent permuted), delay (each held back
up to ``delay_ms``; order is kept, a late message holds up those behind it). Whether to drop the
connection after a message is decided when it is sent.

Replies (acks, pongs) skip the faults but leave after ``reply_latency_s``, like an answer
crossing a network; everything queued behind them waits too, since sending is in order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.exchange.faults import ConnectionFaults, FaultCounters, break_json


@dataclass(frozen=True, slots=True)
class Outgoing:
    text: str
    index: int | None  # data message number, None for control replies
    send_at: float  # event-loop time


class Outbox:
    def __init__(
        self, faults: ConnectionFaults, counters: FaultCounters, reply_latency_s: float = 0.0
    ) -> None:
        self.faults = faults
        self.counters = counters
        self.reply_latency_s = reply_latency_s
        self.produced = 0
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._window: list[tuple[int, str]] = []
        self._windows = 0
        self._loop = asyncio.get_running_loop()

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._window)

    def control(self, text: str) -> None:
        """An ack or pong: no faults, only the reply latency."""
        self._queue.put_nowait(Outgoing(text, None, self._loop.time() + self.reply_latency_s))

    def data(self, text: str) -> None:
        i = self.produced
        self.produced += 1
        if self.faults.malformed(i):
            self.counters.malformed += 1
            text = break_json(text)
        copies = 1
        if self.faults.duplicate(i):
            self.counters.duplicates += 1
            copies = 2
        for _ in range(copies):
            self._window.append((i, text))
            if len(self._window) >= max(1, self.faults.config.reorder_window):
                self.flush()

    def flush(self) -> None:
        """Release the held reorder window (full, or the stream has nothing more to say)."""
        if not self._window:
            return
        window, self._window = self._window, []
        if len(window) > 1:
            order = self.faults.order(self._windows, len(window))
            self._windows += 1
            self.counters.reordered += sum(pos != k for k, pos in enumerate(order))
            window = [window[pos] for pos in order]
        now = self._loop.time()
        for i, text in window:
            delay = self.faults.delay_s(i)
            if delay > 0:
                self.counters.delayed += 1
            self._queue.put_nowait(Outgoing(text, i, now + delay))

    async def get(self) -> Outgoing:
        return await self._queue.get()
