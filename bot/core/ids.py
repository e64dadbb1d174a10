"""Deterministic identifiers.

An ``orderLinkId`` is a pure function of (run, decision time, symbol, attempt): a restarted or
retrying process derives the same id for the same decision, and Bybit (like our store) refuses
a second order with it. Bybit allows at most 36 characters of ``[A-Za-z0-9_-]``.
"""

from __future__ import annotations

import hashlib
import re
import uuid

_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


def new_run_id() -> str:
    """A fresh run id: 16 hex characters."""
    return uuid.uuid4().hex[:16]


def order_link_id(run_id: str, decision_time: int, symbol: str, attempt: int = 0) -> str:
    """``<run prefix>-<20 hex of a hash of the four parts>-<attempt>``, at most 36 characters."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    digest = hashlib.blake2b(
        f"{run_id}|{decision_time}|{symbol}|{attempt}".encode(), digest_size=10
    ).hexdigest()
    link_id = f"{run_id[:8]}-{digest}-{attempt}"
    if not _LINK_ID.match(link_id):
        raise ValueError(f"cannot build a valid orderLinkId from run id {run_id!r}")
    return link_id
