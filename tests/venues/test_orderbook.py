"""The Bybit order book: protocol rules on hand-made messages, then a real recording replayed
level for level against a deliberately naive reconstruction."""

from __future__ import annotations

import json
import math
import random
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from bot.venues.bybit.orderbook import BookFeatures, BookMessageError, OrderBook
from tests.conftest import real_data_dir

RECORDING = "bybit-xrpusdt-2024-12-01-orderbook500.zip"
SYMBOL = "TESTUSDT"

Levels = Sequence[tuple[str, str]]


def message(kind: str, u: int, bids: Levels = (), asks: Levels = ()) -> dict[str, Any]:
    """A message shaped like Bybit's, with ``ts``/``seq`` derived from ``u`` so they can be
    checked."""
    return {
        "topic": f"orderbook.50.{SYMBOL}",
        "type": kind,
        "ts": 1_700_000_000_000 + u,
        "cts": 1_699_999_999_990 + u,
        "data": {"s": SYMBOL, "b": [list(x) for x in bids], "a": [list(x) for x in asks],
                 "u": u, "seq": 5_000 + u},
    }  # fmt: skip


def snapshot() -> dict[str, Any]:
    # Levels deliberately not in book order: the book must sort them itself.
    return message(
        "snapshot",
        10,
        bids=[("99.5", "2"), ("100.0", "1"), ("99.0", "3")],
        asks=[("101.0", "5"), ("100.5", "4")],
    )


def fresh_book() -> OrderBook:
    book = OrderBook(SYMBOL, 50)
    assert book.apply(snapshot())
    return book


def state(book: OrderBook) -> tuple[Any, ...]:
    return (book.bids(), book.asks(), book.update_id, book.seq, book.ts, book.needs_snapshot,
            dict(book.counters))  # fmt: skip


def test_snapshot_is_read_best_first_with_its_ids():
    book = fresh_book()
    assert book.bids() == [(100.0, 1.0), (99.5, 2.0), (99.0, 3.0)]
    assert book.asks() == [(100.5, 4.0), (101.0, 5.0)]
    assert book.bids(2) == [(100.0, 1.0), (99.5, 2.0)]
    assert book.best_bid() == (100.0, 1.0)
    assert book.best_ask() == (100.5, 4.0)
    assert (book.update_id, book.seq, book.ts) == (10, 5_010, 1_700_000_000_010)
    assert book.counters["snapshots"] == 1
    assert not book.needs_snapshot


def test_delta_deletes_inserts_and_replaces():
    book = fresh_book()
    delta = message(
        "delta",
        11,
        bids=[("99.5", "0"), ("99.7", "6"), ("100.0", "1.25")],
        asks=[("100.5", "0.000"), ("100.2", "7")],  # any spelling of zero deletes
    )
    assert book.apply(delta)
    assert book.bids() == [(100.0, 1.25), (99.7, 6.0), (99.0, 3.0)]
    assert book.asks() == [(100.2, 7.0), (101.0, 5.0)]
    assert (book.update_id, book.seq, book.ts) == (11, 5_011, 1_700_000_000_011)
    assert book.counters["deltas"] == 1
    assert not book.needs_snapshot


def test_a_new_snapshot_replaces_the_whole_book_and_a_restart_is_counted():
    book = fresh_book()
    book.apply(message("delta", 12, bids=[("1.0", "1")]))  # a gap: flags a resubscribe
    assert book.needs_snapshot
    # After a service restart Bybit sends a snapshot with u == 1, below the book's u.
    assert book.apply(message("snapshot", 1, bids=[("50.0", "1")], asks=[("51.0", "2")]))
    assert book.bids() == [(50.0, 1.0)]
    assert book.asks() == [(51.0, 2.0)]
    assert book.update_id == 1
    assert not book.needs_snapshot
    assert (book.counters["snapshots"], book.counters["restarts"]) == (2, 1)
    # And deltas continue from the new u.
    assert book.apply(message("delta", 2, bids=[("49.0", "3")]))
    assert book.bids() == [(50.0, 1.0), (49.0, 3.0)]


def test_a_delta_before_any_snapshot_is_ignored_and_counted():
    book = OrderBook(SYMBOL, 50)
    assert not book.apply(message("delta", 11, bids=[("100.0", "1")]))
    assert book.bids() == []
    assert book.update_id is None
    assert book.counters["before_snapshot"] == 1
    assert book.counters["deltas"] == 0
    assert book.needs_snapshot
    assert book.apply(snapshot())
    assert not book.needs_snapshot


@pytest.mark.parametrize("u", [10, 9])
def test_a_stale_or_repeated_delta_is_ignored_and_counted(u: int):
    book = fresh_book()
    before = (book.bids(), book.asks(), book.update_id, book.seq, book.ts)
    assert not book.apply(message("delta", u, bids=[("100.0", "0"), ("98.0", "1")]))
    assert (book.bids(), book.asks(), book.update_id, book.seq, book.ts) == before
    assert book.counters["stale"] == 1
    assert book.counters["deltas"] == 0
    assert book.needs_snapshot


def test_a_gap_is_applied_counted_once_and_flags_a_resubscribe():
    book = fresh_book()
    assert book.apply(message("delta", 13, bids=[("100.0", "9")]))  # 11 and 12 were missed
    assert book.best_bid() == (100.0, 9.0)
    assert book.update_id == 13
    assert book.needs_snapshot
    assert book.apply(message("delta", 14, asks=[("100.5", "8")]))
    assert book.counters["gaps"] == 1
    assert book.counters["deltas"] == 2
    assert book.needs_snapshot  # still: only a snapshot repairs the book


def test_deleting_a_price_not_in_the_book_is_counted_and_the_rest_applied():
    book = fresh_book()
    assert book.apply(
        message("delta", 11, bids=[("98.0", "0"), ("99.0", "4")], asks=[("1.0", "0")])
    )
    assert book.counters["missing_deletes"] == 2
    assert book.bids() == [(100.0, 1.0), (99.5, 2.0), (99.0, 4.0)]
    assert len(book.asks()) == 2


def test_a_level_is_identified_by_its_exact_price_string():
    # Two spellings of one value are two levels: neither hides nor deletes the other.
    book = OrderBook(SYMBOL, 50)
    book.apply(message("snapshot", 1, bids=[("1.5", "1"), ("1.50", "2"), ("1.4", "3")]))
    assert book.bids() == [(1.5, 1.0), (1.5, 2.0), (1.4, 3.0)]
    book.apply(message("delta", 2, bids=[("1.50", "0")]))
    assert book.bids() == [(1.5, 1.0), (1.4, 3.0)]
    assert book.counters["missing_deletes"] == 0


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with the keys of every object in a random order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


def test_key_order_in_messages_does_not_matter():
    stream = [
        snapshot(),
        message("delta", 11, bids=[("99.5", "0"), ("99.7", "6")], asks=[("100.2", "7")]),
        message("delta", 11, bids=[("99.7", "1")]),  # stale
        message("delta", 13, asks=[("100.2", "0"), ("102.0", "1")]),  # gap
        message("delta", 14, bids=[("42.0", "0")]),  # missing delete
    ]
    reference = OrderBook(SYMBOL, 50)
    for item in stream:
        reference.apply(item)
    rng = random.Random(7)
    for _ in range(5):
        texts = [json.dumps(shuffled(item, rng)) for item in stream]
        assert texts != [json.dumps(item) for item in stream]  # the shuffle did reorder keys
        book = OrderBook(SYMBOL, 50)
        for text in texts:
            book.apply(json.loads(text))
        assert state(book) == state(reference)
        assert book.features(3).as_array().tobytes() == reference.features(3).as_array().tobytes()


def test_features_on_a_tiny_book():
    book = OrderBook(SYMBOL, 50)
    book.apply(message("snapshot", 1, bids=[("99", "3"), ("100", "1")], asks=[("101", "2")]))
    f = book.features(levels=3)
    assert f.ts == 1_700_000_000_001
    assert f.mid == 100.5
    assert f.spread == 1.0
    assert f.spread_bp == pytest.approx(1e4 / 100.5, rel=1e-12)
    assert f.imbalance == pytest.approx((4 - 2) / (4 + 2), rel=1e-12)
    assert f.bid_prices[:2] == (100.0, 99.0)
    assert f.bid_sizes[:2] == (1.0, 3.0)
    assert f.ask_prices[0] == 101.0
    assert f.ask_sizes[0] == 2.0
    assert math.isnan(f.bid_prices[2]) and math.isnan(f.bid_sizes[2])
    assert all(math.isnan(x) for x in (*f.ask_prices[1:], *f.ask_sizes[1:]))
    nan = math.nan
    np.testing.assert_array_equal(
        f.as_array(),
        [101, 2, 100, 1,  nan, nan, 99, 3,  nan, nan, nan, nan,  100.5, 1.0, f.imbalance],
    )  # fmt: skip
    assert BookFeatures.array_names(3)[:8] == (
        "ask_price_1", "ask_size_1", "bid_price_1", "bid_size_1",
        "ask_price_2", "ask_size_2", "bid_price_2", "bid_size_2",
    )  # fmt: skip
    assert BookFeatures.array_names(3)[-3:] == ("mid", "spread", "imbalance")
    assert len(BookFeatures.array_names(3)) == f.as_array().size == 15
    # Fewer levels than the book holds: only the best ones count towards the imbalance.
    assert book.features(levels=1).imbalance == pytest.approx((1 - 2) / (1 + 2), rel=1e-12)


def test_features_are_nan_when_a_side_is_empty():
    book = OrderBook(SYMBOL, 50)
    book.apply(message("snapshot", 1, bids=[("100", "1")]))
    f = book.features(levels=2)
    assert all(math.isnan(x) for x in (f.mid, f.spread, f.spread_bp, f.imbalance))
    assert f.bid_prices[0] == 100.0
    assert book.best_ask() is None


def test_features_need_a_snapshot_and_messages_must_be_this_books():
    book = OrderBook(SYMBOL, 50)
    with pytest.raises(RuntimeError, match="no snapshot"):
        book.features()
    other = snapshot()
    other["topic"] = f"orderbook.200.{SYMBOL}"
    with pytest.raises(ValueError, match=r"orderbook\.200"):
        book.apply(other)
    with pytest.raises(ValueError, match="unknown orderbook message type"):
        book.apply(message("partial", 1))


def without(key: str, into: str | None = None, **changes: Any) -> dict[str, Any]:
    """A delta after the test snapshot, with ``key`` removed (from ``data`` if ``into``)."""
    msg = message("delta", 11, bids=[("99.5", "0")], asks=[("100.5", "7")])
    if changes:
        msg["data"].update(changes)
    target = msg["data"] if into == "data" else msg
    target.pop(key, None)
    return msg


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (without("type"), "unknown orderbook message type None"),
        (without("u", "data"), "u None is not an integer"),
        (without("x", "data", u="zz"), "u 'zz' is not an integer"),
        (without("x", "data", u=11.5), "u 11.5 is not an integer"),
        (without("x", "data", b="oops"), "bid levels are a str"),
        (without("x", "data", a=[["100.5"]]), "not a \\[price, size\\] pair"),
        (without("x", "data", a=[["100.5", "lots"]]), "not numeric"),
        (without("x", "data", a=[["-1", "3"]]), "not a positive number"),
        (without("x", "data", b=[["99.5", "1"], ["99", "inf"]]), "is not a size"),
        (without("data"), "data is not an object"),
        (without("ts"), "ts None is not an integer"),
    ],
)  # fmt: skip
def test_a_malformed_message_is_refused_and_leaves_the_book_untouched(bad, reason):
    book = fresh_book()
    before = state(book)
    with pytest.raises(BookMessageError, match=reason):
        book.apply(bad)
    assert state(book) == before  # nothing half-applied


def test_reset_empties_the_book_until_the_next_snapshot():
    book = fresh_book()
    book.reset()
    assert book.bids() == [] and book.asks() == [] and book.needs_snapshot
    assert book.update_id is None and book.counters["resets"] == 1
    assert not book.apply(message("delta", 11, bids=[("99.5", "0")]))  # needs a snapshot
    assert book.apply(snapshot()) and not book.needs_snapshot and len(book.bids()) == 3


def load_recording() -> list[dict[str, Any]]:
    path = real_data_dir() / "lob" / RECORDING
    if not path.is_file():
        pytest.skip(f"real order book recording not found at {path} (set BOT_DATA_DIR)")
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        lines = archive.read(name).decode().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_real_recording_matches_a_naive_reconstruction_level_for_level():
    messages = load_recording()
    assert [m["type"] for m in messages] == ["snapshot"] + ["delta"] * 49
    first_u = messages[0]["data"]["u"]
    book = OrderBook("XRPUSDT", 500)
    naive: dict[str, dict[str, str]] = {}
    for i, item in enumerate(messages):
        data = item["data"]
        assert data["u"] == first_u + i  # the recording itself: u rises by exactly 1
        assert book.apply(item)
        assert (book.update_id, book.seq, book.ts) == (data["u"], data["seq"], item["ts"])
        # The naive book: a plain dict per side, sorted only when compared.
        if item["type"] == "snapshot":
            naive = {"b": dict(data["b"]), "a": dict(data["a"])}
        else:
            for side in ("b", "a"):
                for price, size in data[side]:
                    if Decimal(size) == 0:
                        del naive[side][price]
                    else:
                        naive[side][price] = size
        bids, asks = book.bids(), book.asks()
        assert len(bids) == len(asks) == 500
        assert book.best_bid()[0] < book.best_ask()[0]
        for levels, side, descending in ((bids, "b", True), (asks, "a", False)):
            expected = sorted(naive[side].items(), key=lambda x: Decimal(x[0]), reverse=descending)
            assert levels == [(float(p), float(s)) for p, s in expected], (i, side)
    assert not book.needs_snapshot
    assert book.counters == {"snapshots": 1, "restarts": 0, "deltas": 49, "before_snapshot": 0,
                             "stale": 0, "gaps": 0, "missing_deletes": 0, "resets": 0}  # fmt: skip
    f = book.features(levels=5)
    assert (f.bid_prices[0], f.ask_prices[0]) == (1.9537, 1.9538)
    assert f.spread == pytest.approx(0.0001)
