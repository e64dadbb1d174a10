"""`bot data fetch`: klines and funding from (a fake) Bybit into the store, idempotent and
resumable after a crash at any page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bot.core.timeutil import HOUR_MS, WEEK_MS
from bot.store import Store
from bot.venues.bybit.fetch import (
    fetch_funding_to_store,
    fetch_klines_to_store,
    grid_ceil,
    missing_funding_spans,
    missing_kline_spans,
)
from bot.venues.bybit.rest_protocol import BybitHTTPError
from tests.venues.test_rest import NOW, T0, FakeBybit, client, serving

SYMBOLS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")
START, END = T0 - 2400 * HOUR_MS, NOW
LISTINGS = {
    "AAAUSDT": T0 - 2600 * HOUR_MS,  # before START: three pages
    "BBBUSDT": T0 - 1200 * HOUR_MS,  # after START: the head of the range does not exist
    "CCCUSDT": T0 - 2100 * HOUR_MS,
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path}/bot.db") as opened:
        yield opened


async def fetch_klines(url: str, store: Store, start: int = START, end: int = END):
    async with client(url, max_retries=2) as rest:
        return await fetch_klines_to_store(rest, store, SYMBOLS, "1h", start, end, progress=False)


async def fetch_funding(url: str, store: Store, start: int = START, end: int = END):
    async with client(url, max_retries=2) as rest:
        return await fetch_funding_to_store(rest, store, SYMBOLS, start, end, progress=False)


def assert_store_holds_truth(store: Store, bybit: FakeBybit) -> None:
    for symbol in SYMBOLS:
        pd.testing.assert_frame_equal(
            store.load_klines(symbol, "1h"), bybit.closed_klines(symbol, START, END)
        )


def assert_funding_is_truth(store: Store, bybit: FakeBybit) -> None:
    stored = store.load_funding(SYMBOLS)
    for symbol in SYMBOLS:
        for got, want in zip(
            stored[symbol], bybit.settled_funding(symbol, START, END), strict=True
        ):
            np.testing.assert_array_equal(got, want)


# -- missing spans ----------------------------------------------------------------------------
def test_missing_kline_spans():
    h = HOUR_MS
    none = np.array([], dtype=np.int64)
    stored = np.array([10 * h, 11 * h, 12 * h, 15 * h, 16 * h])
    before, hole, after = (5 * h, 10 * h), (13 * h, 15 * h), (17 * h, 20 * h)
    assert missing_kline_spans(stored, 5 * h, 20 * h, h) == [before, hole, after]
    assert missing_kline_spans(stored, 10 * h, 17 * h, h) == [hole]
    assert missing_kline_spans(stored, 10 * h - 1, 17 * h + 1, h) == [hole, (17 * h, 17 * h + 1)]
    assert missing_kline_spans(none, h + 1, 3 * h, h) == [(2 * h, 3 * h)]  # bars start on the hour
    assert missing_kline_spans(none, h + 1, 2 * h, h) == []
    monday = grid_ceil(0, WEEK_MS)  # weeks start on Monday: 1970-01-05
    assert monday == 4 * 24 * h
    weekly = missing_kline_spans(np.array([monday]), 0, 2 * WEEK_MS, WEEK_MS)
    assert weekly == [(monday + WEEK_MS, 2 * WEEK_MS)]


def test_missing_funding_spans():
    h = HOUR_MS
    every8 = np.arange(0, 80 * h, 8 * h)
    assert missing_funding_spans(every8, 0, 72 * h + 1) == []
    assert missing_funding_spans(every8, 0, 80 * h) == [(72 * h + 1, 80 * h)]  # maybe a new one
    assert missing_funding_spans(every8, -2 * h, 73 * h) == [(-2 * h, 0)]  # no hour in (72, 73)
    changed = np.r_[np.arange(0, 40 * h, 8 * h), np.arange(40 * h, 60 * h, 4 * h)]
    assert missing_funding_spans(changed, 0, 56 * h + 1) == []  # a new interval is not a hole
    hourly = np.delete(np.arange(0, 24 * h, h), [10, 11])
    assert missing_funding_spans(hourly, 0, 23 * h + 1) == [(9 * h + 1, 12 * h)]
    assert missing_funding_spans(np.array([0, 16 * h]), 0, 16 * h + 1) == [(1, 16 * h)]
    assert missing_funding_spans(np.array([], dtype=np.int64), 0, h) == [(0, h)]


# -- klines -----------------------------------------------------------------------------------
async def test_fetch_fills_the_store_and_a_rerun_only_asks_for_what_is_new(store):
    bybit = FakeBybit(LISTINGS)
    async with serving(bybit) as url:
        counts = await fetch_klines(url, store)
        truth = {s: len(bybit.closed_klines(s, START, END)) for s in SYMBOLS}
        assert counts == {s: (n, n) for s, n in truth.items()}
        assert_store_holds_truth(store, bybit)
        clean = bybit.requests["kline"]
        assert clean >= 8  # 3 + 2 + 3 pages

        assert await fetch_klines(url, store) == {s: (0, 0) for s in SYMBOLS}
        rerun = bybit.requests["kline"] - clean
        assert rerun <= 2 * len(SYMBOLS) and rerun < clean  # only the open ends are asked

        bybit.now += 5 * HOUR_MS  # five more candles close
        assert await fetch_klines(url, store, end=bybit.now) == {s: (5, 5) for s in SYMBOLS}
    for symbol in SYMBOLS:
        stored = store.load_klines(symbol, "1h")
        assert stored["start"].iloc[-1] == T0 + 4 * HOUR_MS and stored["start"].is_unique


async def test_a_crash_mid_fetch_resumes_where_it_stopped(store, tmp_path):
    bybit = FakeBybit(LISTINGS)
    async with serving(bybit) as url:
        bybit.down_after_pages = 4  # the exchange dies after four pages: AAA and half of BBB
        with pytest.raises(BybitHTTPError, match="HTTP 500"):
            await fetch_klines(url, store)
        partial = sum(len(store.load_klines(s, "1h")) for s in SYMBOLS)
        assert 0 < partial < sum(len(bybit.closed_klines(s, START, END)) for s in SYMBOLS)

        bybit.down_after_pages, before = None, bybit.requests["kline"]
        counts = await fetch_klines(url, store)
        resumed = bybit.requests["kline"] - before
        assert sum(inserted for _, inserted in counts.values()) > 0
        assert_store_holds_truth(store, bybit)

        with Store(f"sqlite:///{tmp_path}/clean.db") as clean_store:
            before = bybit.requests["kline"]
            await fetch_klines(url, clean_store)
            assert resumed < bybit.requests["kline"] - before
            for symbol in SYMBOLS:
                pd.testing.assert_frame_equal(
                    store.load_klines(symbol, "1h"), clean_store.load_klines(symbol, "1h")
                )


async def test_a_crash_while_extending_leaves_a_hole_the_rerun_fills(store):
    bybit = FakeBybit(LISTINGS)
    middle = T0 - 1800 * HOUR_MS
    async with serving(bybit) as url:
        await fetch_klines(url, store, end=middle)
        # Extending to END pages backwards from END: dying after one page leaves a hole
        # between the bars stored before and the page just written.
        bybit.down_after_pages = bybit.pages + 1
        with pytest.raises(BybitHTTPError):
            await fetch_klines(url, store)
        starts = store.load_klines("AAAUSDT", "1h", START, END)["start"].to_numpy()
        (hole_lo, hole_hi), tail = missing_kline_spans(starts, START, END, HOUR_MS)
        assert hole_lo == middle and hole_hi < T0 and tail[0] == T0

        bybit.down_after_pages = None
        await fetch_klines(url, store)
    assert_store_holds_truth(store, bybit)


# -- funding ----------------------------------------------------------------------------------
async def test_funding_fetch_is_idempotent_and_resumable(store, tmp_path):
    bybit = FakeBybit(LISTINGS)
    async with serving(bybit) as url:
        with Store(f"sqlite:///{tmp_path}/clean.db") as clean_store:
            counts = await fetch_funding(url, clean_store)
        truth = {s: len(bybit.settled_funding(s, START, END)[0]) for s in SYMBOLS}
        assert counts == {s: (n, n) for s, n in truth.items()}
        clean = bybit.requests["funding/history"]

        middle = START + 400 * HOUR_MS
        await fetch_funding(url, store, end=middle)
        bybit.down_after_pages = bybit.pages + 1  # dies after the newest page of AAA's tail
        with pytest.raises(BybitHTTPError):
            await fetch_funding(url, store)
        times = store.load_funding(["AAAUSDT"])["AAAUSDT"][0]
        assert np.diff(times).max() > 8 * HOUR_MS  # a hole between old and new pages

        bybit.down_after_pages = None
        await fetch_funding(url, store)
        assert_funding_is_truth(store, bybit)

        before = bybit.requests["funding/history"]
        assert await fetch_funding(url, store) == {s: (0, 0) for s in SYMBOLS}
        assert bybit.requests["funding/history"] - before < clean
