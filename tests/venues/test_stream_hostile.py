"""The stream against hostile and broken frames, without sockets: every bad message is counted
and dropped, an untrustworthy order book is reset and resubscribed, a kline dated in the future
cannot mark a symbol delivered, and a websocket close that REST contradicts is corrected."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bot.config import VenueConfig
from bot.core.timeutil import HOUR_MS
from bot.venues.bybit.kline_holds import REORDER_GRACE_S
from bot.venues.bybit.klines import Closed, Corrected, Opened
from bot.venues.bybit.stream import PublicStream

SYMBOL = "AAAUSDT"
T0 = 1_706_745_600_000  # 2024-02-01


class FakeRest:
    """The venue's REST side as a dict of bars; its clock is set by the test."""

    def __init__(self, now: int, bars: dict[int, list[float]]) -> None:
        self.now = now
        self.bars = bars  # start → [open, high, low, close, volume, turnover]
        self.requests = 0

    async def server_time(self) -> int:
        return self.now

    async def klines(self, symbol: str, interval: str, start: int, end: int) -> pd.DataFrame:
        self.requests += 1
        rows = [[t, *v] for t, v in sorted(self.bars.items())
                if start <= t < end and t + HOUR_MS <= self.now]  # fmt: skip
        columns = ["start", "open", "high", "low", "close", "volume", "turnover"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.astype({"start": "int64"})


def bar_values(k: int) -> list[float]:
    return [100.0 + k, 102.0 + k, 99.0 + k, 101.0 + k, 10.0, 1000.0]


def kline(start: int, values: list[float], confirm: bool, interval: str = "60") -> str:
    o, h, lo, c, v, t = (str(x) for x in values)
    step = 60_000 if interval == "1" else HOUR_MS
    item = {"start": start, "end": start + step - 1, "interval": interval, "open": o,
            "high": h, "low": lo, "close": c, "volume": v, "turnover": t, "confirm": confirm,
            "timestamp": start + 1}  # fmt: skip
    return json.dumps({"topic": f"kline.{interval}.{SYMBOL}", "data": [item], "ts": start + 1,
                       "type": "snapshot"})  # fmt: skip


def make_stream(rest: FakeRest, depth: int = 0) -> tuple[PublicStream, list]:
    events: list = []

    async def sink(event) -> None:
        events.append(event)

    venue = VenueConfig(orderbook_depth=depth)
    stream = PublicStream(
        ws_url="ws://unused", rest=rest, symbols=[SYMBOL], interval="1h",
        last_closed={SYMBOL: T0}, sink=sink, venue=venue,
    )  # fmt: skip
    return stream, events


def book_frame(kind: str | None, u, bids=(("99", "1"),), asks=(("101", "1"),)) -> str:
    message = {"topic": f"orderbook.50.{SYMBOL}", "ts": T0, "data": {
        "s": SYMBOL, "b": [list(b) for b in bids], "a": [list(a) for a in asks], "u": u,
        "seq": 7}}  # fmt: skip
    if kind is not None:
        message["type"] = kind
    return json.dumps(message)


@pytest.mark.parametrize(
    "frame",
    [book_frame(None, 2), book_frame("delta", "zz"), book_frame("delta", 2, bids=(("x", "1"),)),
     book_frame("snapshot", 3, asks=(("101", "-4"),)), book_frame("delta", None)],
)  # fmt: skip
async def test_a_malformed_book_frame_resets_the_book_and_asks_for_a_snapshot(frame):
    stream, _ = make_stream(FakeRest(T0, {}), depth=50)
    (book,) = stream.books.values()
    await stream._handle(book_frame("snapshot", 1))
    assert book.bids() == [(99.0, 1.0)]
    await stream._handle(frame)  # raised out of OrderBook.apply and killed the daemon before
    assert stream.stats["malformed"] == 1
    assert book.bids() == [] and book.counters["resets"] == 1
    assert stream._resnapshot == {book.topic}
    await stream._handle(book_frame("snapshot", 5))  # the resubscription's snapshot
    assert book.bids() == [(99.0, 1.0)] and not book.needs_snapshot


async def test_a_frame_for_a_book_of_another_depth_is_counted_not_applied():
    stream, _ = make_stream(FakeRest(T0, {}), depth=50)
    other = json.loads(book_frame("snapshot", 1))
    other["topic"] = f"orderbook.1.{SYMBOL}"
    await stream._handle(json.dumps(other))
    assert stream.stats["unknown_topic"] == 1


@pytest.mark.parametrize(
    ("values", "problem"),
    [([0.0, 1.0, 0.0, 1.0, 1.0, 1.0], "price not positive"),
     ([-5.0, 1.0, -6.0, 1.0, 1.0, 1.0], "price not positive"),
     ([1.0, float("inf"), 1.0, 1.0, 1.0, 1.0], "non-finite price"),
     ([1.0, 1e300, 1.0, 1.0, 1.0, 1.0], "implausible price"),
     ([10.0, 9.0, 11.0, 10.0, 1.0, 1.0], "inconsistent range"),
     ([10.0, 11.0, 9.0, 10.0, -3.0, 1.0], "bad volume")],
)  # fmt: skip
async def test_an_impossible_kline_is_dropped_and_counted(values, problem, caplog):
    stream, events = make_stream(FakeRest(T0, {}))
    await stream._handle(kline(T0 + HOUR_MS, values, confirm=True))
    assert events == [] and stream.stats["malformed"] == 1
    assert problem in caplog.text
    assert stream.tracker.last_closed(SYMBOL) == T0


async def test_a_one_minute_kline_is_not_taken_for_the_hourly_bar():
    stream, events = make_stream(FakeRest(T0, {}))
    await stream._handle(kline(T0 + HOUR_MS, bar_values(1), confirm=True, interval="1"))
    assert events == [] and stream.tracker.counters["wrong_interval"] == 1
    assert stream.holds.holding == []


async def test_a_kline_dated_in_the_future_cannot_mark_the_symbol_delivered(monkeypatch):
    real = {T0 + k * HOUR_MS: bar_values(k) for k in range(1, 4)}
    rest = FakeRest(T0 + 2 * HOUR_MS + 10_000, real)  # bar 1 has closed, bar 2 is forming
    stream, events = make_stream(rest)
    far = T0 + 5000 * HOUR_MS
    await stream._handle(kline(far, bar_values(9), confirm=True))  # forged, years ahead
    await stream._handle(kline(T0 + 2 * HOUR_MS, bar_values(2), confirm=False))  # real, forming
    clock = [0.0]
    monkeypatch.setattr("bot.venues.bybit.stream.time.monotonic", lambda: clock[0])
    clock[0] = 1e6 + REORDER_GRACE_S  # the holds have waited long enough
    await stream._backfill_expired_holds()
    assert stream.stats["future_updates"] == 1
    closed = [e.bar.start for e in events if isinstance(e, Closed)]
    assert closed == [T0 + HOUR_MS]  # backfilled over REST, and only what has closed
    assert stream.tracker.last_closed(SYMBOL) == T0 + HOUR_MS  # not `far`
    assert [e.start for e in events if isinstance(e, Opened)] == [T0 + 2 * HOUR_MS]
    # the real close of the forming bar is taken when it comes
    events.clear()
    await stream._handle(kline(T0 + 2 * HOUR_MS, bar_values(2), confirm=True))
    assert [e.bar.start for e in events if isinstance(e, Closed)] == [T0 + 2 * HOUR_MS]


async def test_a_backfill_never_counts_a_candle_that_has_not_closed_as_delivered(monkeypatch):
    real = {T0 + k * HOUR_MS: bar_values(k) for k in range(1, 4)}
    rest = FakeRest(T0 + 3 * HOUR_MS - 2_000, real)  # candle T0 + 2h closes in 2 s
    stream, events = make_stream(rest)
    # the next candle's first update, a moment early by the venue's REST clock (clock skew)
    await stream._handle(kline(T0 + 3 * HOUR_MS, bar_values(3), confirm=False))
    clock = [1e6 + REORDER_GRACE_S]
    monkeypatch.setattr("bot.venues.bybit.stream.time.monotonic", lambda: clock[0])
    await stream._backfill_expired_holds()
    assert [e.bar.start for e in events if isinstance(e, Closed)] == [T0 + HOUR_MS]
    assert stream.tracker.last_closed(SYMBOL) == T0 + HOUR_MS  # not the forming T0 + 2h
    rest.now = T0 + 3 * HOUR_MS + 10_000
    await stream._handle(kline(T0 + 2 * HOUR_MS, bar_values(2), confirm=True))  # its close
    assert [e.bar.start for e in events if isinstance(e, Closed)][-1] == T0 + 2 * HOUR_MS


async def test_a_websocket_close_that_rest_contradicts_is_corrected():
    real = {T0 + k * HOUR_MS: bar_values(k) for k in range(1, 4)}
    rest = FakeRest(T0 + 2 * HOUR_MS + 10_000, real)
    stream, events = make_stream(rest)
    forged = bar_values(1)
    forged[3] = 100.5  # a plausible but wrong close
    await stream._handle(kline(T0 + HOUR_MS, forged, confirm=True))
    (taken,) = [e for e in events if isinstance(e, Closed)]
    assert taken.bar.close == 100.5  # decisions cannot wait for REST
    events.clear()
    await stream.catch_up()
    (correction,) = [e for e in events if isinstance(e, Corrected)]
    assert correction.seen == taken.bar
    assert (correction.bar.start, correction.bar.close) == (T0 + HOUR_MS, 101.0 + 1)
    assert stream.audit.counters["corrected"] == 1 and stream.stats["corrected"] == 1
    events.clear()
    await stream.catch_up()  # settled: not compared (or fetched) again
    assert not [e for e in events if isinstance(e, Corrected)]


async def test_websocket_closes_that_rest_confirms_cause_no_event():
    real = {T0 + k * HOUR_MS: bar_values(k) for k in range(1, 4)}
    rest = FakeRest(T0 + 4 * HOUR_MS + 10_000, real)
    stream, events = make_stream(rest)
    for k in (1, 2):
        await stream._handle(kline(T0 + k * HOUR_MS, bar_values(k), confirm=True))
    events.clear()
    await stream.catch_up()
    assert [e.bar.start for e in events] == [T0 + 3 * HOUR_MS]  # caught up, nothing corrected
    assert stream.audit.counters["confirmed"] == 2


async def test_a_bogus_held_update_expires_although_closes_keep_coming(monkeypatch):
    real = {T0 + k * HOUR_MS: bar_values(k) for k in range(1, 40)}
    rest = FakeRest(T0 + 30 * HOUR_MS, real)
    stream, _ = make_stream(rest)
    clock = [100.0]
    monkeypatch.setattr("bot.venues.bybit.stream.time.monotonic", lambda: clock[0])
    await stream._handle(kline(T0 + 5000 * HOUR_MS, bar_values(9), confirm=True))  # held
    for k in range(1, 20):  # the symbol's real closes, 50 ms apart
        clock[0] += 0.05
        await stream._handle(kline(T0 + k * HOUR_MS, bar_values(k), confirm=True))
        await stream._backfill_expired_holds()
    assert stream.stats["future_updates"] == 1  # dropped, not re-held after every close
    assert stream.holds.holding == []


class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


async def test_a_book_is_resubscribed_once_while_its_snapshot_is_on_the_way(monkeypatch):
    stream, _ = make_stream(FakeRest(T0, {}), depth=50)
    clock = [100.0]
    monkeypatch.setattr("bot.venues.bybit.stream.time.monotonic", lambda: clock[0])
    ws = RecordingSocket()
    await stream._handle(book_frame("snapshot", 1))
    await stream._handle(book_frame(None, 2))  # malformed: reset, resubscribe
    await stream._resubscribe_books(ws)
    assert [m["op"] for m in ws.sent] == ["unsubscribe", "subscribe"]
    await stream._handle(book_frame("delta", 3))  # in flight before the snapshot
    await stream._resubscribe_books(ws)
    assert len(ws.sent) == 2  # not asked again
    await stream._handle(book_frame("snapshot", 1))  # the snapshot asked for
    await stream._handle(book_frame("delta", 9))  # a real gap afterwards
    await stream._resubscribe_books(ws)
    assert len(ws.sent) == 4
    clock[0] += 10  # a snapshot that never came is asked for again
    await stream._handle(book_frame("delta", 7))
    await stream._resubscribe_books(ws)
    assert len(ws.sent) == 6
