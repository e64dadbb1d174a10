"""Public websocket messages: parsing (real payloads, malformed input) and request limits."""

import json

import pytest

from bot.venues.bybit.ws_protocol import (
    Ack,
    MalformedMessageError,
    TopicMessage,
    connection_groups,
    encode,
    kline_topic,
    parse_message,
    subscribe_requests,
)
from tests.conftest import ROOT

MESSAGES = ROOT.parent / "shared" / "bybit-messages"


def documented(name: str) -> str:
    path = MESSAGES / name
    if not path.exists():
        pytest.skip(f"documented payload {path} not found")
    return path.read_text()


def test_documented_kline_message_parses_exactly():
    (update,) = parse_message(documented("ws_public_kline_1.jsonc"))
    assert (update.symbol, update.interval, update.start) == ("BTCUSDT", "5m", 1672324800000)
    assert (update.open, update.high, update.low, update.close) == (16649.5, 16677, 16608, 16677)
    assert update.volume == 2.081 and update.turnover == 34666.4005
    assert update.confirm is False and update.timestamp == 1672324988882


@pytest.mark.parametrize(
    "name", ["ws_connect_3.jsonc", "ws_connect_4.jsonc", "ws_connect_10.jsonc",
             "ws_connect_11.jsonc", "ws_connect_12.jsonc"],
)  # fmt: skip
def test_documented_acks_and_pongs(name):
    ack = parse_message(documented(name))
    assert isinstance(ack, Ack) and ack.success


def test_subscribe_failure_ack_from_the_live_api():
    body = json.loads(documented("live_error_bodies.json"))["ws_subscribe_unknown_topic"]["body"]
    ack = parse_message(json.dumps(body))
    assert ack == Ack("subscribe", False, "error:handler not found,topic:dcp.future", "dcp.future")


def test_orderbook_messages_pass_through_with_their_topic():
    message = parse_message(documented("ws_public_orderbook_2.jsonc"))
    assert isinstance(message, TopicMessage) and message.topic == "orderbook.50.BTCUSDT"


def kline(**changes):
    item = {"start": 1_700_002_800_000, "end": 1_700_006_399_999, "interval": "60",
            "open": "10", "high": "12", "low": "9", "close": "11", "volume": "5",
            "turnover": "50", "confirm": True, "timestamp": 1_700_006_400_001}  # fmt: skip
    item.update(changes)
    return json.dumps({"topic": "kline.60.BTCUSDT", "data": [item], "ts": 1, "type": "snapshot"})


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"topic": "kline.60.BTCUSDT", "data": [', "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"hello": 1}', "neither a topic nor an op"),
        (kline(open="ten"), "bad kline field"),
        (kline(end=1_700_006_400_000), "do not fit 1h"),
        (kline(high="10.5"), "inconsistent range"),
        (kline(low="0", open="0.5"), "price not positive"),
        (kline(open="-10"), "price not positive"),
        (kline(high="inf"), "non-finite price"),
        (kline(close="NaN"), "non-finite price"),
        (kline(high="1e300"), "implausible price"),
        (kline(volume="-1"), "bad volume"),
        (kline(volume="inf"), "bad volume"),
        (kline(turnover="-5"), "bad turnover"),
        (kline(start=1_700_002_800_001, end=1_700_006_400_000), "do not fit 1h"),
        (kline(confirm="true"), "confirm is not a boolean"),
        (json.dumps({"topic": "kline.61.BTCUSDT", "data": [{}]}), "bad kline topic"),
        (json.dumps({"topic": "kline.60.BTCUSDT", "data": []}), "non-empty array"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(raw, problem):
    with pytest.raises(MalformedMessageError, match=problem):
        parse_message(raw)


def test_subscribe_requests_respect_spot_and_size_limits():
    topics = [kline_topic("1m", f"SYM{i}USDT") for i in range(25)]
    spot = subscribe_requests(topics, "spot")
    assert [len(r["args"]) for r in spot] == [10, 10, 5]
    assert len({r["req_id"] for r in spot}) == 3
    linear = subscribe_requests(topics, "linear")
    assert len(linear) == 1 and linear[0]["args"] == topics
    many = [kline_topic("1m", f"S{i:05d}USDT") for i in range(2000)]
    groups = connection_groups(many)
    assert len(groups) == 3 and [t for g in groups for t in g] == many  # 2000 × 21 chars
    for group in groups:  # Bybit's budget is per connection
        assert len(encode(group)) < 21_000
