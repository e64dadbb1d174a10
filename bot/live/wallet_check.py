"""Wallet reconciliation: does the account's wallet move as the run's books say it should?

A Bybit account may hold more than the run: money the run was never given, other coins,
other symbols, other bots. So the wallet is compared by its *changes*, not its level. At a
baseline the exchange's settle-coin wallet balance ``W0`` and the run's booked balance ``B0``
are taken together; at every later check ``W - W0`` must equal ``B - B0``.

The booked balance is what the wallet balance (which leaves out unrealised PnL) should hold
for the run: the cash flows of its executions (trades at their prices, fees and funding as
the exchange charged them) plus the cost of its open positions at the exchange's average
entry. Both are mark-free, so the comparison holds at any price.

Pure: the daemon fetches the wallet and the positions and passes numbers in; this module
says whether there is a drift worth recording (no I/O, no clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.venues.bybit.private_records import Position, Wallet

#: the smallest drift recorded, in the settle coin: fees are charged to 8 decimals, so
#: anything below a cent is rounding, not money that moved
FLOOR_USDT = 0.01
BASELINE_EVENT = "wallet_baseline"  # the run event that keeps the baseline across restarts
SETTLE_COIN = "USDT"  # what the linear perpetuals the bot trades settle in


@dataclass(frozen=True, slots=True)
class WalletBaseline:
    """The wallet balance and the run's booked balance at one moment."""

    wallet: float
    booked: float

    def detail(self) -> dict[str, float]:
        return {"wallet": self.wallet, "booked": self.booked}

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> WalletBaseline:
        return cls(float(detail["wallet"]), float(detail["booked"]))

    def expected(self, booked: float) -> float:
        """The wallet balance the run's books imply now (``booked``: its booked balance)."""
        return self.wallet + booked - self.booked


def latest_baseline(events: Iterable[Mapping[str, Any]]) -> WalletBaseline | None:
    """The latest baseline among a run's stored events; None before it traded live."""
    stored = [e["detail"] for e in events if e["kind"] == BASELINE_EVENT]
    return WalletBaseline.from_detail(stored[-1]) if stored else None


def settle_balance(wallet: Wallet, coin: str = SETTLE_COIN) -> float:
    """The settle coin's wallet balance (unrealised PnL left out); 0 when the account has none."""
    found = wallet.coin(coin)
    return found.wallet_balance if found is not None else 0.0


def booked_balance(
    cash_flows: float, positions: Iterable[Position], symbols: Iterable[str]
) -> float:
    """The run's cash flows plus the cost of the exchange's positions on its symbols."""
    mine = set(symbols)
    return cash_flows + sum(p.size * p.entry_price for p in positions if p.symbol in mine)


def tolerance(positions: Iterable[Position], ticks: Mapping[str, float]) -> float:
    """How far the two changes may differ without money having moved: the floor, plus what
    the average entry's rounding (at worst half a price tick) does to each position's cost."""
    return FLOOR_USDT + sum(abs(p.size) * ticks.get(p.symbol, 0.0) / 2 for p in positions)


@dataclass(frozen=True, slots=True)
class WalletDrift:
    """A drift confirmed by two checks in a row: the views and the baseline it moves to."""

    expected: float  # the wallet balance the run's books imply
    wallet: float  # the exchange's
    rebased: WalletBaseline

    @property
    def amount(self) -> float:
        return self.wallet - self.expected


class WalletWatch:
    """Compares each check with the baseline. A drift is reported only when two checks in a
    row find it (the execution list can lag the wallet by a moment: an execution not yet
    listed is not money lost); once reported, the baseline absorbs it, so the same drift is
    recorded once and a later one is measured from there."""

    def __init__(self, baseline: WalletBaseline) -> None:
        self.baseline = baseline
        self._suspect: float | None = None  # a drift seen once, not yet confirmed

    def check(self, wallet: float, booked: float, allowed: float) -> WalletDrift | None:
        expected = self.baseline.expected(booked)
        drift = wallet - expected
        if abs(drift) <= allowed:
            self._suspect = None
            return None
        seen_before = self._suspect is not None and abs(drift - self._suspect) <= allowed
        self._suspect = drift
        if not seen_before:
            return None
        self._suspect = None
        self.baseline = WalletBaseline(wallet, booked)
        return WalletDrift(expected, wallet, self.baseline)
