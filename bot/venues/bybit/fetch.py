"""Download Bybit klines and funding rates into the store, resumably.

Before fetching a symbol, the store is asked what it already holds in ``[start, end)``; only the
missing spans are requested. Each page is written as it arrives (the store ignores rows it
has), so an interrupted fetch loses at most the page in flight, and running the same command
again continues where it stopped and leaves the store exactly as one clean run would.

Pages arrive newest first, so an interruption leaves a hole *between* what was stored before
and what this run wrote: the span finders below detect holes anywhere, not only at the ends.

Database calls run on worker threads: a daemon's event loop (pings, the stream) never waits
for the database, however long another process keeps it locked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from bot.core.timeutil import HOUR_MS, WEEK_MS, WEEK_OFFSET_MS, interval_ms, normalize_interval
from bot.store import Store
from bot.venues.bybit.rest import BybitRest

log = logging.getLogger(__name__)

#: Bybit settles funding on the hour, every 1, 2, 4 or 8 hours depending on the symbol.
FUNDING_MIN_INTERVAL_MS = HOUR_MS
FUNDING_MAX_INTERVAL_MS = 8 * HOUR_MS
#: Slack on funding spacing, so a late-stamped settlement is not taken for a hole.
FUNDING_SLACK_MS = HOUR_MS // 2

Span = tuple[int, int]  # [lo, hi) in epoch ms


def grid_ceil(time_ms: int, step_ms: int) -> int:
    """The first bar start at or after ``time_ms`` (weeks start on Monday, like Bybit's)."""
    offset = WEEK_OFFSET_MS if step_ms % WEEK_MS == 0 else 0
    return time_ms + (offset - time_ms) % step_ms


def missing_kline_spans(starts: np.ndarray, start: int, end: int, step_ms: int) -> list[Span]:
    """The spans of ``[start, end)`` where bars on the interval's grid are not in ``starts``
    (the stored bar starts, ascending): before the first, after the last, and every hole."""
    first, after = grid_ceil(start, step_ms), grid_ceil(end, step_ms)
    if first >= end:
        return []
    # Virtual bars just before and just after the range turn the ends into ordinary holes.
    edges = np.concatenate(([first - step_ms], np.asarray(starts, dtype=np.int64), [after]))
    holes = np.flatnonzero(np.diff(edges) > step_ms)
    return [(int(edges[i]) + step_ms, min(int(edges[i + 1]), end)) for i in holes]


def missing_funding_spans(times: np.ndarray, start: int, end: int) -> list[Span]:
    """The spans of ``[start, end)`` that may hold funding settlements not in ``times`` (the
    stored ones, ascending).

    Funding has no fixed grid (each symbol's interval is 1-8 h and has changed over time), so
    a hole is a gap longer than both neighbouring gaps (and than 8 h when there are none): a
    change of interval never looks like that, a missing settlement always does. The ends count
    as missing when an hour mark lies between them and the stored settlements.
    """
    times = np.asarray(times, dtype=np.int64)
    if len(times) == 0:
        return [(start, end)] if start < end else []
    spans = []
    if grid_ceil(start, FUNDING_MIN_INTERVAL_MS) < times[0]:
        spans.append((start, int(times[0])))
    gaps = np.diff(times)
    if len(gaps):
        before = np.concatenate(([0], gaps[:-1]))
        after = np.concatenate((gaps[1:], [0]))
        usual = np.maximum(before, after)
        usual = np.where(usual == 0, FUNDING_MAX_INTERVAL_MS, usual)
        holes = np.flatnonzero(gaps > np.minimum(usual, FUNDING_MAX_INTERVAL_MS) + FUNDING_SLACK_MS)
        spans.extend((int(times[i]) + 1, int(times[i + 1])) for i in holes)
    if grid_ceil(int(times[-1]) + 1, FUNDING_MIN_INTERVAL_MS) < end:
        spans.append((int(times[-1]) + 1, end))
    return spans


async def fetch_klines_to_store(
    rest: BybitRest,
    store: Store,
    symbols: Sequence[str],
    interval: str,
    start: int,
    end: int,
    progress: bool = False,
) -> dict[str, tuple[int, int]]:
    """Fetch the closed bars of ``[start, end)`` the store lacks; returns ``{symbol: (fetched,
    inserted)}``. A second run over the same range fetches nothing it already has."""
    interval = normalize_interval(interval)
    step = interval_ms(interval)
    plan = {}
    for symbol in symbols:
        stored = await asyncio.to_thread(store.load_klines, symbol, interval, start, end)
        plan[symbol] = missing_kline_spans(stored["start"].to_numpy(), start, end, step)
    total = sum(-(-(hi - lo) // step) for spans in plan.values() for lo, hi in spans)
    counts: dict[str, tuple[int, int]] = {}
    with tqdm(total=total, unit="bar", desc=f"klines {interval}", disable=not progress) as bar:
        for symbol, spans in plan.items():
            bar.set_postfix_str(symbol)
            fetched = inserted = 0
            for lo, hi in spans:
                async for page in rest.iter_klines(symbol, interval, lo, hi):
                    inserted += await asyncio.to_thread(store.upsert_klines, symbol, interval, page)
                    fetched += len(page)
                    bar.update(len(page))
            counts[symbol] = (fetched, inserted)
            log.info("%s %s: %d spans missing, %d bars fetched, %d new",
                     symbol, interval, len(spans), fetched, inserted)  # fmt: skip
    return counts


async def fetch_funding_to_store(
    rest: BybitRest,
    store: Store,
    symbols: Sequence[str],
    start: int,
    end: int,
    progress: bool = False,
) -> dict[str, tuple[int, int]]:
    """Fetch the funding rates of ``[start, end)`` the store lacks; returns ``{symbol:
    (fetched, inserted)}``, resumable like :func:`fetch_klines_to_store`."""
    stored = await asyncio.to_thread(store.load_funding, symbols, start, end)
    empty = np.empty(0, dtype=np.int64)
    plan = {s: missing_funding_spans(stored.get(s, (empty,))[0], start, end) for s in symbols}
    counts: dict[str, tuple[int, int]] = {}
    with tqdm(unit="rate", desc="funding", disable=not progress) as bar:
        for symbol, spans in plan.items():
            bar.set_postfix_str(symbol)
            fetched = inserted = 0
            for lo, hi in spans:
                async for times, rates in rest.iter_funding(symbol, lo, hi):
                    inserted += await asyncio.to_thread(
                        store.upsert_funding, symbol, times.tolist(), rates.tolist()
                    )
                    fetched += len(times)
                    bar.update(len(times))
            counts[symbol] = (fetched, inserted)
            log.info("%s funding: %d spans missing, %d rates fetched, %d new",
                     symbol, len(spans), fetched, inserted)  # fmt: skip
    return counts
