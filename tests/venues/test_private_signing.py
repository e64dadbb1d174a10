"""Signing of private requests, checked against pybit's own helpers (an independent reference),
and the credentials type that never shows its secret."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
from pybit import _helpers as pybit_helpers
from pybit._http_manager import generate_signature
from pybit._websocket_stream import _WebSocketManager
from pybit.unified_trading import HTTP

from bot.redact import SECRETS
from bot.venues.bybit.credentials import Credentials, MissingCredentialsError, endpoints
from bot.venues.bybit.signing import (
    json_body,
    query_string,
    rest_signature,
    signed_headers,
    ws_auth_request,
    ws_signature,
)

KEY = "XkEy0123456789abcdef"
SECRET = "sEcReT9876543210ZYXWVUTSRQPONMLK"
STAMP = 1_700_000_000_123


@pytest.fixture
def pybit_http(monkeypatch) -> HTTP:
    """pybit's HTTP client with our key, its clock frozen at STAMP (no request is made)."""
    monkeypatch.setattr(pybit_helpers, "generate_timestamp", lambda: STAMP)
    return HTTP(testnet=True, api_key=KEY, api_secret=SECRET)


def test_get_headers_equal_pybits(pybit_http: HTTP):
    # pybit sorts keys and joins them unencoded: with keys given in that order, the payloads
    # are the same text, so the signatures must be the same
    params = {"category": "linear", "limit": 50, "orderLinkId": "run1-17000-BTC-0-0",
              "symbol": "BTCUSDT"}  # fmt: skip
    ours = query_string(params)
    assert ours == pybit_http.prepare_payload("GET", dict(params))
    theirs = pybit_http._prepare_headers(ours, 5000)
    mine = signed_headers(Credentials(KEY, SECRET), STAMP, ours, 5000)
    for name in ("X-BAPI-API-KEY", "X-BAPI-TIMESTAMP", "X-BAPI-RECV-WINDOW", "X-BAPI-SIGN",
                 "X-BAPI-SIGN-TYPE"):  # fmt: skip
        assert mine[name] == theirs[name], name


def test_post_signature_equals_pybits_over_the_same_bytes(pybit_http: HTTP):
    body = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
            "qty": "0.010", "price": "43000.5", "timeInForce": "IOC",
            "orderLinkId": "r-1-BTC-0-0", "reduceOnly": False, "positionIdx": 0}  # fmt: skip
    # pybit signs json.dumps' text; we sign compact bytes. Each must equal its own bytes.
    theirs = pybit_http.prepare_payload("POST", dict(body))
    assert pybit_http._prepare_headers(theirs, 5000)["X-BAPI-SIGN"] == rest_signature(
        SECRET, STAMP, KEY, 5000, theirs.encode()
    )
    ours = json_body(body)
    assert json.loads(ours) == body and b" " not in ours
    expected = pybit_http._prepare_headers(ours, 5000)  # pybit's signing of raw body bytes
    mine = signed_headers(Credentials(KEY, SECRET), STAMP, ours)
    assert mine["X-BAPI-SIGN"] == expected["X-BAPI-SIGN"]
    assert mine["X-BAPI-SIGN"] == generate_signature(
        False, SECRET, f"{STAMP}{KEY}5000" + ours.decode()
    )


def test_websocket_auth_equals_pybits(monkeypatch):
    expires = STAMP + 5000
    sent: list[str] = []
    manager = _WebSocketManager.__new__(_WebSocketManager)
    manager.api_key, manager.api_secret = KEY, SECRET
    manager.rsa_authentication, manager.private_auth_expire = False, 5
    manager.ws = type("FakeSocket", (), {"send": lambda self, text: sent.append(text)})()
    monkeypatch.setattr(pybit_helpers, "generate_timestamp", lambda: STAMP)
    manager._auth()
    theirs = json.loads(sent[0])
    ours = ws_auth_request(Credentials(KEY, SECRET), expires, "auth-1")
    assert ours["args"] == theirs["args"] == [KEY, expires, ws_signature(SECRET, expires)]
    assert ours["op"] == "auth"


def test_query_strings_keep_bybits_cursor_and_leave_out_nothing_else():
    cursor = "page_args%3Dfd4300ae-7847%26symbol%3D6%26"  # as Bybit sends it: encoded
    assert query_string({"category": "linear", "cursor": cursor, "symbol": None}) == (
        f"category=linear&cursor={cursor}"
    )
    assert query_string({"a": "x y&z=1", "b": True}) == "a=x%20y%26z%3D1&b=true"
    assert query_string({}) == ""


def test_credentials_never_show_the_secret_and_mask_the_key():
    credentials = Credentials(KEY, SECRET)
    for shown in (repr(credentials), str(credentials), f"{credentials!r}", f"{[credentials]}"):
        assert SECRET not in shown and KEY not in shown and KEY[:6] not in shown
        assert "***cdef" in shown
    assert Credentials("shortkey", SECRET).masked_key == "***"
    for leak in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            leak(credentials)
    assert not hasattr(credentials, "__dict__")


def test_credentials_come_from_the_environment_and_are_registered_for_scrubbing():
    key, secret = "EnvKeyMarker-0001", "EnvSecretMarker-0002"
    env = {"MY_KEY": key, "MY_SECRET": secret}
    credentials = Credentials.from_env("MY_KEY", "MY_SECRET", environ=env)
    assert (credentials.api_key, credentials.secret) == (key, secret)
    assert SECRETS.scrub(f"k={key} s={secret}") == "k=*** s=***"
    with pytest.raises(MissingCredentialsError, match="MY_SECRET") as caught:
        Credentials.from_env("MY_KEY", "MY_SECRET", environ={"MY_KEY": key})
    assert key not in str(caught.value)
    with pytest.raises(MissingCredentialsError, match="BYBIT_API_KEY"):
        Credentials.from_env(environ={"BYBIT_API_KEY": "  "})


def test_hosts_of_each_target():
    assert endpoints("mainnet").rest_url == "https://api.bybit.com"
    assert endpoints("mainnet").private_ws_url == "wss://stream.bybit.com/v5/private"
    assert endpoints("testnet").rest_url == "https://api-testnet.bybit.com"
    assert endpoints("testnet").private_ws_url == "wss://stream-testnet.bybit.com/v5/private"
    demo = endpoints("demo")
    assert demo.rest_url == "https://api-demo.bybit.com"
    assert demo.private_ws_url == "wss://stream-demo.bybit.com/v5/private"
    assert demo.public_ws_url == "wss://stream.bybit.com/v5/public/linear"  # none of its own
    local = endpoints("local", "http://127.0.0.1:8765/")
    assert (local.rest_url, local.private_ws_url) == (
        "http://127.0.0.1:8765", "ws://127.0.0.1:8765/v5/private"
    )  # fmt: skip
    with pytest.raises(ValueError, match="base URL"):
        endpoints("local")
    with pytest.raises(ValueError, match="unknown target"):
        endpoints("moon")
