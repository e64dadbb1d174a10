"""Turning a lossy stream of kline updates into complete, ordered closed bars per symbol.

Pure logic (no I/O). For each symbol it remembers the last closed bar it emitted and:

* drops updates of other symbols or another interval (counted);
* emits a bar only on ``confirm: true``, once per start (a duplicate close is dropped);
* announces each new candle's open the first time it sees the candle (for next-open fills);
* drops updates of candles it has already closed (out of order) and counts them;
* on an update of a candle *later* than the next expected one, reports the missing closed
  candles and holds that update back: the caller fetches them over REST, hands them to
  :meth:`KlineTracker.fill`, and then re-applies the held update. So every symbol's bars leave
  the tracker complete and in order, whatever the websocket lost.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.core.events import Bar
from bot.core.market_data import Closed, Corrected, Opened
from bot.core.timeutil import interval_ms
from bot.venues.bybit.ws_protocol import KlineUpdate


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

    def admits(self, u: KlineUpdate) -> bool:
        """Whether the update belongs to this tracker: a subscribed symbol at the tracked
        interval. Anything else (a ``kline.1.X`` message on a 1h stream) is counted and must
        be dropped, never taken for one of our bars."""
        if u.symbol not in self._last:
            self.counters["unknown_symbol"] += 1
            return False
        if u.interval != self.interval:
            self.counters["wrong_interval"] += 1
            return False
        return True

    def update(self, u: KlineUpdate) -> list[Action]:
        if not self.admits(u):
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


def same_bar(a: Bar, b: Bar) -> bool:
    """Equal prices and volume, and turnover where both know it (the live path does not
    keep turnover, and no decision reads it)."""
    ta, tb = a.turnover, b.turnover
    turnover_equal = ta == tb or _unknown(ta) or _unknown(tb)
    return (a.start, a.open, a.high, a.low, a.close, a.volume) == (
        b.start, b.open, b.high, b.low, b.close, b.volume
    ) and turnover_equal  # fmt: skip


def _unknown(value: float | None) -> bool:
    return value is None or math.isnan(value)


class CloseAudit:
    """Websocket closes waiting to be checked against the venue's REST history.

    A websocket close is taken at once (decisions cannot wait), but a forged or corrupted one
    can be perfectly plausible. So every bar that came from the websocket is kept here until a
    REST fetch covering it has been compared: a bar REST reports differently comes back as
    :class:`Corrected`; one REST does not have at all is counted (``unconfirmed``). At most
    ``limit`` bars per symbol wait (the oldest are dropped and counted if REST stays away).
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._pending: dict[str, dict[int, Bar]] = {}
        self.counters: Counter[str] = Counter()

    def note(self, bar: Bar) -> None:
        pending = self._pending.setdefault(bar.symbol, {})
        pending[bar.start] = bar
        if len(pending) > self.limit:
            del pending[min(pending)]
            self.counters["unaudited"] += 1

    def first_pending(self, symbol: str) -> int | None:
        pending = self._pending.get(symbol)
        return min(pending) if pending else None

    def check(self, symbol: str, venue_bars: Iterable[Bar], through: int) -> list[Corrected]:
        """Compare the pending closes up to ``through`` (bars REST must know by now) with
        ``venue_bars`` (REST's closed bars over at least that span) and settle them."""
        pending = self._pending.get(symbol, {})
        truth = {bar.start: bar for bar in venue_bars}
        out = []
        for start in sorted(t for t in pending if t <= through):
            seen = pending.pop(start)
            venue = truth.get(start)
            if venue is None:
                self.counters["unconfirmed"] += 1
            elif same_bar(venue, seen):
                self.counters["confirmed"] += 1
            else:
                self.counters["corrected"] += 1
                out.append(Corrected(venue, seen))
        return out
