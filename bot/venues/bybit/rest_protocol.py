"""Bybit v5 public REST, as pure functions over status, headers and bytes (no sockets).

Everything that can go wrong with a response is decided here, so each case is a unit test: the
envelope check (Bybit reports errors with HTTP 200 and a non-zero ``retCode``), the error types,
the retry policy, and the parsing of klines, instruments, funding rates and server time.
:mod:`bot.venues.bybit.rest` is the thin aiohttp loop around these.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import orjson
import pandas as pd

from bot.core.bar_rules import row_problems
from bot.core.instruments import InstrumentSpec
from bot.core.timeutil import MINUTE_MS

KLINE_LIMIT = 1000  # rows per /v5/market/kline page (Bybit's maximum)
FUNDING_LIMIT = 200  # rows per /v5/market/funding/history page (Bybit's maximum)
INSTRUMENTS_LIMIT = 1000  # rows per /v5/market/instruments-info page (Bybit's maximum)
RATE_LIMIT_CODE = 10006
#: retCodes that blame the server, not the request: 10000 server timeout, 10016 server error.
SERVER_ERROR_CODES = frozenset({10000, 10016})
RESET_HEADER = "X-Bapi-Limit-Reset-Timestamp"
#: A candle counts as closed in a REST reply only this long after its end (see parse_klines).
CLOSE_MARGIN_MS = 2_000
#: Waited past a rate-limit reset on top, because Bybit's clock and ours are never identical.
RESET_MARGIN_S = 0.05
KLINE_COLUMNS = ("start", "open", "high", "low", "close", "volume", "turnover")

_HTTP_MEANING = {403: "IP rate limit", 429: "system protection"}
_EXCERPT_CHARS = 200


# -- errors ---------------------------------------------------------------------------------------
class BybitError(Exception):
    """A failed Bybit REST request. ``path`` is the request target (path and query), so every
    message says which call failed, for which symbol."""

    def __init__(self, message: str, path: str):
        super().__init__(f"{path}: {message}")
        self.path = path


class BybitAPIError(BybitError):
    """Bybit answered with a non-zero ``retCode`` (on HTTP 200, as Bybit reports errors)."""

    def __init__(self, code: int, message: str, path: str):
        super().__init__(f"Bybit retCode {code}: {message}", path)
        self.code = code
        self.message = message


class RateLimited(BybitAPIError):  # noqa: N818 - the name the callers know it by
    """retCode 10006; ``reset_ms`` is when the limit resets (epoch ms), if Bybit said."""

    def __init__(self, code: int, message: str, path: str, reset_ms: int | None):
        super().__init__(code, message, path)
        self.reset_ms = reset_ms


class BybitHTTPError(BybitError):
    """A non-2xx HTTP status: 403 (IP rate limit), 429 (system protection), 5xx, or any other."""

    def __init__(self, status: int, path: str, excerpt: str):
        meaning = f" ({_HTTP_MEANING[status]})" if status in _HTTP_MEANING else ""
        super().__init__(f"HTTP {status}{meaning}: {excerpt}", path)
        self.status = status


class BadResponseError(BybitError):
    """A 2xx response that is not a Bybit envelope (not JSON, no ``retCode``, no ``result``)."""

    def __init__(self, reason: str, path: str, status: int = 200):
        super().__init__(f"bad response (HTTP {status}): {reason}", path)
        self.status = status


class TransportError(BybitError):
    """No response at all: a timeout, a refused or dropped connection."""


# -- envelope -------------------------------------------------------------------------------------
def read_envelope(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    path: str,
    scrub: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """The whole envelope of a successful response (``result`` plus the server ``time``);
    raises the matching :class:`BybitError` otherwise.

    ``scrub`` is applied to every piece of server text an error carries (``retMsg``, body
    excerpts): private calls pass one that removes their key, since Bybit may echo it."""
    clean = scrub or _unchanged
    if not 200 <= status < 300:
        raise BybitHTTPError(status, path, clean(_excerpt(body)))
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadResponseError(f"not JSON: {clean(_excerpt(body))}", path, status) from None
    code = envelope.get("retCode") if isinstance(envelope, dict) else None
    if not isinstance(code, int):
        raise BadResponseError(f"no retCode: {clean(_excerpt(body))}", path, status)
    message = clean(str(envelope.get("retMsg", "")))
    if code == RATE_LIMIT_CODE:
        raise RateLimited(code, message, path, _reset_ms(headers))
    if code != 0:
        raise BybitAPIError(code, message, path)
    if not isinstance(envelope.get("result"), dict):
        raise BadResponseError(f"no result object: {clean(_excerpt(body))}", path, status)
    return envelope


def _unchanged(text: str) -> str:
    return text


def check_response(
    status: int, headers: Mapping[str, str], body: bytes | str, path: str
) -> dict[str, Any]:
    """The ``result`` of a successful response; raises the matching :class:`BybitError`."""
    return read_envelope(status, headers, body, path)["result"]


def _excerpt(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"


def _reset_ms(headers: Mapping[str, str]) -> int | None:
    """The rate-limit reset header, looked up case-insensitively (HTTP header names are)."""
    value = headers.get(RESET_HEADER)
    if value is None:
        wanted = RESET_HEADER.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# -- retry policy ---------------------------------------------------------------------------------
def is_transient(error: BaseException) -> bool:
    """Whether the same request may succeed later: rate limits, 403/429/5xx, server-side
    retCodes, unreadable responses and transport failures. A request Bybit refused (bad
    parameters, unknown symbol) fails the same way every time."""
    if isinstance(error, BybitHTTPError):
        return error.status in (403, 429) or error.status >= 500
    if isinstance(error, BybitAPIError):
        return isinstance(error, RateLimited) or error.code in SERVER_ERROR_CODES
    return isinstance(error, BadResponseError | TransportError | TimeoutError | ConnectionError)


def retry_delay(
    attempt: int,
    error: BaseException,
    now_ms: int,
    base_s: float,
    max_s: float,
    rng: random.Random,
) -> float | None:
    """Seconds to wait before retrying after failed attempt number ``attempt`` (1-based), or
    None when retrying cannot help. The caller bounds the number of attempts.

    A rate limit waits until Bybit's reset timestamp (``now_ms`` is the wall clock, the reset
    is Bybit's), or ``base_s`` when the reset is unknown or past. Other transient errors back off
    exponentially with full jitter (uniform in [0, base·2^(attempt-1)]), so clients that failed
    together do not retry together. Every wait is capped at ``max_s``.
    """
    if isinstance(error, RateLimited):
        if error.reset_ms is not None and error.reset_ms > now_ms:
            return min(max_s, (error.reset_ms - now_ms) / 1000 + RESET_MARGIN_S)
        return min(max_s, base_s)
    if not is_transient(error):
        return None
    ceiling = min(max_s, base_s * 2 ** min(attempt - 1, 30))
    return rng.uniform(0.0, ceiling)


def error_kind(error: BaseException) -> str:
    """A short label of an error for counters and log lines (``rate_limited``, ``http_403``)."""
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, BybitAPIError):
        return f"retcode_{error.code}"
    if isinstance(error, BybitHTTPError):
        return f"http_{error.status}"
    if isinstance(error, BadResponseError):
        return "bad_response"
    return "transport"


# -- results --------------------------------------------------------------------------------------
def empty_klines() -> pd.DataFrame:
    frame = pd.DataFrame({name: np.empty(0, dtype=np.float64) for name in KLINE_COLUMNS})
    frame["start"] = frame["start"].astype(np.int64)
    return frame


def parse_klines(
    result: Mapping[str, Any], interval_ms: int, server_time_ms: int
) -> tuple[pd.DataFrame, list[str]]:
    """The closed bars of a /v5/market/kline ``result``, ascending, and why any row was refused.

    Rows are ``[start, open, high, low, close, volume, turnover]`` strings, newest first. The
    newest may be the candle still forming (start + interval > server time): it is left out,
    since a strategy must never see a bar before it closes. ``server_time_ms`` is the envelope's
    ``time``, Bybit's own clock, which decides what has closed. A candle that closed less than
    :data:`CLOSE_MARGIN_MS` before it is treated as forming too: if the server stamped ``time``
    a moment after reading its rows, that row may still hold the candle's partial values.
    Callers that need it (a backfill) simply ask again shortly after.

    Every row must pass :mod:`bot.core.bar_rules` (a row that does not parse, or holds a price
    of 0, ``inf``, high below low, a start off the grid or in the future, is refused): one bad
    row costs that bar, never the page or the caller.
    """
    rows = result.get("list") or []
    if not isinstance(rows, list):
        return empty_klines(), [f"kline list is a {type(rows).__name__}, not an array"]
    refused: list[str] = []
    parsed: list[list[float]] = []
    for row in rows:
        try:
            if len(row) != len(KLINE_COLUMNS):
                raise ValueError(f"{len(row)} fields, not {len(KLINE_COLUMNS)}")
            start = int(row[0])
            parsed.append([start, *(float(x) for x in row[1:])])
        except (TypeError, ValueError, OverflowError) as exc:
            refused.append(f"unreadable row {str(row)[:80]}: {exc}")
    if not parsed:
        return empty_klines(), refused
    starts = np.array([r[0] for r in parsed], dtype=np.int64)
    values = np.array([r[1:] for r in parsed], dtype=np.float64)
    bad, reasons = row_problems(
        starts, values[:, :5], interval_ms, turnover=values[:, 5], now_ms=server_time_ms
    )
    refused += [f"bar {t}: {why}" for t, why in zip(starts[bad].tolist(), reasons, strict=True)]
    closed = np.flatnonzero(~bad & (starts + interval_ms <= server_time_ms - CLOSE_MARGIN_MS))
    order = closed[np.argsort(starts[closed], kind="stable")]
    if len(np.unique(starts[order])) != len(order):
        refused.append("duplicate bar starts in one page: page ignored")
        return empty_klines(), refused
    frame = pd.DataFrame(values[order], columns=list(KLINE_COLUMNS[1:]))
    frame.insert(0, "start", starts[order])
    return frame, refused


def parse_instruments(result: Mapping[str, Any]) -> dict[str, InstrumentSpec]:
    """Trading rules per symbol from /v5/market/instruments-info (all numbers are strings).

    Spot has ``basePrecision`` instead of ``qtyStep`` and ``minOrderAmt`` instead of
    ``minNotionalValue``; options have neither minimum notional (→ 0).
    """
    specs = {}
    for item in result.get("list") or []:
        lot = item.get("lotSizeFilter") or {}
        price = item.get("priceFilter") or {}
        symbol = item["symbol"]
        specs[symbol] = InstrumentSpec(
            symbol=symbol,
            qty_step=_number(lot.get("qtyStep") or lot.get("basePrecision"), 0.0),
            min_order_qty=_number(lot.get("minOrderQty"), 0.0),
            min_notional=_number(lot.get("minNotionalValue") or lot.get("minOrderAmt"), 0.0),
            tick_size=_number(price.get("tickSize"), 0.0),
            max_order_qty=_number(lot.get("maxOrderQty"), float("inf")),
            max_market_qty=_number(lot.get("maxMktOrderQty"), float("inf")),
        )
    return specs


def funding_intervals(result: Mapping[str, Any]) -> dict[str, int]:
    """Funding interval per symbol in ms, from ``fundingInterval`` (minutes; perpetuals only)."""
    return {
        item["symbol"]: int(item["fundingInterval"]) * MINUTE_MS
        for item in result.get("list") or []
        if item.get("fundingInterval")
    }


def parse_server_time(result: Mapping[str, Any]) -> int:
    """Bybit's clock in epoch ms, from /v5/market/time (``timeNano``, else ``timeSecond``)."""
    if result.get("timeNano"):
        return int(result["timeNano"]) // 1_000_000
    if result.get("timeSecond"):
        return int(result["timeSecond"]) * 1000
    raise ValueError(f"server time result has neither timeNano nor timeSecond: {result!r}")


def parse_funding(result: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(times, rates)`` ascending from /v5/market/funding/history (strings, newest first)."""
    items = result.get("list") or []
    times = np.array([int(item["fundingRateTimestamp"]) for item in items], dtype=np.int64)
    rates = np.array([float(item["fundingRate"]) for item in items], dtype=np.float64)
    order = np.argsort(times, kind="stable")
    return times[order], rates[order]


def _number(text: str | None, default: float) -> float:
    """A Bybit decimal string as a float; absent or empty means ``default``."""
    return float(text) if text not in (None, "") else default
