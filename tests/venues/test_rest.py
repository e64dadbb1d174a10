"""Bybit public REST: the sans-I/O protocol on real payloads, and the client against a fake
Bybit that pages, rate-limits, fails and stalls the way the real one does."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiohttp import test_utils, web

from bot.core.timeutil import DAY_MS, HOUR_MS
from bot.venues.bybit.intervals import bybit_interval
from bot.venues.bybit.rest import BybitRest
from bot.venues.bybit.rest_protocol import (
    RESET_HEADER,
    RESET_MARGIN_S,
    BadResponseError,
    BybitAPIError,
    BybitHTTPError,
    RateLimited,
    TransportError,
    check_response,
    funding_intervals,
    parse_funding,
    parse_instruments,
    parse_klines,
    parse_server_time,
    read_envelope,
    retry_delay,
)
from bot.venues.bybit.stopping import Stopping
from tests.conftest import ROOT

MESSAGES = ROOT.parent / "shared" / "bybit-messages"
FUNDING_STEP = 8 * HOUR_MS
T0 = 1_700_000_000_000 // DAY_MS * DAY_MS  # a bar boundary
NOW = T0 + 30 * 60_000  # the fake's clock: half-way through the candle starting at T0


def raw(name: str) -> str:
    """A payload example from the shared folder (the test skips when it is missing)."""
    path = MESSAGES / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path.read_text()


def message(name: str) -> Any:
    return json.loads(raw(name))


def jsonc_objects(name: str) -> list[Any]:
    """The JSON objects of a documentation example with `//` comment lines between them."""
    lines = raw(name).splitlines()
    text = "\n".join(ln for ln in lines if not ln.lstrip().startswith("//"))
    decoder, objects, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        obj, at = decoder.raw_decode(text, at)
        objects.append(obj)
    return objects


def live_body(key: str) -> bytes:
    return json.dumps(message("live_error_bodies.json")[key]["body"]).encode()


# -- the fake exchange ------------------------------------------------------------------------
def synthetic_klines(first: int, count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, count))), 4)
    opens = np.r_[100.0, close[:-1]]
    wick = rng.uniform(0, 0.005, count)
    volume = np.round(rng.uniform(1, 100, count), 3)
    return pd.DataFrame({
        "start": first + HOUR_MS * np.arange(count, dtype=np.int64),
        "open": opens,
        "high": np.round(np.maximum(opens, close) * (1 + wick), 4),
        "low": np.round(np.minimum(opens, close) * (1 - wick), 4),
        "close": close,
        "volume": volume,
        "turnover": np.round(volume * close, 4),
    })  # fmt: skip


class FakeBybit:
    """Bybit's public market endpoints over seeded synthetic 1h klines and 8h funding.

    Scripted faults: ``faults`` are consumed one per request ("10006", "403", "502", "slow");
    ``rate_limit_forever`` answers 10006 to everything; after ``down_after_pages`` data pages
    every request gets an HTTP 500 (a crash mid-fetch). ``now`` can be moved forward: only bars
    that have started by then are served, the newest being the candle still open.
    """

    def __init__(self, listings: dict[str, int], seed: int = 7, horizon: int = NOW + 400 * HOUR_MS):
        self.now = NOW
        self.klines = {
            symbol: synthetic_klines(listed, (horizon - listed) // HOUR_MS, seed + k)
            for k, (symbol, listed) in enumerate(sorted(listings.items()))
        }
        self.funding = {}
        for k, (symbol, listed) in enumerate(sorted(listings.items())):
            times = np.arange(-(-listed // FUNDING_STEP) * FUNDING_STEP, horizon, FUNDING_STEP)
            rates = np.round(
                np.random.default_rng(seed + 100 + k).normal(1e-4, 3e-4, len(times)), 8
            )
            self.funding[symbol] = (times.astype(np.int64), rates)
        self.faults: deque[str] = deque()
        self.rate_limit_forever = False
        self.reset_ahead_ms = 300
        self.down_after_pages: int | None = None
        self.requests: Counter[str] = Counter()
        self.pages = 0
        self.instruments_page_size = 2

    def closed_klines(self, symbol: str, start: int, end: int) -> pd.DataFrame:
        frame = self.klines[symbol]
        keep = (frame["start"] >= start) & (frame["start"] < end)
        keep &= frame["start"] + HOUR_MS <= self.now
        return frame[keep].reset_index(drop=True)

    def settled_funding(self, symbol: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        times, rates = self.funding[symbol]
        keep = (times >= start) & (times < end) & (times <= self.now)
        return times[keep], rates[keep]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v5/market/{endpoint:.+}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"]
        self.requests[endpoint] += 1
        fault = self.faults.popleft() if self.faults else None
        if fault == "10006" or self.rate_limit_forever:
            reset = int(time.time() * 1000) + self.reset_ahead_ms
            body = {"retCode": 10006, "retMsg": "Too many visits", "result": {}, "time": self.now}
            return web.json_response(body, headers={RESET_HEADER: str(reset)})
        if fault == "403":
            return web.Response(status=403, text="access too frequent")
        if fault == "502":
            return web.Response(status=502, text="<html><h1>502 Bad Gateway</h1></html>")
        if fault == "slow":
            await asyncio.sleep(0.5)
        if self.down_after_pages is not None and self.pages >= self.down_after_pages:
            return web.Response(status=500, text="internal error")
        handler = {
            "time": self.time,
            "kline": self.kline,
            "funding/history": self.funding_history,
            "instruments-info": self.instruments,
        }[endpoint]
        return handler(request.query)

    def envelope(self, result: dict[str, Any], code: int = 0, msg: str = "OK") -> web.Response:
        body = {
            "retCode": code,
            "retMsg": msg,
            "result": result,
            "retExtInfo": {},
            "time": self.now,
        }
        return web.json_response(body)

    def time(self, query: Any) -> web.Response:
        nano = str(self.now * 1_000_000 + 123_456)
        return self.envelope({"timeSecond": str(self.now // 1000), "timeNano": nano})

    def kline(self, query: Any) -> web.Response:
        symbol, limit = query["symbol"], int(query.get("limit", 200))
        if symbol not in self.klines:
            return self.envelope({}, 10001, f"params error: symbol {symbol} invalid")
        if query["interval"] != "60" or not 1 <= limit <= 1000:
            return self.envelope({}, 10001, "params error")
        frame = self.klines[symbol]
        lo, hi = int(query.get("start", 0)), int(query.get("end", self.now))
        keep = (frame["start"] >= lo) & (frame["start"] <= min(hi, self.now))
        rows = frame[keep].iloc[::-1].iloc[:limit]
        self.pages += 1
        listed = [[str(value) for value in row] for row in rows.itertuples(index=False)]
        return self.envelope({"symbol": symbol, "category": "linear", "list": listed})

    def funding_history(self, query: Any) -> web.Response:
        symbol, limit = query["symbol"], int(query.get("limit", 200))
        if "startTime" in query and "endTime" not in query:
            return self.envelope({}, 10001, "params error: endTime is required with startTime")
        if symbol not in self.funding or not 1 <= limit <= 200:
            return self.envelope({}, 10001, "params error")
        times, rates = self.funding[symbol]
        lo, hi = int(query.get("startTime", 0)), int(query.get("endTime", self.now))
        keep = np.flatnonzero((times >= lo) & (times <= min(hi, self.now)))[::-1][:limit]
        self.pages += 1
        items = [{"symbol": symbol, "fundingRate": str(rates[i]),
                  "fundingRateTimestamp": str(times[i])} for i in keep]  # fmt: skip
        return self.envelope({"category": "linear", "list": items})

    def instruments(self, query: Any) -> web.Response:
        symbols = sorted(self.klines)
        at = int(query.get("cursor") or 0)
        page = symbols[at : at + self.instruments_page_size]
        after = at + len(page)
        items = [{"symbol": s, "fundingInterval": 480, "priceFilter": {"tickSize": "0.01"},
                  "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001",
                                    "maxOrderQty": "1000", "minNotionalValue": "5"}}
                 for s in page]  # fmt: skip
        cursor = str(after) if after < len(symbols) else ""
        return self.envelope({"category": "linear", "list": items, "nextPageCursor": cursor})


@asynccontextmanager
async def serving(fake: FakeBybit) -> AsyncIterator[str]:
    """Run ``fake`` on 127.0.0.1 (a free port); yields its base URL."""
    server = test_utils.TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def client(url: str, **kwargs: Any) -> BybitRest:
    """A client with short waits, so retries cost milliseconds."""
    options = {"timeout_s": 2.0, "max_retries": 4, "backoff_base_s": 0.01,
               "backoff_max_s": 1.0, "rng_seed": 1} | kwargs  # fmt: skip
    return BybitRest(url, **options)


LISTED = T0 - 2600 * HOUR_MS  # > 2000 bars: at least three pages


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeBybit, str]]:
    bybit = FakeBybit({"BTCUSDT": LISTED, "ETHUSDT": T0 - 300 * HOUR_MS})
    async with serving(bybit) as url:
        yield bybit, url


# -- protocol: intervals and envelopes --------------------------------------------------------
def test_interval_codes():
    assert [bybit_interval(i) for i in ("1m", "15m", "1h", "4h", "12h", "1d", "1w")] == [
        "1", "15", "60", "240", "720", "D", "W"
    ]  # fmt: skip
    assert bybit_interval("60") == "60"  # Bybit's own codes are accepted too
    with pytest.raises(ValueError, match="no 2m klines"):
        bybit_interval("2m")


def test_server_time_from_the_documented_example():
    body = raw("rest_market_time_1.jsonc").encode()
    assert parse_server_time(check_response(200, {}, body, "/v5/market/time")) == 1688639403423
    assert parse_server_time({"timeSecond": "1688639403"}) == 1688639403000


def test_recorded_daily_klines_drop_the_candle_still_open():
    envelope = read_envelope(200, {}, json.dumps(message(
        "rest_market_kline_linear_btc_daily_recorded.json")), "/v5/market/kline")  # fmt: skip
    frame, refused = parse_klines(envelope["result"], DAY_MS, envelope["time"])
    assert refused == []
    # 1694649600000 (2023-09-14) + 1 day is after the envelope's time: still forming.
    assert frame["start"].tolist() == [1694476800000, 1694563200000]
    assert frame["start"].dtype == np.int64
    assert frame.iloc[1].tolist()[1:] == [25828.3, 34343.0, 25752.4, 26210.0, 76565.946,
                                          2060874661.2268]  # fmt: skip


def test_documented_klines_come_back_ascending():
    result = check_response(200, {}, raw("rest_market_kline_1.jsonc"), "k")
    frame, _ = parse_klines(result, HOUR_MS, 1672025956592)
    assert frame["start"].tolist() == [1670601600000, 1670605200000, 1670608800000]
    assert list(frame.columns) == ["start", "open", "high", "low", "close", "volume", "turnover"]
    assert parse_klines({"list": []}, HOUR_MS, 0)[0].empty


def test_rows_breaking_the_bar_rules_are_refused_one_by_one():
    now = 10 * HOUR_MS
    good = [str(2 * HOUR_MS), "10", "12", "9", "11", "5", "50"]
    rows = [
        good,
        [str(3 * HOUR_MS), "10", "12", "9", "11", "-5", "50"],  # negative volume
        [str(4 * HOUR_MS), "inf", "inf", "9", "11", "5", "50"],  # infinite price
        [str(5 * HOUR_MS), "10", "8", "9", "11", "5", "50"],  # high below low
        [str(6 * HOUR_MS), "zz", "12", "9", "11", "5", "50"],  # not a number
        [str(7 * HOUR_MS), "10", "12"],  # too few fields
        [str(8 * HOUR_MS + 1), "10", "12", "9", "11", "5", "50"],  # off the grid
        [str(400 * HOUR_MS), "10", "12", "9", "11", "5", "50"],  # far in the future
    ]
    frame, refused = parse_klines({"list": rows[::-1]}, HOUR_MS, now)
    assert frame["start"].tolist() == [2 * HOUR_MS]
    assert len(refused) == 7
    for reason in ("bad volume", "non-finite price", "inconsistent range", "could not convert",
                   "3 fields", "not on the", "in the future"):  # fmt: skip
        assert any(reason in r for r in refused), reason


def test_instruments_of_each_category():
    btc, bio = (parse_instruments(o["result"]) for o in jsonc_objects(
        "rest_market_instruments_info_1.jsonc"))  # fmt: skip
    spec = btc["BTCUSDT"]
    assert (spec.qty_step, spec.min_order_qty, spec.min_notional, spec.tick_size,
            spec.max_order_qty) == (0.001, 0.001, 5.0, 0.1, 1190.0)  # fmt: skip
    assert bio["BIOUSDT"].qty_step == 1.0
    linear = jsonc_objects("rest_market_instruments_info_1.jsonc")[0]["result"]
    assert funding_intervals(linear) == {"BTCUSDT": 8 * HOUR_MS}

    option = parse_instruments(message("rest_market_instruments_info_2.jsonc")["result"])
    (put,) = option.values()
    assert (put.qty_step, put.min_notional, put.tick_size) == (0.01, 0.0, 5.0)
    spot = parse_instruments(message("rest_market_instruments_info_3.jsonc")["result"])
    # Spot: the step is basePrecision, the minimum order value minOrderAmt.
    assert (spot["BTCUSDT"].qty_step, spot["BTCUSDT"].min_notional) == (0.000001, 5.0)
    assert funding_intervals(message("rest_market_instruments_info_3.jsonc")["result"]) == {}


def test_funding_comes_back_ascending():
    result = {"list": [
        {"symbol": "ETHPERP", "fundingRate": "-0.0002", "fundingRateTimestamp": "1672070400000"},
        {"symbol": "ETHPERP", "fundingRate": "0.0001", "fundingRateTimestamp": "1672041600000"},
    ]}  # fmt: skip
    times, rates = parse_funding(result)
    assert times.tolist() == [1672041600000, 1672070400000] and times.dtype == np.int64
    assert rates.tolist() == [0.0001, -0.0002]


def test_rate_limit_body_with_and_without_reset_header():
    with pytest.raises(RateLimited) as caught:
        headers = {"x-bapi-limit-reset-timestamp": "1693924870000"}  # any case
        check_response(200, headers, live_body("rate_limit_10006"), "/v5/market/kline?symbol=BTC")
    assert (caught.value.code, caught.value.reset_ms) == (10006, 1693924870000)
    assert "Too many visits" in str(caught.value) and "symbol=BTC" in str(caught.value)
    with pytest.raises(RateLimited) as caught:
        check_response(200, {}, live_body("rate_limit_10006"), "p")
    assert caught.value.reset_ms is None


def test_api_errors_carry_code_and_message():
    with pytest.raises(BybitAPIError) as caught:
        check_response(200, {}, live_body("bad_signature_10004"), "/v5/order/create")
    assert caught.value.code == 10004 and caught.value.message.startswith("error sign!")
    assert not isinstance(caught.value, RateLimited)
    text = message("live_error_bodies.json")["recv_window_10002"]["retMsg"]
    body = json.dumps({"retCode": 10002, "retMsg": text, "result": {}, "time": 1})
    with pytest.raises(BybitAPIError, match="retCode 10002: invalid request") as caught:
        check_response(200, {}, body, "p")
    assert caught.value.path == "p"


@pytest.mark.parametrize(
    ("status", "body", "meaning"),
    [(403, b"access too frequent", "IP rate limit"), (429, b"{}", "system protection"),
     (502, b"<html><h1>502 Bad Gateway</h1></html>", "502 Bad Gateway")],
)  # fmt: skip
def test_http_errors_carry_the_status(status: int, body: bytes, meaning: str):
    with pytest.raises(BybitHTTPError, match=meaning) as caught:
        check_response(status, {}, body, "/v5/market/kline")
    assert caught.value.status == status


@pytest.mark.parametrize("body", [b"<html>maintenance</html>", b"", b"[1, 2]", b'{"a": 1}',
                                  b'{"retCode": 0, "retMsg": "OK"}'])  # fmt: skip
def test_a_body_that_is_not_an_envelope_is_a_clear_error(body: bytes):
    with pytest.raises(BadResponseError, match="bad response"):
        check_response(200, {}, body, "/v5/market/time")


# -- protocol: retry policy -------------------------------------------------------------------
def test_rate_limit_waits_until_the_reset_capped():
    rng = random.Random(0)
    error = RateLimited(10006, "Too many visits", "p", reset_ms=10_400)
    assert retry_delay(1, error, 10_000, 0.5, 30, rng) == pytest.approx(0.4 + RESET_MARGIN_S)
    assert retry_delay(1, error, 10_000, 0.5, 0.2, rng) == 0.2  # capped
    assert retry_delay(1, error, 11_000, 0.5, 30, rng) == 0.5  # reset already past
    assert retry_delay(1, RateLimited(10006, "", "p", None), 0, 0.5, 30, rng) == 0.5


@pytest.mark.parametrize(
    "error",
    [BybitHTTPError(403, "p", ""), BybitHTTPError(429, "p", ""), BybitHTTPError(503, "p", ""),
     TransportError("ServerDisconnectedError", "p"), TimeoutError(), ConnectionResetError(),
     BadResponseError("not JSON", "p"), BybitAPIError(10016, "server error", "p")],
)  # fmt: skip
def test_transient_errors_back_off_exponentially_with_full_jitter(error: BaseException):
    delays = [retry_delay(n, error, 0, 0.5, 3.0, random.Random(42)) for n in range(1, 8)]
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    again = [retry_delay(n, error, 0, 0.5, 3.0, random.Random(42)) for n in range(1, 8)]
    assert delays == again  # the seeded generator makes it reproducible


@pytest.mark.parametrize(
    "error",
    [BybitAPIError(10001, "params error", "p"), BybitAPIError(10002, "recv window", "p"),
     BybitAPIError(10004, "error sign", "p"), BybitHTTPError(404, "p", ""), ValueError("bug")],
)  # fmt: skip
def test_refused_requests_are_not_retried(error: BaseException):
    assert retry_delay(1, error, 0, 0.5, 30, random.Random(0)) is None


# -- the client against the fake exchange -----------------------------------------------------
async def test_klines_page_backwards_without_gaps_or_duplicates(fake):
    bybit, url = fake
    start, end = LISTED + 17 * HOUR_MS, NOW + HOUR_MS  # end past the open candle
    async with client(url) as rest:
        frame = await rest.klines("BTCUSDT", "1h", start, end)
    want = bybit.closed_klines("BTCUSDT", start, end)
    assert len(want) > 2000 and bybit.requests["kline"] >= 3
    pd.testing.assert_frame_equal(frame, want)
    assert frame["start"].is_unique and (np.diff(frame["start"]) == HOUR_MS).all()
    assert frame["start"].iloc[-1] == T0 - HOUR_MS  # the candle opened at T0 is left out


async def test_klines_end_is_exclusive_and_unaligned_bounds_work(fake):
    bybit, url = fake
    start, end = NOW - 1500 * HOUR_MS + 1, T0 - 200 * HOUR_MS  # end on a bar boundary
    async with client(url) as rest:
        frame = await rest.klines("BTCUSDT", "1h", start, end)
        assert (await rest.klines("BTCUSDT", "1h", end, end)).empty
    pd.testing.assert_frame_equal(frame, bybit.closed_klines("BTCUSDT", start, end))
    assert frame["start"].iloc[-1] == end - HOUR_MS


async def test_klines_stop_at_the_listing_without_an_empty_request(fake):
    bybit, url = fake
    async with client(url) as rest:
        frame = await rest.klines("ETHUSDT", "1h", NOW - 5000 * HOUR_MS, NOW)
    assert len(frame) == 300 and frame["start"].iloc[0] == T0 - 300 * HOUR_MS
    assert bybit.requests["kline"] == 1  # a short page means there is nothing older


async def test_rate_limits_403_and_502_are_retried_and_the_reset_respected(fake, caplog):
    bybit, url = fake
    bybit.faults.extend(["10006", "10006", "403", "502"])
    began = time.monotonic()
    async with client(url) as rest:
        frame = await rest.klines("BTCUSDT", "1h", T0 - 100 * HOUR_MS, NOW)
    elapsed = time.monotonic() - began
    assert len(frame) == 100
    assert elapsed >= 2 * bybit.reset_ahead_ms / 1000  # two waits for the reset timestamp
    assert rest.stats["retries"] == 4 and rest.stats["retries.rate_limited"] == 2
    assert rest.stats["retries.http_403"] == 1 and rest.stats["retries.http_502"] == 1
    assert rest.stats["requests"] == 5 and rest.stats["failures"] == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 4 and "Too many visits" in warnings[0] and "HTTP 403" in warnings[2]


async def test_a_stalled_response_times_out_and_is_retried(fake):
    bybit, url = fake
    bybit.faults.append("slow")
    async with client(url, timeout_s=0.2) as rest:
        assert len(await rest.klines("BTCUSDT", "1h", T0 - 10 * HOUR_MS, NOW)) == 10
    assert rest.stats["retries.transport"] == 1


async def test_attempts_are_bounded_when_always_rate_limited(fake):
    bybit, url = fake
    bybit.rate_limit_forever, bybit.reset_ahead_ms = True, 20
    began = time.monotonic()
    async with client(url, max_retries=3) as rest:
        with pytest.raises(RateLimited, match="Too many visits"):
            await rest.server_time()
    assert bybit.requests["time"] == 4  # the first attempt and three retries
    assert time.monotonic() - began < 1.0
    assert rest.stats["failures"] == 1


async def test_an_unknown_symbol_fails_at_once_naming_it(fake):
    bybit, url = fake
    async with client(url) as rest:
        with pytest.raises(BybitAPIError, match=r"NOPEUSDT.*retCode 10001.*symbol NOPEUSDT") as e:
            await rest.klines("NOPEUSDT", "1h", NOW - 10 * HOUR_MS, NOW)
    assert e.value.code == 10001 and bybit.requests["kline"] == 1 and rest.stats["retries"] == 0


async def test_connection_refused_is_retried_then_raised():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with client(f"http://127.0.0.1:{port}", max_retries=2) as rest:
        with pytest.raises(TransportError):
            await rest.server_time()
    assert rest.stats["requests"] == 3 and rest.stats["retries.transport"] == 2


async def test_server_time_instruments_and_funding(fake):
    bybit, url = fake
    bybit.klines["SOLUSDT"] = bybit.klines["XRPUSDT"] = bybit.klines["ETHUSDT"]
    async with client(url) as rest:
        assert await rest.server_time() == NOW
        specs = await rest.instruments()
        assert sorted(specs) == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
        assert bybit.requests["instruments-info"] == 2  # followed nextPageCursor
        assert specs["BTCUSDT"].min_notional == 5.0
        assert await rest.funding_intervals(["ETHUSDT"]) == {"ETHUSDT": 8 * HOUR_MS}
        with pytest.raises(LookupError, match="NOPEUSDT"):
            await rest.instruments(["BTCUSDT", "NOPEUSDT"])
        times, rates = await rest.funding_history("BTCUSDT", LISTED - DAY_MS, NOW)
    want_times, want_rates = bybit.settled_funding("BTCUSDT", LISTED, NOW)
    assert len(times) > 200 and bybit.requests["funding/history"] == 2
    np.testing.assert_array_equal(times, want_times)
    np.testing.assert_array_equal(rates, want_rates)


async def test_the_client_must_be_opened():
    with pytest.raises(RuntimeError, match="async with"):
        await BybitRest("http://127.0.0.1:1").server_time()


async def test_stop_ends_a_retry_wait_and_a_hanging_request_at_once(fake, monkeypatch):
    """A daemon told to stop must not sit out a backoff or a request timeout first."""
    bybit, url = fake
    stop = asyncio.Event()
    bybit.faults.extend(["403"] * 5)
    monkeypatch.setattr("bot.venues.bybit.rest.retry_delay", lambda *args: 300.0)
    async with client(url, stop=stop) as rest:
        call = asyncio.create_task(rest.server_time())
        while rest.stats["retries"] == 0:  # the first 403 came back: now in a 300 s wait
            await asyncio.sleep(0.01)
        stop.set()
        with pytest.raises(Stopping):
            await asyncio.wait_for(call, 30)
    bybit.faults.clear()
    bybit.faults.append("slow")  # a response that never comes within the call
    stop = asyncio.Event()
    async with client(url, stop=stop, timeout_s=300.0) as rest:
        call = asyncio.create_task(rest.server_time())
        await asyncio.sleep(0.2)
        stop.set()
        with pytest.raises(Stopping):
            await asyncio.wait_for(call, 30)
