"""Before a live run trades: is this key and this account one the bot may trade with?

Every check here reads; none writes. A refusal names what is wrong and what to change:

* a key that can **withdraw** is refused: a trading bot never needs it, and a leaked key
  that can withdraw empties the account;
* a **read-only** key is refused when trading (``--check`` may use one);
* the account must be a **unified trading account** (the only one the bot's wallet and
  position reads understand);
* positions must be in **one-way mode**: in hedge mode a symbol has two positions and the
  bot's signed position per symbol would mean nothing.

Demo trading does not serve every private endpoint. Where it does not answer the key query,
the key's permissions cannot be read; a demo key cannot withdraw real funds, so the run goes
on with a warning, and the account type is still checked through the wallet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bot.venues.bybit.private_records import KeyInfo, OrderUpdate, Position, Wallet
from bot.venues.bybit.rest_protocol import BybitAPIError

log = logging.getLogger(__name__)

#: retCodes meaning "this key may not do that" or "no such account type": not transient.
_ACCOUNT_TYPE_CODES = frozenset({10001, 10005})
#: retCodes meaning the key itself is refused: unknown (10003), signed with another secret
#: (10004), expired (33004).
_BAD_KEY_CODES = frozenset({10003, 10004, 33004})


class PreflightError(RuntimeError):
    """The key or the account must not be traded with; the message says why and what to do."""


class AccountReader(Protocol):
    """The reads preflight needs (:class:`~bot.venues.bybit.private_rest.PrivateRest` has them)."""

    async def key_info(self) -> KeyInfo: ...

    async def wallet(self, account_type: str = "UNIFIED") -> Wallet: ...

    async def positions(self, symbol: str | None = None) -> list[Position]: ...

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]: ...


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What the account looked like when it was checked. ``key`` is None where the target
    does not say (demo trading)."""

    key: KeyInfo | None
    wallet: Wallet
    positions: tuple[Position, ...]
    open_orders: tuple[OrderUpdate, ...]


async def preflight(
    reader: AccountReader, symbols: list[str] | tuple[str, ...], *, trading: bool, target: str
) -> AccountSnapshot:
    """Check the key and the account for ``symbols``; raise :class:`PreflightError` if the bot
    must not trade them (``trading=False``: a read-only key is fine)."""
    key = await _key(reader, target)
    if key is not None:
        if key.can_withdraw:
            raise PreflightError(
                "the API key has the Withdraw permission: create a key without it (a trading "
                "bot never withdraws, and a leaked key that can would empty the account)"
            )
        if key.read_only and trading:
            raise PreflightError(
                "the API key is read-only: give it Contract trading (Orders, Positions) to "
                "trade, or use --check, which only reads"
            )
        if not key.uta:
            raise PreflightError(_NOT_UNIFIED)
    try:
        wallet = await reader.wallet("UNIFIED")
    except BybitAPIError as exc:
        if exc.code in _ACCOUNT_TYPE_CODES:
            raise PreflightError(f"{_NOT_UNIFIED} (the exchange said: {exc.message})") from None
        raise
    positions: list[Position] = []
    for symbol in symbols:
        positions += await reader.positions(symbol)
    hedged = sorted({p.symbol for p in positions if p.position_idx != 0})
    if hedged:
        raise PreflightError(
            f"{', '.join(hedged)} in hedge mode: switch the account's USDT perpetuals to "
            "one-way mode (the bot holds one signed position per symbol)"
        )
    orders = [o for s in symbols for o in await reader.open_orders(s)]
    return AccountSnapshot(key, wallet, tuple(positions), tuple(orders))


_NOT_UNIFIED = (
    "the account is not a unified trading account: upgrade it to UTA to trade with the bot"
)


async def _key(reader: AccountReader, target: str) -> KeyInfo | None:
    try:
        return await reader.key_info()
    except BybitAPIError as exc:
        if exc.code in _BAD_KEY_CODES:
            raise PreflightError(
                f"the exchange refused the API key ({exc.message}): check that live.key_env and "
                "live.secret_env name the key and secret of this target's account "
                "(testnet, demo and mainnet keys differ)"
            ) from None
        if target != "demo":
            raise
        log.warning("demo trading did not answer the key query (%s); the key's permissions "
                    "are not checked (a demo key cannot withdraw real funds)", exc)  # fmt: skip
        return None
