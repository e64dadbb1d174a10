"""Bybit's market data behind the venue-neutral interface the daemons use.

One object owns the REST session and makes the websocket stream; it turns Bybit's errors into
:class:`~bot.core.market_data.MarketDataError` (transient or not) and a stop into
:class:`~bot.core.market_data.MarketDataStopped`, so a daemon never handles a Bybit type. It
serves Bybit itself and the project's local exchange alike (only the URLs differ).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Self, TypeVar

from bot.config import VenueConfig
from bot.core.instruments import InstrumentSpec
from bot.core.market_data import MarketDataError, MarketDataStopped, Recheck, Sink
from bot.redact import redact_url
from bot.venues.bybit.fetch import fetch_funding_to_store, fetch_klines_to_store
from bot.venues.bybit.klines import CloseAudit
from bot.venues.bybit.rest import BybitRest
from bot.venues.bybit.rest_protocol import CLOSE_MARGIN_MS, BybitError, is_transient
from bot.venues.bybit.stopping import Stopping
from bot.venues.bybit.stream import PublicStream, frame_bars

if TYPE_CHECKING:
    import pandas as pd

    from bot.store import Store

T = TypeVar("T")


class BybitMarketData:
    """REST, backfill and the public stream of one Bybit (or local) venue."""

    close_margin_ms = CLOSE_MARGIN_MS

    def __init__(
        self,
        venue: VenueConfig,
        rest_url: str,
        ws_url: str,
        *,
        stop: asyncio.Event | None = None,
        seed: int | None = None,
    ) -> None:
        self.venue = venue
        self.ws_url = ws_url
        self.shown_url = redact_url(rest_url)
        self.seed = seed
        self.rest = BybitRest.from_config(venue, rest_url, stop=stop)
        self.audits: Counter[str] = Counter()
        self._stream: PublicStream | None = None

    async def __aenter__(self) -> Self:
        await self.rest.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rest.close()

    async def _venue(self, work: Awaitable[T]) -> T:
        """Await a venue call, in the interface's terms."""
        try:
            return await work
        except Stopping:
            raise MarketDataStopped() from None
        except BybitError as exc:
            raise MarketDataError(str(exc), transient=is_transient(exc)) from None
        except OSError as exc:
            raise MarketDataError(f"{type(exc).__name__}: {exc}", transient=True) from None

    async def server_time(self) -> int:
        return await self._venue(self.rest.server_time())

    async def instruments(self, symbols: Sequence[str]) -> dict[str, InstrumentSpec]:
        return await self._venue(self.rest.instruments(list(symbols)))

    async def funding_intervals(self, symbols: Sequence[str]) -> dict[str, int]:
        if self.venue.category != "linear":
            return {}
        return await self._venue(self.rest.funding_intervals(list(symbols)))

    async def backfill_bars(
        self, store: Store, symbols: Sequence[str], interval: str, start: int, end: int
    ) -> None:
        await self._venue(fetch_klines_to_store(self.rest, store, list(symbols), interval,
                                                start, end, progress=False))  # fmt: skip

    async def backfill_funding(
        self, store: Store, symbols: Sequence[str], start: int, end: int
    ) -> None:
        if self.venue.category != "linear":
            return  # only perpetuals settle funding
        await self._venue(
            fetch_funding_to_store(self.rest, store, list(symbols), start, end, progress=False)
        )

    async def recheck(
        self, symbol: str, interval: str, stored: pd.DataFrame, start: int, end: int
    ) -> Recheck:
        audit = CloseAudit()
        for bar in frame_bars(symbol, interval, stored):
            audit.note(bar)
        if audit.first_pending(symbol) is None:
            return Recheck(0, [])
        venue = await self._venue(self.rest.klines(symbol, interval, start, end))
        corrections = audit.check(symbol, frame_bars(symbol, interval, venue), end)
        self.audits.update(audit.counters)
        return Recheck(audit.counters["confirmed"] + audit.counters["corrected"], corrections)

    def stream(
        self,
        symbols: Sequence[str],
        interval: str,
        last_closed: Mapping[str, int | None],
        sink: Sink,
    ) -> PublicStream:
        self._stream = PublicStream(
            ws_url=self.ws_url,
            rest=self.rest,
            symbols=symbols,
            interval=interval,
            last_closed=dict(last_closed),
            sink=sink,
            venue=self.venue,
            catchup_s=self.venue.catchup_s,
            seed=self.seed,
        )
        return self._stream

    def counters(self) -> dict[str, int]:
        stream = self._stream
        out: dict[str, int] = {f"rest.{k}": v for k, v in self.rest.stats.items()}
        out.update({f"audit.{k}": v for k, v in self.audits.items()})
        if stream is not None:
            out.update({f"ws.{k}": v for k, v in stream.stats.items()})
            out.update({f"bars.{k}": v for k, v in stream.tracker.counters.items()})
        return out
