"""Signatures are checked on the bytes received, against the wall clock, with Bybit's codes."""

from __future__ import annotations

import aiohttp

from bot.exchange import ExchangeServer
from bot.exchange.auth import AuthError, Signed, check_rest, check_ws, sign
from tests.exchange.harness import HOUR, SYNTH_FIRST, FakeWall, make_settings
from tests.exchange.signed import ACCOUNTS, KEY, SECRET, SignedClient, hmac_hex

SECRETS = {KEY: (SECRET, "main")}
WALL = 1_800_000_000_000


def headers(payload: str, ts: int = WALL, window: str = "5000", key: str = KEY) -> dict:
    return {
        "X-BAPI-API-KEY": key,
        "X-BAPI-TIMESTAMP": str(ts),
        "X-BAPI-RECV-WINDOW": window,
        "X-BAPI-SIGN": hmac_hex(SECRET, f"{ts}{key}{window}{payload}"),
    }


def test_a_good_signature_names_its_account():
    query = "category=linear&symbol=BTCUSDT"
    assert check_rest(headers(query), query.encode(), SECRETS, WALL) == Signed("main")
    body = '{"category": "linear", "qty": "0.01"}'
    assert check_rest(headers(body), body.encode(), SECRETS, WALL) == Signed("main")
    assert sign(SECRET, b"x") == hmac_hex(SECRET, "x")


def test_the_payload_must_be_the_exact_bytes_signed():
    signed = headers("category=linear&symbol=BTCUSDT")
    for received in ("symbol=BTCUSDT&category=linear", "category=linear&symbol=BTCUSDT&"):
        result = check_rest(signed, received.encode(), SECRETS, WALL)
        assert isinstance(result, AuthError) and result.code == 10004
    compact = '{"category":"linear"}'
    result = check_rest(headers('{"category": "linear"}'), compact.encode(), SECRETS, WALL)
    assert isinstance(result, AuthError) and result.code == 10004


def test_10004_echoes_the_origin_string_key_included_as_bybit_does():
    bad = {**headers("a=1"), "X-BAPI-SIGN": "0" * 64}
    result = check_rest(bad, b"a=1", SECRETS, WALL)
    assert isinstance(result, AuthError) and result.code == 10004
    assert result.message == f"error sign! origin_string[{WALL}{KEY}5000a=1]"
    assert SECRET not in result.message


def test_an_unknown_or_missing_key_is_10003():
    for h in (headers("", key="nobody"), {}):
        result = check_rest(h, b"", SECRETS, WALL)
        assert isinstance(result, AuthError) and result.code == 10003


def test_the_window_is_server_minus_recv_window_to_server_plus_one_second():
    def code(ts: int, window: str = "5000") -> int:
        result = check_rest(headers("", ts, window), b"", SECRETS, WALL)
        return 0 if isinstance(result, Signed) else result.code

    assert code(WALL - 5000) == 0 and code(WALL - 5001) == 10002
    assert code(WALL + 999) == 0 and code(WALL + 1000) == 10002
    assert code(WALL - 20_000, "30000") == 0
    result = check_rest(headers("", WALL - 6000), b"", SECRETS, WALL)
    assert isinstance(result, AuthError)
    assert f"req_timestamp[{WALL - 6000}],server_timestamp[{WALL}],recv_window[5000]" in (
        result.message
    )
    garbage = {**headers(""), "X-BAPI-TIMESTAMP": "soon"}
    assert check_rest(garbage, b"", SECRETS, WALL) == AuthError(
        10002, "invalid request, please check your timestamp and recv_window param"
    )


def test_a_missing_recv_window_means_5000_and_is_signed_as_empty():
    h = headers("", WALL - 4000, window="")
    del h["X-BAPI-RECV-WINDOW"]
    assert check_rest(h, b"", SECRETS, WALL) == Signed("main")
    h = headers("", WALL - 6000, window="")
    del h["X-BAPI-RECV-WINDOW"]
    assert check_rest(h, b"", SECRETS, WALL) == AuthError(
        10002,
        "invalid request, please check your server timestamp or recv_window param. "
        f"req_timestamp[{WALL - 6000}],server_timestamp[{WALL}],recv_window[5000]",
    )


def test_websocket_auth_needs_a_future_expiry_and_the_realtime_signature():
    def args(expires: int, secret: str = SECRET, key: str = KEY) -> list:
        return [key, expires, hmac_hex(secret, f"GET/realtime{expires}")]

    assert check_ws(args(WALL + 1), SECRETS, WALL) == Signed("main")
    assert check_ws([*args(WALL + 1000)[:2], args(WALL + 1000)[2].upper()], SECRETS, WALL) == (
        Signed("main")
    )
    expired = check_ws(args(WALL), SECRETS, WALL)
    assert isinstance(expired, AuthError) and expired.message == "Params Error"
    wrong = check_ws(args(WALL + 1000, secret="other"), SECRETS, WALL)
    assert isinstance(wrong, AuthError) and wrong.code == 10004
    unknown = check_ws(args(WALL + 1000, key="nobody"), SECRETS, WALL)
    assert isinstance(unknown, AuthError) and unknown.code == 10003
    for bad in (None, [], [KEY, "soon", "x"], [KEY, WALL + 1000]):
        result = check_ws(bad, SECRETS, WALL)
        assert isinstance(result, AuthError) and result.code == 10001


async def test_requests_are_timed_by_the_wall_clock_not_the_accelerated_market():
    wall = FakeWall()
    start = SYNTH_FIRST + 100 * HOUR
    settings = make_settings(speed=3600.0, start=str(start), start_on="serve", accounts=ACCOUNTS)
    async with ExchangeServer(settings, wall) as server, aiohttp.ClientSession() as http:
        client = SignedClient(http, server.rest_url, wall)
        wall.t += 10.0  # ten market hours pass in ten wall seconds
        assert server.state.clock.now() == start + 10 * HOUR
        reply = await client.get("/v5/account/wallet-balance", "accountType=UNIFIED")
        assert reply.code == 0, reply.body
        assert reply.body["time"] == start + 10 * HOUR  # responses speak market time
        market_stamp = str(server.state.clock.now())
        reply = await client.get(
            "/v5/account/wallet-balance",
            "accountType=UNIFIED",
            **{
                "X-BAPI-TIMESTAMP": market_stamp,
                "X-BAPI-SIGN": hmac_hex(SECRET, market_stamp + KEY + "5000accountType=UNIFIED"),
            },
        )
        assert reply.code == 10002  # a client on market time is refused
        reply = await client.get(
            "/v5/account/wallet-balance", "accountType=UNIFIED", **{"X-BAPI-SIGN": "f" * 64}
        )
        assert reply.code == 10004 and KEY in reply.body["retMsg"]
        assert reply.status == 200
        stats = server.state.private.status()
        assert stats["requests"] == 3 and stats["accounts"]["main"]["requests"] == 3
