"""What can come of a private Bybit call, and keeping the key out of every error's text.

An order request ends in exactly one of four ways, and an executor must tell them apart:

* an :class:`~bot.venues.bybit.private_records.OrderAck`: Bybit took the order;
* :class:`OrderRejected`: Bybit answered with a non-zero ``retCode`` — the order does not
  exist (insufficient balance, below the minimum notional, bad parameters, ...);
* :class:`DuplicateOrderLinkId` (110072): an order with this ``orderLinkId`` already exists,
  which after an unknown outcome is the proof that the first request got through;
* :class:`OutcomeUnknown`: a timeout, a reset connection, a 5xx or a server-side retCode after
  the request may have been received. Never a failure: the order may exist. The executor
  resolves it with the **same** ``orderLinkId`` (look it up, re-send it).

Bybit's error messages of private calls are not shown raw: a 10004 (bad signature) may echo
the signed origin string, which holds the API key. Messages of authentication errors are
replaced by a description of their code; every other message goes through :class:`Scrubber`
(origin strings cut, the key, secret and signature removed in any encoding).
"""

from __future__ import annotations

import re

from bot.redact import SECRETS, SecretRegistry, scrub_text

#: retCodes about the key or the signature, whose messages are never shown.
AUTH_CODES = frozenset({10003, 10004, 10005, 10007, 10009, 10010, 33004})
DUPLICATE_LINK_ID_CODE = 110072
TIMESTAMP_CODE = 10002
ORDER_NOT_FOUND_CODE = 110001
#: What the codes an executor meets mean, in our words (Bybit's may carry anything).
DESCRIPTIONS = {
    10001: "bad request parameters",
    10002: "timestamp outside the receive window",
    10003: "API key refused",
    10004: "signature refused",
    10005: "permission denied for this key",
    10006: "rate limited",
    10007: "authentication failed",
    10009: "IP banned",
    10010: "request from an IP the key is not bound to",
    10016: "Bybit server error",
    33004: "API key expired",
    110001: "order not found",
    110004: "insufficient wallet balance",
    110007: "insufficient available balance",
    110012: "insufficient available balance",
    110017: "reduce-only order would not reduce the position, or quantity truncated to zero",
    110020: "too many active orders",
    110072: "duplicate orderLinkId",
    110094: "order value below the minimum notional",
}
_ORIGIN = re.compile(r"(?is)origin[ _-]?string.*")
_EXCERPT_CHARS = 200


def describe(code: int) -> str:
    return DESCRIPTIONS.get(code, "error")


class Scrubber:
    """Removes one client's secrets — key, secret, and the signatures it sent — from server
    text, in every encoding :func:`bot.redact.encoded_forms` knows, and cuts Bybit's
    ``origin_string[...]`` echoes. Also applies the process-wide registry."""

    def __init__(self, *secrets: str) -> None:
        self._registry = SecretRegistry()
        for value in secrets:
            self._registry.register(value)

    def add(self, value: str) -> None:
        self._registry.register(value)

    def __call__(self, text: str) -> str:
        text = _ORIGIN.sub("origin string withheld", text)
        text = scrub_text(SECRETS.scrub(self._registry.scrub(text)), self._registry)
        return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"


def safe_reason(code: int, message: str, scrub: Scrubber) -> str:
    """What to say about ``retCode`` ``code``: our description, plus Bybit's (scrubbed)
    message unless the code is an authentication one."""
    if code in AUTH_CODES:
        return f"{describe(code)} (Bybit's message withheld)"
    shown = scrub(message)
    return f"{describe(code)}: {shown}" if shown else describe(code)


class OrderError(Exception):
    """A create-order request that did not end in an acknowledgement."""

    def __init__(self, message: str, link_id: str) -> None:
        super().__init__(f"order {link_id}: {message}")
        self.link_id = link_id


class OrderRejected(OrderError):  # noqa: N818 - the outcome's name
    """Bybit refused the order with ``code``; no order exists."""

    def __init__(self, link_id: str, code: int, reason: str) -> None:
        super().__init__(f"rejected, retCode {code}: {reason}", link_id)
        self.code = code
        self.reason = reason


class DuplicateOrderLinkId(OrderError):  # noqa: N818 - the outcome's name
    """110072: an order with this ``orderLinkId`` exists already (Bybit does not say which:
    look it up)."""

    def __init__(self, link_id: str) -> None:
        super().__init__("duplicate orderLinkId: the order exists", link_id)
        self.code = DUPLICATE_LINK_ID_CODE


class OutcomeUnknown(OrderError):  # noqa: N818 - the outcome's name
    """The request may or may not have placed the order (``reason`` says what happened).
    Resolve with the same ``orderLinkId``; never place it again under a new one."""

    def __init__(self, link_id: str, reason: str) -> None:
        super().__init__(f"outcome unknown: {reason}", link_id)
        self.reason = reason
