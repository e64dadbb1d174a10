"""Which private requests, orders and messages suffer a fault, and how many did.

Like the public faults, every decision is a pure function of the exchange seed, the fault
kind and *where* it strikes — (account, n-th order request), (account, n-th private request),
(connection, n-th message), (account, bar) — never of timing or a stateful generator, so a
client's run against one seed meets the same faults in the same places every time.

Counts are kept per kind (the names of :class:`~bot.config.PrivateFaultsConfig` without
``_probability``) for ``/_local/status``: a test that switches a fault on can assert it
really fired.
"""

from __future__ import annotations

from bot.config import PrivateFaultsConfig
from bot.exchange.mix import uniform

#: Every fault kind, with the salt of its random stream (never reorder: seeds would change).
KINDS: dict[str, int] = {
    "lost_response": 1,
    "late_acceptance": 2,
    "rate_limit_burst": 3,
    "clock_skew": 4,
    "error_before": 5,
    "error_after": 6,
    "async_reject": 7,
    "ioc_partial": 8,
    "delayed_fill": 9,
    "ws_drop": 10,
    "ws_duplicate": 11,
    "ws_reorder": 12,
    "ws_double_filled": 13,
    "auth_failure": 14,
    "manual_order": 15,
    "insufficient_balance": 16,
    "below_min_notional": 17,
    "qty_to_zero": 18,
    "ws_disconnect": 19,
}
_SALT = 0x5052_4956  # keeps these streams apart from the public side's
_FORM = 99  # the stream choosing between retCode 10016 and an HTTP 5xx


class PrivateFaults:
    """Fault decisions under one seed, and the count of each kind that took effect."""

    def __init__(self, config: PrivateFaultsConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)

    def probability(self, kind: str) -> float:
        return float(getattr(self.config, f"{kind}_probability"))

    def fires(self, kind: str, *where: int) -> bool:
        """Whether fault ``kind`` strikes at ``where`` (not counted: see :meth:`hit`)."""
        p = self.probability(kind)
        return p > 0 and uniform(self.seed, _SALT, KINDS[kind], *where) < p

    def hit(self, kind: str, *where: int) -> bool:
        """:meth:`fires`, counting the fault when it does."""
        if self.fires(kind, *where):
            self.counts[kind] += 1
            return True
        return False

    def count(self, kind: str) -> None:
        """Count a fault that took effect without a :meth:`hit` (a burst's later 10006s)."""
        self.counts[kind] += 1

    def http_status(self, kind: str, *where: int) -> int:
        """How a server error shows: 200 (retCode 10016) or an HTTP 500/502/503."""
        u = uniform(self.seed, _SALT, _FORM, KINDS[kind], *where)
        return (200, 500, 502, 503)[min(3, int(u * 4))]

    def pick(self, n: int, kind: str, *where: int) -> int:
        """A deterministic choice among ``n`` things for fault ``kind`` at ``where``."""
        return min(n - 1, int(uniform(self.seed, _SALT, _FORM, KINDS[kind], -1, *where) * n))
