"""Turning a lossy stream of kline updates into complete, ordered closed bars per symbol.

Pure logic (no I/O). For each symbol it remembers the last closed bar it emitted and:

* emits a bar only on ``confirm: true``, once per start (a duplicate close is dropped);
* announces each new candle's open the first time it sees the candle (for next-open fills);
* drops updates of candles it has already closed (out of order) and counts them;
* on an update of a candle *later* than the next expected one, reports the missing closed
  candles and holds that update back: the caller fetches them over REST, hands them to
  :meth:`KlineTracker.fill`, and then re-applies the held update. So every symbol's bars leave
  the tracker complete and in order, whatever the websocket lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.core.events import Bar
from bot.core.timeutil import interval_ms
from bot.venues.bybit.ws_protocol import KlineUpdate


@dataclass(frozen=True, slots=True)
class Closed:
    bar: Bar


@dataclass(frozen=True, slots=True)
class Opened:
    symbol: str
    start: int
    open: float


@dataclass(frozen=True, slots=True)
class Missing:
    """Closed candles ``first..last`` (starts, inclusive) never arrived; fetch them."""

    symbol: str
    first: int
    last: int
    held: KlineUpdate  # the update that revealed the gap; apply it after the fill


Action = Closed | Opened | Missing


class KlineTracker:
    def __init__(self, interval: str, last_closed: Mapping[str, int | None]) -> None:
        self.interval = interval
        self.step = interval_ms(interval)
        self._last: dict[str, int | None] = dict(last_closed)
        self._opened: dict[str, int] = {}
        self.counters: Counter[str] = Counter()

    def last_closed(self, symbol: str) -> int | None:
        return self._last.get(symbol)

    def update(self, u: KlineUpdate) -> list[Action]:
        if u.symbol not in self._last:
            self.counters["unknown_symbol"] += 1
            return []
        last = self._last[u.symbol]
        if last is not None and u.start <= last:
            self.counters["duplicate" if u.confirm and u.start == last else "out_of_order"] += 1
            return []
        if last is not None and u.start > last + self.step:
            self.counters["gaps"] += 1
            return [Missing(u.symbol, last + self.step, u.start - self.step, u)]
        actions: list[Action] = []
        if self._opened.get(u.symbol, -1) < u.start:
            self._opened[u.symbol] = u.start
            actions.append(Opened(u.symbol, u.start, u.open))
        if u.confirm:
            bar = Bar(u.symbol, self.interval, u.start, u.open, u.high, u.low, u.close, u.volume,
                      u.turnover)  # fmt: skip
            self._last[u.symbol] = u.start
            self.counters["closed"] += 1
            actions.append(Closed(bar))
        return actions

    def fill(self, symbol: str, bars: Iterable[Bar], through: int) -> list[Closed]:
        """Emit backfilled closed bars (ascending) and treat everything up to ``through`` as
        done, even candles the exchange itself does not have (counted as unrecoverable)."""
        last = self._last[symbol]
        wanted = None if last is None else (through - last) // self.step
        out: list[Closed] = []
        for bar in bars:
            if bar.start > through or (last is not None and bar.start <= last):
                continue
            out.append(Closed(bar))
            last = bar.start
        self.counters["backfilled"] += len(out)
        if wanted is not None:
            self.counters["unrecoverable"] += wanted - len(out)
        self._last[symbol] = through
        return out
