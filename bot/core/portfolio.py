"""Positions, cash and equity of a USDT-margined linear perpetual account, and rebalancing.

Accounting: buying ``q`` at ``p`` moves ``q·p`` (plus fee) out of cash, selling moves it back;
cash may go negative, which is leverage. Equity is ``cash + Σ qty·price`` — for linear perps this
equals wallet balance plus unrealised PnL.

Cash is kept as an integer number of 1e-8 USDT (the precision Bybit settles in), so its value
does not depend on the order in which fills and funding arrive: live fills booked as each
symbol's next candle opens leave exactly the cash a replay of the same bars leaves. The same
:meth:`Portfolio.mark` serves one row (live) and thousands of rows (replay), so both modes
produce bit-identical equity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.core.events import Fill, Order
from bot.core.ids import order_link_id
from bot.core.instruments import InstrumentSpec

CASH_UNITS_PER_USDT = 100_000_000


def _units(amount: float) -> int:
    return round(amount * CASH_UNITS_PER_USDT)


@dataclass(frozen=True, slots=True)
class PortfolioView:
    """Read-only snapshot of the portfolio handed to strategies."""

    symbols: tuple[str, ...]
    qty: np.ndarray
    cash: float
    equity: float
    prices: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        """Signed exposure per symbol as a fraction of equity (0 where no price yet)."""
        if self.equity == 0:
            return np.zeros(len(self.symbols))
        value = np.where(self.qty != 0, self.qty * np.nan_to_num(self.prices), 0.0)
        return value / self.equity


class Portfolio:
    """The account: what is held, what it cost, and what it is worth at the last close."""

    def __init__(
        self, symbols: tuple[str, ...], specs: dict[str, InstrumentSpec], initial_cash: float
    ) -> None:
        missing = [s for s in symbols if s not in specs]
        if missing:
            raise KeyError(f"no instrument spec for {', '.join(missing)}")
        if not initial_cash > 0:
            raise ValueError("initial cash must be positive")
        self.symbols = symbols
        self.index = {symbol: i for i, symbol in enumerate(symbols)}
        self.specs = [specs[s] for s in symbols]
        self.initial_cash = float(initial_cash)
        self._cash_units = _units(initial_cash)
        self.qty = np.zeros(len(symbols))
        self.held: list[int] = []  # indices of non-zero positions, ascending
        self.version = 0  # bumped whenever a position changes
        self.avg_price = np.zeros(len(symbols))
        self.open_fee_per_unit = np.zeros(len(symbols))
        self.last_price = np.full(len(symbols), np.nan)
        self.equity = float(initial_cash)

    @property
    def cash(self) -> float:
        return self._cash_units / CASH_UNITS_PER_USDT

    def _add_cash(self, flow: float) -> None:
        self._cash_units += _units(flow)

    # -- valuation -------------------------------------------------------------------------
    def mark(self, closes: np.ndarray) -> np.ndarray:
        """Equity at each row of ``closes[n, S]`` with the current positions.

        Summed symbol by symbol in a fixed order (not BLAS, whose order depends on shape), so a
        one-row call and a many-row call give the same bits. Flat symbols add exactly 0.
        """
        equity = np.full(len(closes), self.cash)
        for s in self.held:
            equity = equity + self.qty[s] * closes[:, s]
        return equity

    def mark_row(self, prices: list[float]) -> float:
        """:meth:`mark` for one row in plain floats: the same operations in the same order."""
        equity = self.cash
        for s in self.held:
            equity = equity + float(self.qty[s]) * prices[s]
        return equity

    def gross(self, closes: np.ndarray) -> np.ndarray:
        """Gross exposure (Σ |qty·price|) at each row of ``closes[n, S]``."""
        total = np.zeros(len(closes))
        for s in self.held:
            total = total + np.abs(self.qty[s] * closes[:, s])
        return total

    def gross_row(self, prices: list[float]) -> float:
        total = 0.0
        for s in self.held:
            total = total + abs(float(self.qty[s]) * prices[s])
        return total

    def view(self) -> PortfolioView:
        return PortfolioView(
            self.symbols, self.qty.copy(), self.cash, self.equity, self.last_price.copy()
        )

    # -- changes ---------------------------------------------------------------------------
    def apply_fill(self, fill: Fill) -> Fill:
        """Book a trade; returns the fill with its realised PnL (Bybit closed-PnL style)."""
        s = self.index[fill.symbol]
        decimals = self.specs[s].decimals
        held, qty, price = float(self.qty[s]), fill.qty, fill.price
        avg, open_fee = float(self.avg_price[s]), float(self.open_fee_per_unit[s])
        fee_per_unit = fill.fee / abs(qty)
        realized = 0.0
        if held != 0 and (held > 0) != (qty > 0):
            closed = min(abs(qty), abs(held))
            direction = 1.0 if held > 0 else -1.0
            realized = (
                closed * (price - avg) * direction - closed * open_fee - closed * fee_per_unit
            )
        new_qty = round(held + qty, decimals)
        if new_qty == 0:
            avg, open_fee = 0.0, 0.0
        elif held == 0 or (new_qty > 0) != (held > 0):
            avg, open_fee = price, fee_per_unit  # opened, or flipped: the rest opens here
        elif abs(new_qty) > abs(held):
            added, total = abs(qty), abs(new_qty)
            avg = (avg * abs(held) + price * added) / total
            open_fee = (open_fee * abs(held) + fee_per_unit * added) / total
        self.avg_price[s] = avg
        self.open_fee_per_unit[s] = open_fee
        self._set_qty(s, new_qty)
        self._add_cash(fill.cash_flow)
        return Fill(
            fill.exec_id, fill.link_id, fill.symbol, fill.time, qty, price, fill.fee,
            fill.exec_type, fill.cash_flow, realized,
        )  # fmt: skip

    def book_cash(self, flow: float) -> None:
        """A cash flow the exchange settled on its own (funding it charged or paid): the
        exchange's number is booked as is, never recomputed."""
        self._add_cash(flow)

    def _set_qty(self, s: int, qty: float) -> None:
        self.qty[s] = qty
        self.version += 1
        if qty != 0 and s not in self.held:
            self.held = sorted([*self.held, s])
        elif qty == 0 and s in self.held:
            self.held = [h for h in self.held if h != s]

    def apply_funding(self, symbol_index: int, time: int, rate: float, price: float, run_id: str):
        """Pay or receive funding on the position held at ``time``; ``None`` when flat."""
        held = float(self.qty[symbol_index])
        if held == 0 or not np.isfinite(price):
            return None
        payment = -held * price * rate  # longs pay a positive rate
        self._add_cash(payment)
        symbol = self.symbols[symbol_index]
        return Fill(
            exec_id=f"{run_id}-funding-{symbol}-{time}",
            link_id=None,
            symbol=symbol,
            time=time,
            qty=held,
            price=price,
            fee=-payment,
            exec_type="Funding",
            cash_flow=payment,
        )


def plan_rebalance(
    portfolio: Portfolio,
    target_weights: Sequence[float],
    prices: np.ndarray,
    stale: np.ndarray,
    threshold: float,
    run_id: str,
    decision_time: int,
    reason: str = "rebalance",
) -> list[Order]:
    """Orders that move positions to ``target_weights`` of current equity.

    target quantity = weight × equity / price, rounded toward zero to ``qty_step``. An order is
    skipped below ``min_order_qty``, below ``min_notional`` or when its notional is under
    ``threshold`` × equity; closing a position entirely ignores the threshold and the minimum
    notional (Bybit exempts reduce-only closes from it). A stale symbol may only shrink.
    """
    equity = portfolio.equity
    orders: list[Order] = []
    solvent = math.isfinite(equity) and equity > 0  # else nothing to size against: only close
    weights, price_list, qty_list = list(target_weights), prices.tolist(), portfolio.qty.tolist()
    for s, spec in enumerate(portfolio.specs):
        price = price_list[s]
        held = qty_list[s]
        if not price > 0 or not math.isfinite(price):
            continue
        target = spec.round_qty(weights[s] * equity / price) if solvent else 0.0
        if stale[s]:
            target = min(max(target, min(0.0, held)), max(0.0, held))
        delta = round(target - held, spec.decimals)
        if delta == 0:
            continue
        closing = target == 0
        if closing:
            if abs(delta) < spec.min_order_qty:
                continue
        elif not spec.tradable(delta, price) or abs(delta) * price < threshold * equity:
            continue
        symbol = portfolio.symbols[s]
        orders.append(
            Order(
                link_id=order_link_id(run_id, decision_time, symbol),
                symbol=symbol,
                qty=delta,
                decision_time=decision_time,
                reason=reason,
            )
        )
    return orders
