"""Bybit's kline interval codes, shared by the REST and websocket sides."""

from __future__ import annotations

from bot.core.timeutil import normalize_interval

CODES = {
    "1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120",
    "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1w": "W",
}  # fmt: skip
NAMES = {code: name for name, code in CODES.items()}


def bybit_interval(interval: str) -> str:
    """Bybit's kline interval code ("1m" → "1", "1h" → "60", "1d" → "D", "1w" → "W")."""
    name = normalize_interval(interval)
    if name not in CODES:
        raise ValueError(f"Bybit has no {name} klines; use one of {', '.join(CODES)}")
    return CODES[name]
