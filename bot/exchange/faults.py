"""Faults the local exchange injects, so a client's recovery code really runs.

Every decision is a pure function of (seed, connection number, fault kind, message index) —
connection ``n`` of two servers with one seed suffers the same faults at the same messages,
whatever the timing. Only data messages (those with a ``topic``) are subject to faults;
acknowledgements and pongs always arrive, as on Bybit. :class:`FaultCounters` records what was
injected, for ``/_local/status`` and for tests that must see faults happen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bot.config import FaultsConfig
from bot.core.timeutil import to_ms
from bot.exchange.mix import uniform

_MALFORMED, _DUPLICATE, _DROP, _DELAY, _REORDER = range(1, 6)


@dataclass
class FaultCounters:
    """How many faults of each kind were injected since the server started."""

    drops: int = 0
    duplicates: int = 0
    reordered: int = 0  # messages sent at another position than produced
    delayed: int = 0
    malformed: int = 0
    outage_closes: int = 0
    outage_refusals: int = 0
    rate_limited: int = 0
    http_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ConnectionFaults:
    """The fault decisions for data messages ``0, 1, 2…`` of one websocket connection."""

    def __init__(self, config: FaultsConfig, seed: int, connection: int) -> None:
        self.config = config
        self._key = (seed, connection)

    def _chance(self, kind: int, *index: int) -> float:
        return uniform(*self._key, kind, *index)

    def malformed(self, i: int) -> bool:
        p = self.config.malformed_probability
        return p > 0 and self._chance(_MALFORMED, i) < p

    def duplicate(self, i: int) -> bool:
        p = self.config.duplicate_probability
        return p > 0 and self._chance(_DUPLICATE, i) < p

    def drop_after(self, i: int) -> bool:
        """Whether the connection is dropped right after message ``i`` is sent."""
        every, p = self.config.drop_every, self.config.drop_probability
        return bool(every and (i + 1) % every == 0) or (p > 0 and self._chance(_DROP, i) < p)

    def delay_s(self, i: int) -> float:
        """Wall seconds message ``i`` is held back."""
        return self.config.delay_ms * self._chance(_DELAY, i) / 1000.0

    def order(self, window: int, size: int) -> list[int]:
        """The order in which the ``size`` messages of reorder window ``window`` are sent."""
        return sorted(range(size), key=lambda pos: self._chance(_REORDER, window, pos))


def break_json(text: str) -> str:
    """Broken JSON standing for ``text``: cut in the middle, as a truncated frame would be."""
    return text[: max(1, len(text) // 2)]


def outage_window(config: FaultsConfig, interval_ms: int) -> tuple[int, int] | None:
    """[start, end) of the websocket outage in market ms, or None."""
    if config.outage_at is None or config.outage_bars <= 0:
        return None
    start = to_ms(config.outage_at)
    return start, start + config.outage_bars * interval_ms


class RestFaults:
    """Counts REST requests and says which ones fail (every Nth: 10006, every Mth: HTTP 403)."""

    RATE_LIMIT, HTTP_ERROR = "rate_limit", "http_error"

    def __init__(self, config: FaultsConfig, counters: FaultCounters) -> None:
        self.config = config
        self.counters = counters
        self.requests = 0

    def next_request(self) -> str | None:
        self.requests += 1
        n = self.requests
        if self.config.rate_limit_every and n % self.config.rate_limit_every == 0:
            self.counters.rate_limited += 1
            return self.RATE_LIMIT
        if self.config.http_error_every and n % self.config.http_error_every == 0:
            self.counters.http_errors += 1
            return self.HTTP_ERROR
        return None
