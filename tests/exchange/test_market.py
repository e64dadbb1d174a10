"""The market as a function of time: the push sequence, REST kline paging, gaps, funding."""

from __future__ import annotations

import itertools

import numpy as np

from bot.core.events import Panel
from bot.exchange.market import Market
from bot.exchange.tape import Tape
from bot.feeds.synthetic import synthetic_panel
from tests.exchange.harness import HOUR, SYNTH_FIRST, make_settings

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def market(k: int = 3, bars: int = 50, panel: Panel | None = None, funding=None) -> Market:
    panel = panel or synthetic_panel(SYMBOLS, "1h", bars, seed=5)
    settings = make_settings(SYMBOLS)
    return Market(Tape(panel, "1h", funding), settings.instruments, seed=7, bar_updates=k)


def gappy_panel() -> Panel:
    """ETH has no bars in slots 0-2 (not listed yet) and 6; no symbol has slot 8."""
    full = synthetic_panel(SYMBOLS, "1h", 12, seed=5)
    keep = np.array([i != 8 for i in range(12)])
    present = full.present.copy()
    present[[0, 1, 2, 6], 1] = False
    values = full.values.copy()
    values[~present] = np.nan
    return Panel(SYMBOLS, HOUR, full.starts[keep], values[keep], present[keep])


def test_each_candle_is_pushed_k_times_then_confirmed_at_its_end():
    m = market(k=4, bars=5)
    pushes = [msg for g in range(m.last_update + 1) for msg in m.kline_messages("BTCUSDT", g)]
    data = [p["data"][0] for p in pushes]
    assert len(data) == 5 * 5
    for n in range(5):
        start = SYNTH_FIRST + n * HOUR
        life = [d for d in data if d["start"] == start]
        assert [d["confirm"] for d in life] == [False] * 4 + [True]
        assert [d["timestamp"] for d in life] == [start + j * HOUR // 4 for j in range(5)]
        assert life[0]["open"] == life[0]["close"]
    # the confirmation of a bar comes right before the next bar's first push, at one time
    for a, b in itertools.pairwise(data):
        if a["confirm"]:
            assert b["start"] == a["start"] + HOUR and b["timestamp"] == a["timestamp"]


def test_update_grid_round_trips():
    m = market(k=7, bars=10)
    for g in range(m.last_update + 1):
        t = m.update_time(g)
        assert m.update_at(t) == g
        if g:
            assert m.update_at(t - 1) == g - 1
    assert m.update_at(SYNTH_FIRST - 1) == -1
    assert m.update_at(SYNTH_FIRST + 10**9) == m.last_update


def rows_at(m: Market, now: int, start=None, end=None, limit=200) -> list[list[str]]:
    return m.kline_rows("BTCUSDT", now, start, end, limit)


def test_rest_rows_are_newest_first_with_the_forming_candle_on_top():
    m = market(k=3, bars=50)
    now = SYNTH_FIRST + 20 * HOUR + HOUR // 2  # half way into bar 20
    rows = rows_at(m, now)
    assert [int(r[0]) for r in rows] == [SYNTH_FIRST + n * HOUR for n in range(20, -1, -1)]
    forming = m.candle("BTCUSDT", 20, 1)  # update 1 of 3 was at +20 min
    assert all(isinstance(x, str) for row in rows for x in row)
    assert [float(x) for x in rows[0][1:6]] == [
        forming.open,
        forming.high,
        forming.low,
        forming.close,
        forming.volume,
    ]
    bar = m.tape.bar(0, 19)
    assert [float(x) for x in rows[1][1:6]] == list(bar[:5])
    # exactly at a bar's end the bar is final and the next one has just opened
    rows = rows_at(m, SYNTH_FIRST + 21 * HOUR)
    assert int(rows[0][0]) == SYNTH_FIRST + 21 * HOUR and rows[0][1] == rows[0][4]
    assert [float(x) for x in rows[1][1:6]] == list(m.tape.bar(0, 20)[:5])


def test_rest_paging_by_hand_visits_every_bar_once():
    m = market(k=3, bars=50)
    now = SYNTH_FIRST + 45 * HOUR + 1
    seen, end = [], None
    while True:
        page = rows_at(m, now, end=end, limit=7)
        if not page:
            break
        assert len(page) <= 7
        seen += [int(r[0]) for r in page]
        end = int(page[-1][0]) - 1
    assert seen == [SYNTH_FIRST + n * HOUR for n in range(45, -1, -1)]


def test_rest_start_end_and_limit():
    m = market(k=3, bars=50)
    now = SYNTH_FIRST + 45 * HOUR
    t = lambda n: SYNTH_FIRST + n * HOUR  # noqa: E731
    got = [int(r[0]) for r in rows_at(m, now, start=t(10), end=t(13))]
    assert got == [t(13), t(12), t(11), t(10)]
    got = [int(r[0]) for r in rows_at(m, now, start=t(10) + 1, end=t(13) - 1)]
    assert got == [t(12), t(11)]
    assert [int(r[0]) for r in rows_at(m, now, start=t(10), limit=2)] == [t(45), t(44)]
    assert rows_at(m, now, start=t(46)) == []  # not started yet
    assert [int(r[0]) for r in rows_at(m, now, end=t(99), limit=1)] == [t(45)]


def test_rest_agrees_with_what_the_stream_pushed():
    m = market(k=5, bars=10)
    for g in range(m.last_update):
        now = m.update_time(g)
        pushed = [msg["data"][0] for msg in m.kline_messages("BTCUSDT", g)][-1]
        row = rows_at(m, now + 1, limit=1)[0]
        assert row == [str(pushed["start"])] + [
            pushed[f] for f in ("open", "high", "low", "close", "volume", "turnover")
        ]


def test_gaps_stream_nothing_and_serve_no_rows():
    m = market(k=2, panel=gappy_panel())
    updates = range(m.last_update + 1)
    eth = [msg["data"][0]["start"] for g in updates for msg in m.kline_messages("ETHUSDT", g)]
    slots = sorted({(s - SYNTH_FIRST) // HOUR for s in eth})
    assert slots == [3, 4, 5, 7, 9, 10, 11]
    rows = m.kline_rows("ETHUSDT", SYNTH_FIRST + 12 * HOUR, None, None, 200)
    assert [(int(r[0]) - SYNTH_FIRST) // HOUR for r in rows] == [11, 10, 9, 7, 5, 4, 3]
    # the book still has a price: before listing the first open, in a gap the last close
    assert m.price("ETHUSDT", 0) == m.tape.bar(1, 3).open
    assert m.price("ETHUSDT", 6 * 2 + 1) == m.tape.bar(1, 5).close
    assert m.price("BTCUSDT", 8 * 2) == m.tape.bar(0, 7).close


def test_funding_rows_are_settled_by_now_and_newest_first():
    times = SYNTH_FIRST + 8 * HOUR * np.arange(5, dtype=np.int64)
    rates = np.array([0.0001, -0.0002, 0.00005, 0.0003, 0.0001])
    m = market(bars=50, funding={"BTCUSDT": (times, rates)})
    rows = m.funding_rows("BTCUSDT", int(times[3]), None, None, 200)
    assert [int(r["fundingRateTimestamp"]) for r in rows] == times[3::-1].tolist()
    assert [float(r["fundingRate"]) for r in rows] == rates[3::-1].tolist()
    assert rows[0]["symbol"] == "BTCUSDT" and isinstance(rows[0]["fundingRate"], str)
    assert len(m.funding_rows("BTCUSDT", int(times[3]) - 1, None, None, 200)) == 3
    got = m.funding_rows("BTCUSDT", int(times[4]), int(times[1]), int(times[2]), 200)
    assert [int(r["fundingRateTimestamp"]) for r in got] == [times[2], times[1]]
    assert len(m.funding_rows("BTCUSDT", int(times[4]), None, None, 2)) == 2
    assert m.funding_rows("ETHUSDT", int(times[4]), None, None, 200) == []
    assert m.funding_interval_min("BTCUSDT") == 480


def test_ticks_are_configured_or_inferred_from_the_prices():
    m = market()
    assert m.ticks["BTCUSDT"].format(1) == "0.1"
    settings = make_settings(SYMBOLS)
    specs = dict(settings.instruments)
    specs["BTCUSDT"] = specs["BTCUSDT"].model_copy(update={"tick_size": 0.0})
    panel = synthetic_panel(SYMBOLS, "1h", 20, seed=5)
    values = panel.values.copy()
    values[:, 0, :4] = np.round(values[:, 0, :4], 3)
    panel = Panel(SYMBOLS, HOUR, panel.starts, values, panel.present)
    inferred = Market(Tape(panel, "1h"), specs, 7, 3)
    assert inferred.ticks["BTCUSDT"].format(1) == "0.001"
