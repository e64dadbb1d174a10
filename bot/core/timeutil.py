"""Time and bar intervals.

Every timestamp in the project is an ``int`` of epoch milliseconds, UTC. Intervals are written
the way people say them (``1m``, ``5m``, ``1h``, ``1d``); Bybit's own codes (``1``, ``60``,
``D``) are accepted too so that config and exchange messages can use one parser.
"""

from __future__ import annotations

from datetime import UTC, datetime

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
#: 1970-01-01 was a Thursday; weeks in this project start on Monday 00:00 UTC, like Bybit's.
WEEK_OFFSET_MS = 4 * DAY_MS
YEAR_MS = 365 * DAY_MS

_UNITS_MS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS, "w": WEEK_MS}
_BYBIT_CODES = {
    "1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "120": "2h",
    "240": "4h", "360": "6h", "720": "12h", "D": "1d", "W": "1w",
}  # fmt: skip


def interval_ms(interval: str) -> int:
    """Milliseconds in one bar of ``interval`` (``"1h"`` → 3,600,000)."""
    name = normalize_interval(interval)
    return int(name[:-1]) * _UNITS_MS[name[-1]]


def normalize_interval(interval: str) -> str:
    """Canonical name of an interval: ``"60"`` and ``"1H"`` both become ``"1h"``."""
    text = str(interval).strip()
    if text in _BYBIT_CODES:
        return _BYBIT_CODES[text]
    text = text.lower()
    if len(text) >= 2 and text[-1] in _UNITS_MS and text[:-1].isdigit() and int(text[:-1]) > 0:
        return f"{int(text[:-1])}{text[-1]}"
    raise ValueError(f"unknown interval {interval!r}; use e.g. 1m, 5m, 15m, 1h, 4h, 1d")


def period_index(time_ms, period_ms: int):
    """Index of the calendar period containing ``time_ms`` (an int or an int array);
    weeks start on Monday 00:00 UTC."""
    offset = WEEK_OFFSET_MS if period_ms % WEEK_MS == 0 else 0
    return (time_ms - offset) // period_ms


def to_ms(value: str | int | datetime) -> int:
    """Parse a date, ISO time or epoch-ms integer into epoch milliseconds (naive means UTC)."""
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso(time_ms: int) -> str:
    """Readable UTC time for logs and reports."""
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
