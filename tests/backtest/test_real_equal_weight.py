"""Equal weight, weekly rebalancing, on 17 months of real hourly Bybit bars of five symbols:
the engine's final equity equals a plain hand computation of the same rules, and two runs of
the backtest produce bit-identical equity curves."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.runner import run_backtest
from bot.config import load_settings
from bot.core.timeutil import HOUR_MS, WEEK_MS, WEEK_OFFSET_MS, to_ms
from tests.conftest import ROOT

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "WIFUSDT"]
START, END = "2024-02-01", "2025-07-01"


@pytest.fixture(scope="module")
def settings(linear_dir: Path):
    return load_settings(
        ROOT / "config.toml",
        {
            "engine.symbols": SYMBOLS,
            "engine.start": START,
            "engine.end": END,
            "data.source": "csv",
            "data.path": str(linear_dir),
            "strategies": [{"name": "equal_weight", "params": {"rebalance": "1w"}}],
            "risk.max_drawdown": None,
        },
    )


def hand_computed_final_equity(linear_dir: Path, settings) -> tuple[float, int]:
    """The rules of DESIGN.md written out directly, without any engine code."""
    frames = {}
    for s in SYMBOLS:
        df = pd.read_csv(linear_dir / "1h" / f"{s}.csv")
        frames[s] = df[(df.timestamp_ms >= to_ms(START)) & (df.timestamp_ms < to_ms(END))]
    times = frames["BTCUSDT"].timestamp_ms.tolist()
    assert all(frames[s].timestamp_ms.tolist() == times for s in SYMBOLS), "expects no gaps"
    opens = {s: frames[s].open.tolist() for s in SYMBOLS}
    closes = {s: frames[s].close.tolist() for s in SYMBOLS}
    funding = {}
    for s in SYMBOLS:
        f = pd.read_csv(linear_dir / "funding-8h" / f"{s}.csv")
        funding[s] = dict(zip(f.timestamp_ms.tolist(), f.funding_rate.tolist(), strict=True))
    fee = settings.portfolio.fee_bp / 1e4
    slip = settings.portfolio.slippage_bp / 1e4
    threshold = settings.portfolio.rebalance_threshold
    spec = settings.instruments
    cash, qty = settings.portfolio.initial_cash, dict.fromkeys(SYMBOLS, 0.0)
    pending: list[tuple[str, float]] = []
    fills = 0
    equity = cash
    for i, t in enumerate(times):
        for s in SYMBOLS:  # funding settles on the position held at the bar's start
            if t in funding[s]:
                cash -= qty[s] * opens[s][i] * funding[s][t]
        for s, dq in pending:  # orders fill at this bar's open, slipped against us
            price = opens[s][i] * (1 + slip if dq > 0 else 1 - slip)
            cash -= dq * price + abs(dq) * price * fee
            qty[s] = round(qty[s] + dq, 10)
            fills += 1
        pending = []
        equity = cash + sum(qty[s] * closes[s][i] for s in SYMBOLS)
        close_time = t + HOUR_MS
        monday = (close_time - WEEK_OFFSET_MS) % WEEK_MS == 0
        if i == 0 or monday:
            for s in SYMBOLS:
                step = spec[s].qty_step
                target = math.floor(0.2 * equity / closes[s][i] / step + 1e-9) * step
                delta = target - qty[s]
                notional = abs(delta) * closes[s][i]
                if abs(delta) < 1e-12:
                    continue
                if target != 0 and (
                    abs(delta) < spec[s].min_order_qty - 1e-12
                    or notional < spec[s].min_notional
                    or notional < threshold * equity
                ):
                    continue
                pending.append((s, delta))
    return equity, fills


@pytest.mark.slow
def test_equal_weight_weekly_matches_a_hand_computation(linear_dir, settings):
    result = run_backtest(settings)
    expected, fills = hand_computed_final_equity(linear_dir, settings)
    assert result.stats.fills == fills
    assert result.stats.funding_events > 0  # funding really was applied
    assert result.equity[-1] == pytest.approx(expected, rel=1e-9)
    assert result.stats.rows == len(result.equity) > 12_000


@pytest.mark.slow
def test_two_runs_give_bit_identical_equity_curves(settings):
    first = run_backtest(settings)
    second = run_backtest(settings)
    assert first.run_id != second.run_id
    assert first.equity.tobytes() == second.equity.tobytes()
    assert first.times.tobytes() == second.times.tobytes()
    np.testing.assert_array_equal(first.gross, second.gross)
