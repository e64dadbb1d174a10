"""The market-data interface a daemon talks to, whatever the venue.

A paper or live daemon needs five things from a venue's market data: its clock, its trading
rules, history (bars and funding rates, fetched into the store), its record of recent bars (to
check the closes it took from the stream) and a stream of closed bars. This module names them
and the events the stream delivers, so the daemons import no venue: the Bybit adapter
(:mod:`bot.venues.bybit.market_data`) implements it for Bybit and the local exchange.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.core.events import Bar
from bot.core.instruments import InstrumentSpec

if TYPE_CHECKING:  # passed through, never used here
    import pandas as pd

    from bot.store import Store


@dataclass(frozen=True, slots=True)
class Closed:
    """A symbol's bar closed (complete and in order: the stream fills what it lost)."""

    bar: Bar


@dataclass(frozen=True, slots=True)
class Opened:
    """The first message of a symbol's next candle: its open price is known."""

    symbol: str
    start: int
    open: float


@dataclass(frozen=True, slots=True)
class Corrected:
    """The venue's REST record of a bar disagrees with the close the stream delivered
    (``seen``, which the engine may already have decided on): ``bar`` is the truth."""

    bar: Bar
    seen: Bar


@dataclass(frozen=True, slots=True)
class Recheck:
    """Stored bars compared with the venue's record: how many it confirmed or corrected (bars
    it does not list yet are neither), and the corrections."""

    compared: int
    corrections: list[Corrected]


StreamEvent = Closed | Opened | Corrected
Sink = Callable[[StreamEvent], Awaitable[None]]


class MarketDataError(Exception):
    """The venue failed a request; ``transient`` ones (network, overload) are worth retrying,
    the rest (an unknown symbol, a refused parameter) are not."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class MarketDataStopped(Exception):  # noqa: N818 - not an error: the owner asked to stop
    """A wait on the venue was given up because the daemon is stopping."""


class BarStream(Protocol):
    """Closed bars (and candle opens, and corrections) of the subscribed symbols, delivered to
    a sink in order per symbol, reconnecting and backfilling on its own until stopped."""

    connected: bool
    last_receipt_ns: int  # when the message being delivered arrived (latency metrics)

    async def run(self, stop: asyncio.Event) -> None: ...


class MarketData(Protocol):
    #: how long after a close the venue's REST may still not list the bar
    close_margin_ms: int
    shown_url: str  # where it connects, without credentials (for messages)

    async def server_time(self) -> int: ...

    async def instruments(self, symbols: Sequence[str]) -> dict[str, InstrumentSpec]:
        """Trading rules; raises LookupError naming a symbol the venue does not list."""
        ...

    async def funding_intervals(self, symbols: Sequence[str]) -> dict[str, int]: ...

    async def backfill_bars(
        self, store: Store, symbols: Sequence[str], interval: str, start: int, end: int
    ) -> None:
        """Fetch into the store the bars of ``[start, end)`` it lacks."""
        ...

    async def backfill_funding(
        self, store: Store, symbols: Sequence[str], start: int, end: int
    ) -> None:
        """Fetch into the store the funding settlements of ``[start, end)`` it lacks."""
        ...

    async def recheck(
        self, symbol: str, interval: str, stored: pd.DataFrame, start: int, end: int
    ) -> Recheck:
        """Compare stored bars of ``[start, end)`` (as the store loads them) with the venue's
        record."""
        ...

    def stream(
        self,
        symbols: Sequence[str],
        interval: str,
        last_closed: Mapping[str, int | None],
        sink: Sink,
    ) -> BarStream: ...

    def counters(self) -> dict[str, int]:
        """What the stream and the REST client saw so far (for the status line)."""
        ...
