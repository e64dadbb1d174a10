"""Signing Bybit v5 private requests, as pure functions over the exact bytes sent.

Bybit checks ``X-BAPI-SIGN`` = lower-hex HMAC-SHA256(secret, timestamp + key + recvWindow +
payload), where the payload is the query string (GET) or the JSON body (POST) *as received*.
Any difference between what is signed and what goes on the wire (a re-encoded query, a body
serialised twice with other separators) is a 10004. So the client builds the payload once
(:func:`query_string`, :func:`json_body`), signs those bytes and sends those same bytes.

The private websocket authenticates with HMAC-SHA256(secret, ``"GET/realtime" + expires``).

Nothing here logs, and nothing returned but the headers and the auth request contains the key;
the origin string (which holds the key) never leaves :func:`rest_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from bot.venues.bybit.credentials import Credentials

#: How long after its timestamp Bybit accepts a request (Bybit's default, ms).
RECV_WINDOW_MS = 5000
WS_AUTH_PATH = "GET/realtime"
#: Characters sent as they are in a query value. ``%`` stays: Bybit's cursors come already
#: percent-encoded and must go back exactly as they came.
_QUERY_SAFE = "-_.~%"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def query_string(params: Mapping[str, Any]) -> str:
    """The query string to send and sign: ``key=value`` pairs joined by ``&``, in the order
    given, ``None`` values left out, unsafe characters percent-encoded."""
    return "&".join(
        f"{quote(str(key), safe=_QUERY_SAFE)}={quote(_text(value), safe=_QUERY_SAFE)}"
        for key, value in params.items()
        if value is not None
    )


def json_body(params: Mapping[str, Any]) -> bytes:
    """The JSON body to send and sign (compact, ``None`` values left out)."""
    return orjson.dumps({key: value for key, value in params.items() if value is not None})


def rest_signature(
    secret: str, timestamp_ms: int, api_key: str, recv_window_ms: int, payload: bytes | str
) -> str:
    """Lower-hex HMAC-SHA256 of ``timestamp + api_key + recv_window + payload``."""
    body = payload.encode() if isinstance(payload, str) else payload
    origin = f"{timestamp_ms}{api_key}{recv_window_ms}".encode() + body
    return hmac.new(secret.encode(), origin, hashlib.sha256).hexdigest()


def signed_headers(
    credentials: Credentials,
    timestamp_ms: int,
    payload: bytes | str,
    recv_window_ms: int = RECV_WINDOW_MS,
) -> dict[str, str]:
    """The authentication headers of one request whose payload is ``payload``."""
    signature = rest_signature(
        credentials.secret, timestamp_ms, credentials.api_key, recv_window_ms, payload
    )
    return {
        "X-BAPI-API-KEY": credentials.api_key,
        "X-BAPI-TIMESTAMP": str(timestamp_ms),
        "X-BAPI-RECV-WINDOW": str(recv_window_ms),
        "X-BAPI-SIGN": signature,
        "X-BAPI-SIGN-TYPE": "2",  # HMAC (as opposed to RSA)
    }


def ws_signature(secret: str, expires_ms: int) -> str:
    """Lower-hex HMAC-SHA256 of ``"GET/realtime" + expires``."""
    return hmac.new(
        secret.encode(), f"{WS_AUTH_PATH}{expires_ms}".encode(), hashlib.sha256
    ).hexdigest()


def ws_auth_request(credentials: Credentials, expires_ms: int, req_id: str) -> dict[str, Any]:
    """The private websocket's ``op: auth`` request; ``expires_ms`` is a future epoch ms."""
    signature = ws_signature(credentials.secret, expires_ms)
    return {"req_id": req_id, "op": "auth", "args": [credentials.api_key, expires_ms, signature]}
