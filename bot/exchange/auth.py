"""Bybit v5 request signing, checked the way Bybit checks it — on the bytes received.

REST: ``X-BAPI-SIGN`` is the lower-hex HMAC-SHA256, keyed by the API secret, of
``timestamp + api_key + recv_window + payload``, where the payload is the raw query string of
a GET or the raw body of a POST, byte for byte as they arrived: re-encoding a parsed query or
body would accept signatures Bybit refuses (and refuse some it accepts). A request is in time
when ``server − recv_window ≤ timestamp < server + 1000``.

The server time used here is the **wall clock**, never market time: market time runs
accelerated, and a window measured in it would reject every client's honest timestamp.

Private websocket: ``{"op":"auth","args":[api_key, expires, signature]}`` with signature =
HMAC-SHA256(secret, ``"GET/realtime" + expires``) and ``expires`` still in the future.

Pure functions: no I/O, no clock reads (``wall_ms`` is passed in), nothing logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

DEFAULT_RECV_WINDOW = 5_000
#: How far ahead of the server clock a timestamp may be (ms), as on Bybit.
AHEAD_MS = 1_000

BAD_KEY, BAD_TIMESTAMP, BAD_SIGNATURE = 10003, 10002, 10004

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class AuthError:
    """Why a request is refused: Bybit's retCode and message."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Signed(Generic[A]):
    """A request whose signature checked out, and whose account it is."""

    account: A


def sign(secret: str, payload: bytes) -> str:
    """Lower-hex HMAC-SHA256 of ``payload`` keyed by ``secret``."""
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def origin(timestamp: str, api_key: str, recv_window: str, payload: bytes) -> bytes:
    """The string Bybit signs for REST."""
    return f"{timestamp}{api_key}{recv_window}".encode() + payload


def timestamp_error(timestamp: int, recv_window: int, server_ms: int) -> AuthError | None:
    """10002 when ``timestamp`` is outside the window around ``server_ms`` (Bybit's text)."""
    if server_ms - recv_window <= timestamp < server_ms + AHEAD_MS:
        return None
    return AuthError(
        BAD_TIMESTAMP,
        "invalid request, please check your server timestamp or recv_window param. "
        f"req_timestamp[{timestamp}],server_timestamp[{server_ms}],recv_window[{recv_window}]",
    )


def check_rest(
    headers: Mapping[str, str],
    payload: bytes,
    secrets: Mapping[str, tuple[str, A]],
    wall_ms: int,
) -> Signed[A] | AuthError:
    """Verify a signed REST request.

    ``secrets`` maps an API key to (its secret, its account). Checks in Bybit's order: the key
    is known (10003), the timestamp and recv window are numbers in time (10002), the
    signature matches (10004 — whose message echoes the signed origin string, API key
    included, as Bybit's does)."""
    api_key = headers.get("X-BAPI-API-KEY", "")
    found = secrets.get(api_key) if api_key else None
    if found is None:
        return AuthError(BAD_KEY, "API key is invalid.")
    secret, account = found
    timestamp_text = headers.get("X-BAPI-TIMESTAMP", "")
    window_text = headers.get("X-BAPI-RECV-WINDOW", "")
    try:
        timestamp = int(timestamp_text)
        recv_window = int(window_text) if window_text else DEFAULT_RECV_WINDOW
    except ValueError:
        return AuthError(
            BAD_TIMESTAMP, "invalid request, please check your timestamp and recv_window param"
        )
    late = timestamp_error(timestamp, recv_window, wall_ms)
    if late is not None:
        return late
    signed = origin(timestamp_text, api_key, window_text, payload)
    expected = sign(secret, signed)
    if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "").lower()):
        shown = signed.decode("utf-8", errors="replace")
        return AuthError(BAD_SIGNATURE, f"error sign! origin_string[{shown}]")
    return Signed(account)


def check_ws(
    args: object, secrets: Mapping[str, tuple[str, A]], wall_ms: int
) -> Signed[A] | AuthError:
    """Verify a private websocket ``auth`` op's ``args``: [api_key, expires, signature].

    Bybit answers every failure with little detail; ``expires`` at or before now is the
    classic one (pybit's default leaves only one second)."""
    if not isinstance(args, list) or len(args) != 3:
        return AuthError(10001, "Params Error")
    api_key, expires, signature = args
    if not isinstance(expires, int | str) or not str(expires).lstrip("-").isdigit():
        return AuthError(10001, "Params Error")
    if int(expires) <= wall_ms:
        return AuthError(10001, "Params Error")
    found = secrets.get(api_key) if isinstance(api_key, str) else None
    if found is None:
        return AuthError(BAD_KEY, "Invalid apikey")
    secret, account = found
    expected = sign(secret, f"GET/realtime{expires}".encode())
    if not isinstance(signature, str) or not hmac.compare_digest(expected, signature.lower()):
        return AuthError(BAD_SIGNATURE, "Invalid sign")
    return Signed(account)
