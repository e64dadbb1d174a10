"""The market as a pure function of market time: what any client sees at any moment.

Time runs on a grid of *updates*: update ``g = slot·k + j`` happens at
``first + slot·interval + j·interval // k`` (``k`` = ``bar_updates``). At an update with
``j == 0`` the previous candle is confirmed and the next one opens; the last update,
``slots·k``, confirms the final bar. Streams, REST and the order book all read the same
functions, so what a websocket pushed and what REST answers afterwards always agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bot.config import InstrumentConfig
from bot.exchange.book import Book, book_at, book_message
from bot.exchange.candles import Candle, candle_state, kline_message, kline_row, update_index
from bot.exchange.numfmt import Step, decimals, fmt
from bot.exchange.tape import Tape

_MAX_PLACES = 8


class Market:
    """Candles, klines, order books and funding of a :class:`Tape` at any update."""

    def __init__(
        self,
        tape: Tape,
        instruments: dict[str, InstrumentConfig],
        seed: int,
        bar_updates: int,
    ) -> None:
        self.tape = tape
        self.seed = seed
        self.k = bar_updates
        self.symbols = tape.symbols
        self.code = tape.code
        self.interval_ms = tape.interval_ms
        self.last_update = tape.slots * self.k
        self.specs = {s: instruments[s] for s in self.symbols}
        self.ticks = {s: self._tick(s) for s in self.symbols}
        self.qtys = {s: Step.of(self.specs[s].qty_step) for s in self.symbols}

    def _tick(self, symbol: str) -> Step:
        """The configured tick, or (tick_size 0) the finest decimal the data's prices use."""
        if self.specs[symbol].tick_size > 0:
            return Step.of(self.specs[symbol].tick_size)
        s = self.tape.index(symbol)
        prices = self.tape.panel.values[:, s, :4][self.tape.panel.present[:, s]][:1000]
        places = max((decimals(p) for p in prices.ravel().tolist()), default=2)
        return Step(1, min(places, _MAX_PLACES))

    # -- the update grid -------------------------------------------------------------------------
    def update_time(self, g: int) -> int:
        slot, j = divmod(g, self.k)
        return self.tape.slot_start(slot) + j * self.interval_ms // self.k

    def update_at(self, t: int) -> int:
        """The last update at or before market time ``t`` (-1 before the tape starts)."""
        if t < self.tape.first:
            return -1
        slot, offset = divmod(t - self.tape.first, self.interval_ms)
        return min(slot * self.k + update_index(offset, self.interval_ms, self.k), self.last_update)

    # -- candles ---------------------------------------------------------------------------------
    def candle(self, symbol: str, slot: int, j: int) -> Candle:
        """Symbol's candle of ``slot`` after update ``j`` (``j >= k``: final); the slot must
        hold a bar."""
        s = self.tape.index(symbol)
        start = self.tape.slot_start(slot)
        key = (self.seed, s, start)
        bar = self.tape.bar(s, slot)
        return candle_state(bar, start, self.k, j, key, self.ticks[symbol], self.qtys[symbol])

    def kline_messages(self, symbol: str, g: int) -> list[dict[str, Any]]:
        """The pushes of ``kline.{code}.{symbol}`` at update ``g``: the confirmation of the
        previous candle (at its end), then the forming candle's state."""
        s = self.tape.index(symbol)
        slot, j = divmod(g, self.k)
        ts = self.update_time(g)
        out = []
        if j == 0 and self.tape.has_bar(s, slot - 1):
            final = self.candle(symbol, slot - 1, self.k)
            out.append(kline_message(self.code, symbol, final, self.interval_ms, ts))
        if self.tape.has_bar(s, slot):
            forming = self.candle(symbol, slot, j)
            out.append(kline_message(self.code, symbol, forming, self.interval_ms, ts))
        return out

    def kline_rows(
        self, symbol: str, now: int, start: int | None, end: int | None, limit: int
    ) -> list[list[str]]:
        """``/v5/market/kline`` rows, newest first: the newest ``limit`` candles that have
        started by ``now`` with ``start <= candle start <= end``; a candle still forming at
        ``now`` shows its state after the last update pushed."""
        s = self.tape.index(symbol)
        slots = self.tape.bar_slots(s)
        starts = self.tape.first + slots * self.interval_ms
        top = now if end is None else min(end, now)
        hi = int(np.searchsorted(starts, top, side="right"))
        lo = 0 if start is None else int(np.searchsorted(starts, start, side="left"))
        lo = max(lo, hi - limit)
        rows = []
        for slot in slots[lo:hi][::-1].tolist():
            offset = now - self.tape.slot_start(slot)
            done = offset >= self.interval_ms
            j = self.k if done else update_index(offset, self.interval_ms, self.k)
            rows.append(kline_row(self.candle(symbol, slot, j)))
        return rows

    def bars_closed(self, now: int) -> int:
        """Bars (all symbols) complete at market time ``now``."""
        elapsed = (now - self.tape.first) // self.interval_ms  # slots fully elapsed
        slots = (self.tape.bar_slots(s) for s in range(len(self.symbols)))
        return sum(int(np.searchsorted(bars, elapsed)) for bars in slots)

    # -- order book ------------------------------------------------------------------------------
    def price(self, symbol: str, g: int) -> float:
        """Last price at update ``g``: the forming candle's close; between bars (a gap, or
        after the tape) the last close; before the symbol's first bar its first open."""
        s = self.tape.index(symbol)
        slot, j = divmod(max(g, 0), self.k)
        if self.tape.has_bar(s, slot):
            return self.candle(symbol, slot, j).close
        before = self.tape.last_bar_before(s, slot)
        if before >= 0:
            return self.tape.bar(s, before).close
        return self.tape.bar(s, self.tape.first_bar(s)).open

    def book(self, symbol: str, depth: int, g: int) -> Book:
        key = (self.seed, self.tape.index(symbol))
        return book_at(self.price(symbol, g), depth, g, key, self.ticks[symbol], self.qtys[symbol])

    def book_message(
        self, symbol: str, depth: int, g: int, book: Book, previous: Book | None
    ) -> dict[str, Any]:
        """Snapshot or delta at update ``g``; ``u`` = g + 1 rises by one per update."""
        topic = f"orderbook.{depth}.{symbol}"
        return book_message(topic, symbol, book, previous, g + 1, self.update_time(g))

    # -- funding and instruments -----------------------------------------------------------------
    def funding_rows(
        self, symbol: str, now: int, start: int | None, end: int | None, limit: int
    ) -> list[dict[str, str]]:
        """Funding rates settled by ``now`` within [start, end], newest first."""
        if symbol not in self.tape.funding:
            return []
        times, rates = self.tape.funding[symbol]
        top = now if end is None else min(end, now)
        hi = int(np.searchsorted(times, top, side="right"))
        lo = 0 if start is None else int(np.searchsorted(times, start, side="left"))
        lo = max(lo, hi - limit)
        picked = zip(times[lo:hi][::-1].tolist(), rates[lo:hi][::-1].tolist(), strict=True)
        return [
            {"symbol": symbol, "fundingRate": fmt(rate), "fundingRateTimestamp": str(t)}
            for t, rate in picked
        ]

    def funding_interval_min(self, symbol: str) -> int:
        """Minutes between fundings in the data (Bybit's default 480 without data)."""
        times = self.tape.funding.get(symbol, (np.empty(0),))[0]
        if len(times) < 2:
            return 480
        return int(np.median(np.diff(times))) // 60_000
