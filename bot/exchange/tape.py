"""The tape: the historical bars (and funding rates) the local exchange replays.

Bars sit on a regular grid of *slots* (``first + n × interval``); a slot where a symbol has no
bar (before its listing, or a gap in the file) streams nothing for that symbol and has no REST
row, exactly as a real exchange has no candle for a market that did not trade.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from bot.config import Settings
from bot.core.events import Panel
from bot.core.timeutil import interval_ms, normalize_interval, to_ms
from bot.feeds.loaders import DataError, align, load_funding, load_panel
from bot.feeds.synthetic import DEFAULT_START_MS, synthetic_panel
from bot.store.store import Store

#: Bybit's kline interval codes by the project's interval names.
BYBIT_CODES = {
    "1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120",
    "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1w": "W",
}  # fmt: skip

Funding = dict[str, tuple[np.ndarray, np.ndarray]]


class BarValues(NamedTuple):
    """One final bar; ``turnover`` is NaN when the data has none."""

    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float


class Tape:
    """Aligned bars of the traded symbols plus their funding rates, indexed by slot."""

    def __init__(self, panel: Panel, interval: str, funding: Funding | None = None) -> None:
        if len(panel) == 0:
            raise DataError("the exchange has no bars to replay")
        self.interval = normalize_interval(interval)
        if self.interval not in BYBIT_CODES:
            raise DataError(f"interval {self.interval} has no Bybit kline code")
        self.code = BYBIT_CODES[self.interval]
        self.interval_ms = interval_ms(self.interval)
        if panel.interval_ms != self.interval_ms:
            raise DataError(f"panel interval {panel.interval_ms} ms is not {self.interval}")
        self.panel = panel
        self.symbols: tuple[str, ...] = panel.symbols
        self.funding: Funding = dict(funding or {})
        self.first = int(panel.starts[0])
        offsets = panel.starts - self.first
        if np.any(offsets % self.interval_ms):
            raise DataError("bar times are not on one interval grid")
        slot_of_row = (offsets // self.interval_ms).astype(np.int64)
        self.slots = int(slot_of_row[-1]) + 1
        self._row = np.full(self.slots, -1, dtype=np.int64)
        self._row[slot_of_row] = np.arange(len(panel))
        present = np.zeros((self.slots, len(self.symbols)), dtype=bool)
        present[slot_of_row] = panel.present
        self._present = present
        # Per symbol: the slots that have a bar (sorted), for REST paging by searchsorted.
        self._bar_slots = [np.flatnonzero(present[:, s]) for s in range(len(self.symbols))]
        self._turnover = panel.turnover

    def index(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def slot_start(self, slot: int) -> int:
        return self.first + slot * self.interval_ms

    def bar_slots(self, s: int) -> np.ndarray:
        """Slots where symbol ``s`` has a bar, ascending."""
        return self._bar_slots[s]

    def has_bar(self, s: int, slot: int) -> bool:
        return 0 <= slot < self.slots and bool(self._present[slot, s])

    def bar(self, s: int, slot: int) -> BarValues:
        row = int(self._row[slot])
        o, h, low, c, v = (float(x) for x in self.panel.values[row, s])
        t = float("nan") if self._turnover is None else float(self._turnover[row, s])
        return BarValues(o, h, low, c, v, t)

    def last_bar_before(self, s: int, slot: int) -> int:
        """The latest slot < ``slot`` with a bar of ``s``, or -1."""
        slots = self._bar_slots[s]
        k = int(np.searchsorted(slots, slot, side="left"))
        return int(slots[k - 1]) if k > 0 else -1

    def first_bar(self, s: int) -> int:
        return int(self._bar_slots[s][0]) if len(self._bar_slots[s]) else -1


def load_tape(settings: Settings) -> Tape:
    """The tape ``settings.exchange`` asks for (blocking I/O: call it before serving, or in a
    thread). Bars starting at or after ``exchange.end`` are left out."""
    exchange, engine, data = settings.exchange, settings.engine, settings.data
    symbols = tuple(engine.symbols)
    end = None if exchange.end is None else to_ms(exchange.end)
    funding: Funding = {}
    if exchange.source == "synthetic":
        first = engine.start_ms if engine.start_ms is not None else DEFAULT_START_MS
        panel = synthetic_panel(
            symbols, engine.interval, data.synthetic_bars, seed=data.synthetic_seed, start_ms=first
        )
        if end is not None:
            panel = panel.split(end)[0]
    elif exchange.source == "store":
        with Store(settings.store.url) as store:
            frames = {s: store.load_klines(s, engine.interval, None, end) for s in symbols}
            funding = store.load_funding(symbols)
        empty = [s for s, f in frames.items() if f.empty]
        if empty:
            raise DataError(f"the store has no {engine.interval} bars for {', '.join(empty)}")
        panel = align(frames, symbols, engine.interval)
    else:
        root = Path(data.path)
        panel = load_panel(root, symbols, engine.interval, None, end)
        funding = load_funding(root, symbols)
    return Tape(panel, engine.interval, funding)
