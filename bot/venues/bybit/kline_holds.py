"""Holding a symbol's kline updates behind a missing close: the stream's decisions, no I/O.

A close can arrive a few messages late (reordered), or never (lost). Updates after the gap
are held, in arrival order, for :data:`REORDER_GRACE_S`: if the close turns up they are
released behind it and no request is made; if not, the missing candles are fetched over REST
and then the held updates are released. An update dated after the venue's clock cannot be
real and is dropped before it can mark candles delivered.

The caller (:class:`~bot.venues.bybit.stream.PublicStream`) owns the clocks and the
network: it passes ``now`` (monotonic seconds) and ``server_now`` (the venue's ms) in and
carries out what comes back — events to pass on, a range of candles to fetch — so every rule
here is tested without a socket, a server or a sleep (the style of the protocol parsers).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.market_data import Closed, Opened
from bot.venues.bybit.klines import KlineTracker, Missing
from bot.venues.bybit.ws_protocol import KlineUpdate

#: How long a symbol's later updates wait for a missing close before it is fetched over REST:
#: a close that arrives a few messages late (reordered) then costs no request.
REORDER_GRACE_S = 0.25
Released = Closed | Opened  # what the holds let through, in order, for the stream's sink
#: How far an update may seem ahead of the venue's REST clock (different servers' clocks).
CLOCK_SKEW_MS = 5_000


@dataclass(frozen=True, slots=True)
class BackfillPlan:
    """What to do about a hold that outlived the grace: the candles ``first..last`` to fetch
    (none when ``first`` is None: the gap is already filled, or nothing held is real), and
    how many held updates were dropped as dated after the venue's clock."""

    symbol: str
    dropped: int
    first: int | None = None
    last: int | None = None


class KlineHolds:
    """The per-symbol holds of one stream, in front of its :class:`KlineTracker`."""

    def __init__(
        self, tracker: KlineTracker, step_ms: int, grace_s: float = REORDER_GRACE_S
    ) -> None:
        self.tracker = tracker
        self.step = step_ms
        self.grace_s = grace_s
        self._held: dict[str, list[KlineUpdate]] = {}  # arrival order
        self._since: dict[str, float] = {}  # when the oldest held update arrived

    def held(self, symbol: str) -> list[KlineUpdate]:
        """The updates ``symbol`` holds, in arrival order."""
        return list(self._held.get(symbol, ()))

    @property
    def holding(self) -> list[str]:
        """The symbols holding updates behind a missing close."""
        return sorted(self._held)

    def apply(self, update: KlineUpdate, now: float) -> list[Released]:
        """The events ``update`` produces, in order (the tracker's closes and opens), and, when
        it is the close a hold waited for, those of the updates released behind it."""
        if not self.tracker.admits(update):
            return []  # another interval or symbol: counted by the tracker
        symbol = update.symbol
        held = self._held.get(symbol)
        last = self.tracker.last_closed(symbol)
        if held is not None and last is not None and update.start > last + self.step:
            held.append(update)  # still waiting for the missing close: keep arrival order
            return []
        events: list[Released] = []
        for action in self.tracker.update(update):
            if isinstance(action, Missing):
                self._held.setdefault(symbol, []).append(action.held)
                self._since.setdefault(symbol, now)
            else:
                events.append(action)
        closed = any(isinstance(e, Closed) for e in events)
        if closed and symbol in self._held:
            events += self.release(symbol, now)  # the late close came: replay what waited
        return events

    def release(self, symbol: str, now: float) -> list[Released]:
        """Apply the symbol's held updates again, in arrival order (after the close they
        waited for came, or was fetched)."""
        held = self._held.pop(symbol, [])
        since = self._since.pop(symbol, None)
        events: list[Released] = []
        for update in held:
            events += self.apply(update, now)
        if since is not None and symbol in self._since:
            # still held (another gap, or an update that cannot be placed yet): the wait
            # started when the oldest of them arrived, or a bogus update re-held after every
            # close would never expire and would hold the symbol's later updates for good
            self._since[symbol] = min(since, self._since[symbol])
        return events

    def receive_timeout(self, now: float, catchup_s: float) -> float:
        """How long the stream may wait for its next message: until the oldest hold's grace
        ends, at most until the next quiet-time catch-up (never zero: no busy loop)."""
        waits = [catchup_s]
        if self._since:
            waits.append(max(0.0, min(self._since.values()) + self.grace_s - now))
        return max(min(waits), 0.001)

    def expired(self, now: float) -> list[str]:
        """The symbols whose hold has waited out the grace."""
        return [s for s, since in self._since.items() if now - since >= self.grace_s]

    def plan_backfill(self, symbol: str, server_now: int) -> BackfillPlan:
        """For an expired hold: drop held updates the venue's clock rules out, and say which
        closed candles to fetch before the rest is released (none that has not closed yet)."""
        held = self._held.get(symbol, [])
        kept = [u for u in held if self.plausible(u, server_now)]
        dropped = len(held) - len(kept)
        if dropped:
            self._held[symbol] = kept
        if not kept:
            return BackfillPlan(symbol, dropped)
        first = self.tracker.last_closed(symbol) + self.step
        newest_closed = (server_now // self.step) * self.step - self.step
        last = min(kept[0].start - self.step, newest_closed)
        if first > last:
            return BackfillPlan(symbol, dropped)
        return BackfillPlan(symbol, dropped, first, last)

    def plausible(self, update: KlineUpdate, server_now: int) -> bool:
        """Whether the venue's clock allows the update: its candle has opened (and, for a
        close, ended) by ``server_now``, read after the update arrived."""
        end = update.start + (self.step if update.confirm else 0)
        return end <= server_now + CLOCK_SKEW_MS
