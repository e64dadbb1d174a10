"""Conformance: Bybit's official client, pybit 5.17, against the local exchange.

pybit is strict where it matters (an orderbook delta deleting an unknown price, a subscribe
ack it cannot match or a negative rate-limit sleep kill it for good), so a pybit session that
survives a long stream, faults included, is strong evidence the messages are right. Real bars
are used when ``../shared/data`` is there (``BOT_DATA_DIR``), synthetic ones otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pybit.unified_trading as unified
import pytest
from pybit.exceptions import FailedRequestError
from pybit.unified_trading import HTTP, WebSocket

from bot.config import Settings
from bot.exchange import ExchangeServer
from bot.exchange.session import Session
from tests.exchange.harness import HOUR, SYNTH_FIRST, make_settings, real_linear_dir, server_thread

SOURCES = ["synthetic", "csv"]


def settings_for(source: str, stream: bool, **exchange: Any) -> Settings:
    """Real or synthetic bars. ``stream``: a 24-bar window replayed in ~2.4 s (the market
    otherwise stands almost still, half way into a bar, with a long history behind it)."""
    if source == "csv" and not (real_linear_dir() / "1h").is_dir():
        pytest.skip(f"real Bybit data not found at {real_linear_dir()} (set BOT_DATA_DIR)")
    real = source == "csv"
    if stream:
        first = "2025-06-29T00:00" if real else str(SYNTH_FIRST + 500 * HOUR)
        end = "2025-06-30T00:00" if real else str(SYNTH_FIRST + 524 * HOUR)
        timing = {"speed": 36_000.0, "bar_updates": 10, "start": first, "end": end}
    else:
        mid_bar = "2025-06-29T12:30" if real else str(SYNTH_FIRST + 2500 * HOUR + HOUR // 2)
        timing = {"speed": 1.0, "start": mid_bar}
    return make_settings(source=source, bars=3000, **timing, **exchange)


def stream_source() -> str:
    return "csv" if (real_linear_dir() / "1h").is_dir() else "synthetic"


def page_backwards(session: HTTP, symbol: str, first: int) -> list[list[str]]:
    rows: list[list[str]] = []
    end = None
    while True:
        query = {"category": "linear", "symbol": symbol, "interval": "60", "limit": 1000}
        query.update({"start": first} if end is None else {"start": first, "end": end})
        page = session.get_kline(**query)["result"]["list"]
        if not page:
            return rows
        assert len(page) <= 1000
        rows += page
        end = int(page[-1][0]) - 1


def http_session(server: ExchangeServer) -> HTTP:
    session = HTTP(testnet=False)
    session.endpoint = server.rest_url
    return session


def check_against_tape(server: ExchangeServer, symbol: str, rows: list[list[str]]) -> None:
    """Every bar started by now, newest first; closed ones exact, the forming one first."""
    market = server.state.market
    s = market.tape.index(symbol)
    now = server.state.clock.now()
    slots = [n for n in market.tape.bar_slots(s).tolist() if market.tape.slot_start(n) <= now]
    assert [int(r[0]) for r in rows] == [market.tape.slot_start(n) for n in reversed(slots)]
    forming, *closed = rows
    for row in closed:
        bar = market.tape.bar(s, (int(row[0]) - market.tape.first) // market.interval_ms)
        assert [float(x) for x in row[1:6]] == list(bar[:5])
    bar = market.tape.bar(s, slots[-1])
    assert float(forming[1]) == bar.open and bar.low <= float(forming[3]) <= bar.high


@pytest.mark.parametrize("source", SOURCES)
def test_pybit_pages_klines_backwards_and_gets_the_tape(source: str):
    with server_thread(settings_for(source, stream=False)) as server:
        session = http_session(server)
        assert int(session.get_server_time()["result"]["timeSecond"]) * 1000 <= (
            server.state.clock.now()
        )
        for symbol in ("BTCUSDT", "ETHUSDT"):
            first = server.state.market.tape.first
            check_against_tape(server, symbol, page_backwards(session, symbol, first))
        info = session.get_instruments_info(category="linear", symbol="ETHUSDT")["result"]
        assert info["list"][0]["lotSizeFilter"]["qtyStep"] == "0.01"
        funding = session.get_funding_rate_history(category="linear", symbol="BTCUSDT")
        assert funding["retCode"] == 0
        if source == "csv":
            rates = funding["result"]["list"]
            assert len(rates) == 200 and int(rates[0]["fundingRateTimestamp"]) <= (
                server.state.clock.now()
            )


def test_pybit_sleeps_through_rate_limits_until_the_reset():
    settings = settings_for(
        "synthetic", stream=False, faults={"rate_limit_every": 2, "rate_limit_reset_ms": 150}
    )
    with server_thread(settings) as server:
        session = http_session(server)
        began = time.monotonic()
        rows = page_backwards(session, "BTCUSDT", server.state.market.tape.first)
        elapsed = time.monotonic() - began
        check_against_tape(server, "BTCUSDT", rows)
        limited = server.state.counters.rate_limited
        assert limited >= 3
        assert elapsed >= 0.9 * limited * 0.150  # pybit slept until each reset


def test_pybit_gives_up_on_http_403():
    settings = settings_for("synthetic", stream=False, faults={"http_error_every": 1})
    with server_thread(settings) as server:
        with pytest.raises(FailedRequestError) as failed:
            http_session(server).get_server_time()
        assert failed.value.status_code == 403


class PybitRun:
    """pybit's websocket on kline + orderbook streams until the tape is over."""

    def __init__(
        self, server: ExchangeServer, monkeypatch: pytest.MonkeyPatch, klines: bool = True
    ) -> None:
        url = server.ws_url.replace("/linear", "/{CHANNEL_TYPE}")  # pybit fills in the channel
        monkeypatch.setattr(unified, "PUBLIC_WSS", url)
        self.server = server
        self.klines: list[dict] = []
        self.books: list[dict] = []
        self.ws = WebSocket(testnet=False, channel_type="linear")
        if klines:
            self.ws.kline_stream(interval=60, symbol="BTCUSDT", callback=self.klines.append)
        self.ws.orderbook_stream(depth=50, symbol="ETHUSDT", callback=self.books.append)

    def until_the_end(self, timeout: float = 120.0) -> None:
        """Until the tape is over and pybit has taken in its last order-book update (after a
        last reconnection, if a fault cut the connection at the end). Generous: on a busy
        machine pybit's thread may trail the server by seconds."""
        market, clock = self.server.state.market, self.server.state.clock
        deadline = time.monotonic() + timeout
        while market.update_at(clock.now()) < market.last_update:
            assert time.monotonic() < deadline, "the tape did not finish in time"
            time.sleep(0.05)
        final = market.last_update + 1
        while self.ws.data.get("orderbook.50.ETHUSDT", {}).get("u") != final:
            assert time.monotonic() < deadline, "pybit did not receive the last update in time"
            time.sleep(0.05)

    def check_book(self) -> None:
        """pybit's book (built from snapshot + deltas) is the server's final book."""
        market = self.server.state.market
        final = market.book("ETHUSDT", 50, market.last_update)
        book = self.ws.data["orderbook.50.ETHUSDT"]
        assert dict(map(tuple, book["b"])) == final.bids
        assert dict(map(tuple, book["a"])) == final.asks
        assert book["u"] == market.last_update + 1

    def confirmed(self) -> dict[int, dict]:
        return {d["start"]: d for m in self.klines for d in m["data"] if d["confirm"]}


@pytest.fixture
def pybit_server() -> Iterator[Any]:
    def start(**exchange: Any):
        return server_thread(settings_for(stream_source(), stream=True, **exchange))

    return start


@pytest.mark.slow
def test_pybit_streams_klines_and_keeps_the_order_book(pybit_server, monkeypatch):
    with pybit_server() as server:
        run = PybitRun(server, monkeypatch)
        try:
            run.until_the_end()
            assert run.ws.is_connected() and not run.ws.exited  # pybit never hit an error
            run.check_book()
        finally:
            run.ws.exit()
    market = server.state.market
    assert len(run.books) >= 100  # pybit relabels each update "snapshot": it hands out its book
    confirmed = run.confirmed()
    assert len(confirmed) >= 22
    for start, d in confirmed.items():
        bar = market.tape.bar(0, (start - market.tape.first) // market.interval_ms)
        assert [float(d[f]) for f in ("open", "high", "low", "close", "volume")] == list(bar[:5])
    for m in run.klines:
        d = m["data"][0]
        if not d["confirm"] and d["start"] in confirmed:
            final = confirmed[d["start"]]
            assert d["open"] == final["open"] and d["timestamp"] < final["timestamp"]
            low, high = float(d["low"]), float(d["high"])
            assert float(final["low"]) <= low <= high <= float(final["high"])


@pytest.mark.slow
def test_pybit_reconnects_and_resubscribes_after_drops(pybit_server, monkeypatch):
    requests: list[tuple[int, str]] = []
    handle = Session.handle

    def recording(self: Session, text: str) -> None:
        requests.append((self.number, text))
        handle(self, text)

    monkeypatch.setattr(Session, "handle", recording)
    with pybit_server(faults={"drop_every": 60}) as server:
        run = PybitRun(server, monkeypatch)
        try:
            run.until_the_end()
            assert run.ws.is_connected()
            run.check_book()
        finally:
            run.ws.exit()
    assert server.state.counters.drops >= 3
    subscriptions: dict[int, set[str]] = {}
    for number, text in requests:
        if '"subscribe"' in text:
            subscriptions.setdefault(number, set()).add(text)
    first, *later = sorted(subscriptions)
    assert len(later) >= 3
    for number in later:  # the same requests, same req_id, on every new connection
        assert subscriptions[number] == subscriptions[first]
    tail = [m["data"][0]["timestamp"] for m in run.klines[-3:]]
    assert max(tail) >= server.state.market.update_time(server.state.market.last_update - 10)


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_pybit_gives_up_when_an_outage_refuses_its_reconnections(monkeypatch):
    """Documents pybit, not the server: it retries a refused upgrade 10 times back to back,
    then stops for good — an outage longer than a few milliseconds ends a pybit session."""
    start = SYNTH_FIRST + 10 * HOUR
    faults = {"outage_at": str(start + 5 * HOUR), "outage_bars": 50}
    settings = make_settings(speed=36_000.0, start=str(start), bar_updates=5, faults=faults)
    with server_thread(settings) as server:
        run = PybitRun(server, monkeypatch)
        try:
            wait_for(lambda: server.state.counters.outage_refusals >= 10)
            wait_for(lambda: run.ws.exited and not run.ws.is_connected())
        finally:
            run.ws.exit()
        assert server.state.counters.outage_closes == 1
        assert server.state.counters.outage_refusals == 10


def test_pybit_dies_on_broken_json(monkeypatch):
    """Documents pybit: a frame that is not JSON ends the session without reconnecting."""
    settings = make_settings(
        speed=36_000.0, start=str(SYNTH_FIRST + 10 * HOUR), faults={"malformed_probability": 1.0}
    )
    with server_thread(settings) as server:
        run = PybitRun(server, monkeypatch, klines=False)  # one request: pybit cannot hang
        try:
            wait_for(lambda: run.ws.exited)
            time.sleep(0.3)
            assert not run.ws.is_connected() and server.state.stats.connections_total == 1
        finally:
            run.ws.exit()
    assert run.books == [] and server.state.counters.malformed >= 1
