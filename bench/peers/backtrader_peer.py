"""The benchmark workload in backtrader (Cerebro, PandasData feed, native SMA indicators).

Mapping of the project's semantics (details in ``README.md``):

* decisions in ``next()`` at the close of bar t, from t = slow (both SMAs known at t and t-1);
  a turn up buys ``order_qty(broker value, close_t)``, a turn down sells the whole position;
* market orders, executed by backtrader at the next bar's open (``coo``/``coc`` off), no slippage;
* commission: percentage of notional (``COMM_PERC``, ``percabs=True``: 0.001 = 10 bp) per fill;
* cash: a stock-like commission scheme with ``leverage=2``. backtrader's broker refuses to
  *execute* an opening order that would leave cash below zero (``order.margin()`` in
  ``BackBroker._execute``), whatever ``checksubmit`` says, and an all-in buy plus its fee always
  costs a little more than the cash. With leverage the broker only books ``notional / 2``
  against cash and values the position as ``notional / 2 + unrealised PnL``, so cash stays
  positive and the account value equals the project's ``cash + qty * close`` (perp accounting).
"""

# The engine is imported inside run(): this module (and round_prices) must import without it.
# ruff: noqa: PLC0415

from __future__ import annotations

import sys
import time
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
    step_decimals,
)

NAME = "backtrader"
LEVERAGE = 2.0  # any value > 1.001 keeps cash >= 0 after an all-in buy and its fee


def _strategy_class(bt):
    class MaCrossover(bt.Strategy):
        params = (("fast", 10), ("slow", 30), ("qty_step", 0.001))

        def __init__(self) -> None:
            self.sma_fast = bt.indicators.SimpleMovingAverage(self.data.close, period=self.p.fast)
            self.sma_slow = bt.indicators.SimpleMovingAverage(self.data.close, period=self.p.slow)
            self.qty_decimals = step_decimals(self.p.qty_step)
            self.above: bool | None = None  # fast > slow at the previous close
            self.fills = 0
            self.refused = 0  # orders ending Margin/Rejected/Canceled/Expired (should stay 0)
            self.orders = 0

        def notify_order(self, order) -> None:
            if order.status == order.Completed:
                self.fills += 1
            elif order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
                self.refused += 1

        def next(self) -> None:
            # first called at bar slow-1, where the slow SMA is first defined
            above = self.sma_fast[0] > self.sma_slow[0]
            before, self.above = self.above, above
            if before is None or above == before:
                return
            if above:
                qty = order_qty(
                    self.broker.getvalue(), self.data.close[0], self.p.qty_step, self.qty_decimals
                )
                if qty > 0:
                    self.buy(size=qty)
                    self.orders += 1
            elif self.position.size:
                self.sell(size=self.position.size)
                self.orders += 1

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
    leverage: float = LEVERAGE,
) -> dict:
    import backtrader as bt
    import pandas as pd

    t0 = time.perf_counter()
    frame = pd.DataFrame(
        {
            "open": ohlcv[:, OPEN],
            "high": ohlcv[:, HIGH],
            "low": ohlcv[:, LOW],
            "close": ohlcv[:, CLOSE],
            "volume": ohlcv[:, VOLUME],
        },
        index=pd.to_datetime(np.asarray(starts_ms, dtype=np.int64), unit="ms"),
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(
        bt.feeds.PandasData(
            dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=1, openinterest=None
        )
    )
    cerebro.addstrategy(_strategy_class(bt), fast=fast, slow=slow, qty_step=qty_step)
    cerebro.broker.setcash(cash)
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.setcommission(
        commission=fee_rate,
        commtype=bt.CommInfoBase.COMM_PERC,
        percabs=True,
        stocklike=True,
        leverage=leverage,
    )
    setup = time.perf_counter() - t0

    t0 = time.perf_counter()
    (strategy,) = cerebro.run()
    elapsed = time.perf_counter() - t0

    broker = cerebro.broker
    position = broker.getposition(strategy.data)
    return {
        "engine": NAME,
        "version": bt.__version__,
        "bars": len(frame),
        "setup_seconds": setup,
        "run_seconds": elapsed,
        "trades": strategy.fills,
        "final_equity": float(broker.getvalue()),
        "orders": strategy.orders,
        "refused_orders": strategy.refused,
        "final_position": float(position.size),
        "prices_rounded_to": PRICE_DECIMALS if is_rounded(ohlcv) else None,
    }


if __name__ == "__main__":
    main(run)
