"""Bybit v5 public REST client (aiohttp): server time, instruments, klines, funding history.

Public market data only: there are no API keys here, so nothing secret can reach a log line.
Every request goes through one retry loop: the policy (what to retry, how long to wait) is
:func:`~bot.venues.bybit.rest_protocol.retry_delay`; this module only sleeps, counts and logs.
History is paged backwards from ``end``, the direction Bybit serves it in.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlencode

import aiohttp
import numpy as np
import pandas as pd

from bot.core.instruments import InstrumentSpec
from bot.core.timeutil import interval_ms
from bot.redact import redact_url
from bot.venues.bybit.intervals import bybit_interval
from bot.venues.bybit.rest_protocol import (
    FUNDING_LIMIT,
    INSTRUMENTS_LIMIT,
    KLINE_LIMIT,
    BadResponseError,
    BybitError,
    empty_klines,
    funding_intervals,
    parse_funding,
    parse_instruments,
    parse_klines,
    parse_server_time,
    read_envelope,
    retry_delay,
)
from bot.venues.bybit.retrying import back_off, transport_error
from bot.venues.bybit.stopping import until_stopped

if TYPE_CHECKING:
    from bot.config import VenueConfig

log = logging.getLogger(__name__)


class BybitRest:
    """Async client of Bybit's public v5 market endpoints; use as ``async with``.

    ``stats`` counts ``requests``, ``requests.<endpoint>``, ``retries``, ``retries.<kind>``
    (e.g. ``retries.rate_limited``, ``retries.http_403``), ``failures`` and ``refused_bars``
    (kline rows that broke the bar rules), for status lines.
    """

    def __init__(
        self,
        base_url: str,
        category: str = "linear",
        timeout_s: float = 10.0,
        max_retries: int = 6,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        rng_seed: int | None = None,
        stop: asyncio.Event | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)  # for log lines: no credential ever
        self.stop = stop  # once set, requests and retry waits end at once (raising Stopping)
        self.category = category
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(rng_seed)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(
        cls, venue: VenueConfig, base_url: str | None = None, stop: asyncio.Event | None = None
    ) -> BybitRest:
        """A client with the ``[venue]`` settings; ``base_url`` overrides ``venue.rest_url``
        (``Settings.venue_urls()`` gives the local exchange's); ``stop`` interrupts it."""
        return cls(
            base_url or venue.rest_url,
            category=venue.category,
            timeout_s=venue.request_timeout_s,
            max_retries=venue.max_retries,
            stop=stop,
        )

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"Accept": "application/json"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- endpoints -------------------------------------------------------------------------------
    async def server_time(self) -> int:
        """Bybit's clock, epoch ms."""
        envelope = await self._get("/v5/market/time", {})
        return parse_server_time(envelope["result"])

    async def instruments(self, symbols: Sequence[str] | None = None) -> dict[str, InstrumentSpec]:
        """Trading rules of ``symbols`` (default: every instrument of the category)."""
        return parse_instruments(await self._instrument_list(symbols))

    async def funding_intervals(self, symbols: Sequence[str] | None = None) -> dict[str, int]:
        """Current funding interval (ms) of ``symbols``' perpetuals (default: all of them)."""
        return funding_intervals(await self._instrument_list(symbols))

    async def klines(self, symbol: str, interval: str, start: int, end: int) -> pd.DataFrame:
        """Closed bars with ``start <= bar start < end``, ascending, as one frame."""
        pages = [page async for page in self.iter_klines(symbol, interval, start, end)]
        if not pages:
            return empty_klines()
        return pd.concat(pages[::-1], ignore_index=True)

    async def iter_klines(
        self, symbol: str, interval: str, start: int, end: int
    ) -> AsyncIterator[pd.DataFrame]:
        """Closed bars with ``start <= bar start < end``, one page at a time, newest page
        first (each page ascending), so a caller can store each page as it arrives.

        Each next page ends just before the earliest bar of the last one, so pages never
        overlap. Paging stops once ``start`` is covered, or when a page comes back short or empty:
        Bybit has nothing older (the symbol's listing).
        """
        code, step = bybit_interval(interval), interval_ms(interval)
        last = end - 1  # Bybit's `end` is inclusive
        while last >= start:
            params = {"category": self.category, "symbol": symbol, "interval": code,
                      "start": start, "end": last, "limit": KLINE_LIMIT}  # fmt: skip
            envelope = await self._get("/v5/market/kline", params)
            rows = envelope["result"].get("list") or []
            server_time = envelope.get("time")
            if not isinstance(server_time, int):
                raise BadResponseError("no integer `time` in the envelope", f"kline {symbol}")
            page, refused = parse_klines(envelope["result"], step, server_time)
            if refused:
                self.stats["refused_bars"] += len(refused)
                log.warning("%s %s: refused %d kline row(s) from %s: %s", symbol, interval,
                            len(refused), self.shown_url, "; ".join(refused[:3]))  # fmt: skip
            page = page[(page["start"] >= start) & (page["start"] <= last)]
            if page.empty:
                return
            yield page.reset_index(drop=True)
            earliest = int(page["start"].iloc[0])
            if len(rows) < KLINE_LIMIT or earliest <= start:
                return
            last = earliest - 1

    async def funding_history(
        self, symbol: str, start: int, end: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Funding ``(times, rates)`` with ``start <= time < end``, ascending."""
        pages = [page async for page in self.iter_funding(symbol, start, end)]
        if not pages:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        pages.reverse()
        return np.concatenate([t for t, _ in pages]), np.concatenate([r for _, r in pages])

    async def iter_funding(
        self, symbol: str, start: int, end: int
    ) -> AsyncIterator[tuple[np.ndarray, np.ndarray]]:
        """Funding ``(times, rates)`` in ``[start, end)``, a page at a time, newest page first;
        paged like :meth:`iter_klines`."""
        last = end - 1
        while last >= start:
            params = {"category": self.category, "symbol": symbol, "startTime": start,
                      "endTime": last, "limit": FUNDING_LIMIT}  # fmt: skip
            envelope = await self._get("/v5/market/funding/history", params)
            times, rates = parse_funding(envelope["result"])
            keep = (times >= start) & (times <= last)
            if not keep.any():
                return
            yield times[keep], rates[keep]
            earliest = int(times[keep][0])
            if len(times) < FUNDING_LIMIT or earliest <= start:
                return
            last = earliest - 1

    async def _instrument_list(self, symbols: Sequence[str] | None) -> dict[str, Any]:
        """Every instrument of the category (following ``nextPageCursor``), as one ``result``
        holding the items of ``symbols``; a symbol Bybit does not list is an error."""
        items: list[dict[str, Any]] = []
        cursor = ""
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"category": self.category, "limit": INSTRUMENTS_LIMIT}
            if cursor:
                params["cursor"] = cursor
            result = (await self._get("/v5/market/instruments-info", params))["result"]
            items.extend(result.get("list") or [])
            seen.add(cursor)
            cursor = result.get("nextPageCursor") or ""
            if not cursor or cursor in seen:
                break
        if symbols is not None:
            wanted = set(symbols)
            items = [item for item in items if item.get("symbol") in wanted]
            unknown = wanted - {item["symbol"] for item in items}
            if unknown:
                raise LookupError(f"Bybit lists no {self.category} {', '.join(sorted(unknown))}")
        return {"list": items}

    # -- the retry loop ----------------------------------------------------------------------------
    async def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET ``path`` and return the checked envelope, retrying what :func:`retry_delay` says
        is worth retrying, at most ``max_retries`` times."""
        if self._session is None:
            raise RuntimeError("BybitRest is not open: use `async with BybitRest(...) as rest`")
        endpoint = path.removeprefix("/v5/market/")
        target = f"{path}?{urlencode(params)}" if params else path
        attempt = 0
        while True:
            attempt += 1
            self.stats["requests"] += 1
            self.stats[f"requests.{endpoint}"] += 1
            try:
                status, headers, body = await until_stopped(self._fetch(path, params), self.stop)
                return read_envelope(status, headers, body, target)
            except BybitError as exc:
                error = exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = transport_error(exc, target)
            delay = None
            if attempt <= self.max_retries:
                now_ms = int(time.time() * 1000)  # the reset header is wall-clock time
                delay = retry_delay(
                    attempt, error, now_ms, self.backoff_base_s, self.backoff_max_s, self._rng
                )
            if delay is None:
                self.stats["failures"] += 1
                raise error
            await back_off(delay, attempt, self.max_retries, error, self.stats, self.stop, log)

    async def _fetch(self, path: str, params: dict[str, Any]) -> tuple[int, Any, bytes]:
        async with self._session.get(self.base_url + path, params=params) as response:
            return response.status, response.headers, await response.read()
