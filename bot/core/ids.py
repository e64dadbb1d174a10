"""Deterministic identifiers.

An ``orderLinkId`` is a pure function of (run, decision time, symbol, leg, attempt): a restarted
or retrying process derives the same id for the same decision, and Bybit (like our store)
refuses a second order with it. A decision's order for one symbol may go out in legs (a flip is
a reduce-only close plus an opening order; a quantity above the venue's market-order maximum
is split), each with its own id. Bybit allows at most 36 characters of ``[A-Za-z0-9_-]``.
"""

from __future__ import annotations

import hashlib
import re
import uuid

_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


def new_run_id() -> str:
    """A fresh run id: 16 hex characters."""
    return uuid.uuid4().hex[:16]


def order_link_id(
    run_id: str, decision_time: int, symbol: str, attempt: int = 0, *, leg: int = 0
) -> str:
    """``<run prefix>-<18 hex of a hash of the five parts>-<leg>-<attempt>``, at most 36
    characters (legs and attempts below 1000 each)."""
    if attempt < 0 or leg < 0:
        raise ValueError("attempt and leg must be >= 0")
    digest = hashlib.blake2b(
        f"{run_id}|{decision_time}|{symbol}|{leg}|{attempt}".encode(), digest_size=9
    ).hexdigest()
    link_id = f"{run_id[:8]}-{digest}-{leg}-{attempt}"
    if not _LINK_ID.match(link_id):
        raise ValueError(f"cannot build a valid orderLinkId from run id {run_id!r}")
    return link_id
