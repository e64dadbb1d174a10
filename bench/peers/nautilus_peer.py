"""The benchmark workload in NautilusTrader (low-level ``BacktestEngine`` API).

Mapping of the project's semantics (details in ``README.md``):

* venue ``SIM``: MARGIN account, NETTING OMS, 100,000 USDT, leverage 10, L1 book fed by the bars
  (``bar_execution``), ``BestPriceFillModel`` (unlimited size at the top of the book: no
  partial fills, no one-tick slippage when an order is larger than the bar volume / 4 that an
  L1 book built from bars otherwise offers);
* instrument: USDT linear perpetual ``SYNUSDT-PERP.SIM``, price precision
  :data:`~bench.peers.common.PRICE_DECIMALS`, size increment 0.001, maker = taker fee = 10 bp;
* bars: 1-minute LAST bars stamped at their close; prices must already be rounded with
  :func:`round_prices` (``Price`` is fixed-point) — ``prices_rounded_to`` in the result says so;
* strategy: nautilus ``SimpleMovingAverage`` indicators; at the close of bar t (t >= slow) a turn
  up buys ``order_qty(balance + unrealised PnL, close_t)`` with a market order, a turn down
  closes the position (``close_all_positions``).
* fill time: a market order submitted in ``on_bar`` for bar t fills at once against the book
  the bar left behind, i.e. **at bar t's close, stamped with bar t's timestamp** (the project
  fills at bar t+1's open; on this data the two prices are equal). Measured on every run:
  ``fills_at_decision_close`` counts fills whose price and time are those of the deciding bar.
"""

# The engine is imported inside run(): this module (and round_prices) must import without it.
# ruff: noqa: PLC0415

from __future__ import annotations

import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``bot`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.peers.common import (
    CLOSE,
    HIGH,
    LOW,
    OPEN,
    PRICE_DECIMALS,
    VOLUME,
    is_rounded,
    main,
    order_qty,
    round_prices,
    step_decimals,
)

__all__ = ["PRICE_DECIMALS", "round_prices", "run"]

NAME = "nautilus_trader"
VENUE = "SIM"
LEVERAGE = Decimal(10)
MINUTE_NS = 60_000_000_000


def _strategy_class():
    from nautilus_trader.indicators.averages import SimpleMovingAverage
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.objects import Quantity
    from nautilus_trader.trading.strategy import Strategy

    class MaCrossover(Strategy):
        def __init__(self, instrument, bar_type, fast: int, slow: int, qty_step: float) -> None:
            super().__init__()
            self.instrument = instrument
            self.instrument_id = instrument.id
            self.bar_type = bar_type
            self.venue = instrument.id.venue
            self.currency = instrument.settlement_currency
            self.qty_step = qty_step
            self.qty_decimals = step_decimals(qty_step)
            self.size_precision = instrument.size_precision
            self.sma_fast = SimpleMovingAverage(fast)
            self.sma_slow = SimpleMovingAverage(slow)
            self.above: bool | None = None
            self.fills = 0
            self.orders = 0
            self.refused = 0  # denied or rejected orders (should stay 0)
            self.fills_at_decision_close = 0
            self.decision: tuple[int, float] | None = None  # (ts, close) of the deciding bar

        def on_start(self) -> None:
            self.register_indicator_for_bars(self.bar_type, self.sma_fast)
            self.register_indicator_for_bars(self.bar_type, self.sma_slow)
            self.subscribe_bars(self.bar_type)

        def equity(self) -> float:
            account = self.portfolio.account(self.venue)
            value = account.balance_total(self.currency).as_double()
            if not self.portfolio.is_flat(self.instrument_id):
                pnl = self.portfolio.unrealized_pnl(self.instrument_id)
                value += pnl.as_double() if pnl is not None else 0.0
            return value

        def on_bar(self, bar) -> None:
            if not self.sma_slow.initialized:
                return
            above = self.sma_fast.value > self.sma_slow.value
            before, self.above = self.above, above
            if before is None or above == before:
                return
            close = bar.close.as_double()
            self.decision = (bar.ts_event, close)
            if above:
                qty = order_qty(self.equity(), close, self.qty_step, self.qty_decimals)
                if qty > 0:
                    self.orders += 1
                    self.submit_order(
                        self.order_factory.market(
                            self.instrument_id, OrderSide.BUY, Quantity(qty, self.size_precision)
                        )
                    )
            elif not self.portfolio.is_flat(self.instrument_id):
                self.orders += 1
                self.close_all_positions(self.instrument_id)

        def on_order_filled(self, event) -> None:
            self.fills += 1
            if self.decision is not None and (event.ts_event, event.last_px.as_double()) == (
                self.decision
            ):
                self.fills_at_decision_close += 1

        def on_order_denied(self, event) -> None:
            self.refused += 1

        def on_order_rejected(self, event) -> None:
            self.refused += 1

    return MaCrossover


def run(
    starts_ms: np.ndarray,
    ohlcv: np.ndarray,
    *,
    fee_rate: float,
    cash: float,
    qty_step: float,
    fast: int,
    slow: int,
    price_decimals: int = PRICE_DECIMALS,
) -> dict:
    import nautilus_trader
    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.backtest.models import BestPriceFillModel
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import Bar, BarType
    from nautilus_trader.model.enums import AccountType, CurrencyType, OmsType
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
    from nautilus_trader.model.instruments import CryptoPerpetual
    from nautilus_trader.model.objects import Currency, Money, Price, Quantity

    t0 = time.perf_counter()
    size_decimals = step_decimals(qty_step)
    venue = Venue(VENUE)
    instrument = CryptoPerpetual(
        instrument_id=InstrumentId(Symbol("SYNUSDT-PERP"), venue),
        raw_symbol=Symbol("SYNUSDT"),
        base_currency=Currency("SYN", 8, 0, "Synthetic", CurrencyType.CRYPTO),
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=price_decimals,
        size_precision=size_decimals,
        price_increment=Price(10.0**-price_decimals, price_decimals),
        size_increment=Quantity(qty_step, size_decimals),
        lot_size=Quantity(qty_step, size_decimals),
        min_quantity=Quantity(qty_step, size_decimals),
        margin_init=Decimal(1),  # margin = notional / leverage
        margin_maint=Decimal("0.5"),
        maker_fee=Decimal(repr(fee_rate)),
        taker_fee=Decimal(repr(fee_rate)),
        ts_event=0,
        ts_init=0,
    )
    bar_type = BarType.from_str(f"{instrument.id}-1-MINUTE-LAST-EXTERNAL")
    stamps = (np.asarray(starts_ms, dtype=np.int64) * 1_000_000 + MINUTE_NS).astype(np.uint64)
    column = lambda k: np.ascontiguousarray(ohlcv[:, k], dtype=np.float64)  # noqa: E731
    bars = Bar.from_raw_arrays_to_list(
        bar_type,
        price_decimals,
        size_decimals,
        column(OPEN),
        column(HIGH),
        column(LOW),
        column(CLOSE),
        column(VOLUME),
        stamps,
        stamps,
    )
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("BENCH-001"),
            logging=LoggingConfig(log_level="ERROR"),
            run_analysis=False,
        )
    )
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(cash, USDT)],
        base_currency=USDT,
        default_leverage=LEVERAGE,
        fill_model=BestPriceFillModel(),
        bar_execution=True,
    )
    engine.add_instrument(instrument)
    engine.add_data(bars)
    del bars
    strategy = _strategy_class()(instrument, bar_type, fast, slow, qty_step)
    engine.add_strategy(strategy)
    setup = time.perf_counter() - t0

    t0 = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - t0

    account = engine.portfolio.account(venue)
    equity = account.balance_total(USDT).as_double()
    pnl = engine.portfolio.unrealized_pnl(instrument.id)
    if pnl is not None:
        equity += pnl.as_double()
    result = {
        "engine": NAME,
        "version": nautilus_trader.__version__,
        "bars": len(starts_ms),
        "setup_seconds": setup,
        "run_seconds": elapsed,
        "trades": strategy.fills,
        "final_equity": equity,
        "orders": strategy.orders,
        "refused_orders": strategy.refused,
        "fills_at_decision_close": strategy.fills_at_decision_close,
        "final_position": float(engine.portfolio.net_position(instrument.id)),
        "prices_rounded_to": price_decimals if is_rounded(ohlcv, price_decimals) else None,
    }
    engine.dispose()
    return result


if __name__ == "__main__":
    main(run)
