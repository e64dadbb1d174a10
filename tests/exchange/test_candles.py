"""The candle life cycle: k forming states converging on the exact final bar, as strings that
read back as exactly the stored floats."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from bot.exchange.candles import (
    candle_state,
    final_turnover,
    kline_message,
    kline_row,
    update_index,
)
from bot.exchange.numfmt import Step, fmt
from bot.exchange.tape import BarValues
from bot.feeds.loaders import load_panel
from tests.exchange.harness import HOUR, real_linear_dir, sample_text

TICK, QTY = Step.of(0.1), Step.of(0.001)


def random_bars(n: int, seed: int = 3) -> list[BarValues]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        o, c = (round(x, 1) for x in rng.uniform(100, 200, 2))
        h = round(max(o, c) + rng.uniform(0, 5), 1)
        low = round(min(o, c) - rng.uniform(0, 5), 1)
        out.append(BarValues(o, h, low, c, round(float(rng.gamma(2, 50)), 3), float("nan")))
    return out


def life(bar: BarValues, k: int, seed: int = 7, start: int = 0) -> list:
    return [candle_state(bar, start, k, j, (seed, 0, start), TICK, QTY) for j in range(k + 1)]


@pytest.mark.parametrize("k", [1, 3, 12, 60])
def test_forming_states_converge_on_the_final_bar(k: int):
    for bar in random_bars(4000 // k):  # a state costs O(k): keep the work even
        states = life(bar, k)
        forming, final = states[:-1], states[-1]
        assert [s.confirm for s in states] == [False] * k + [True]
        assert (final.open, final.high, final.low, final.close, final.volume) == bar[:5]
        first = forming[0]
        assert first.open == first.close == first.high == first.low == bar.open
        for before, after in itertools.pairwise(states):
            assert after.high >= before.high and after.low <= before.low
            assert after.volume >= before.volume and after.turnover >= before.turnover
        for s in forming:
            assert s.open == bar.open
            assert bar.low <= s.low <= s.close <= s.high <= bar.high
            assert s.volume <= bar.volume
            assert s.close in (bar.low, bar.high) or TICK.round(s.close) == s.close


def test_the_close_moves_toward_the_final_close():
    k = 20
    gaps = np.array(
        [[abs(s.close - bar.close) for s in life(bar, k)[:-1]] for bar in random_bars(300)]
    )
    early, late = gaps[:, : k // 4].mean(), gaps[:, -k // 4 :].mean()
    assert late < early / 2


def test_states_are_deterministic_under_the_seed():
    bar = random_bars(1)[0]
    assert life(bar, 10, seed=1) == life(bar, 10, seed=1)
    assert life(bar, 10, seed=1) != life(bar, 10, seed=2)


def test_turnover_is_the_data_s_or_a_deterministic_estimate():
    bar = BarValues(10.0, 12.0, 9.0, 11.0, 100.0, float("nan"))
    assert final_turnover(bar) == 100.0 * 10.5
    assert final_turnover(bar._replace(turnover=1234.5)) == 1234.5


@pytest.mark.parametrize("k", [1, 3, 7, 60])
def test_update_index_is_the_last_push_at_or_before(k: int):
    interval = HOUR
    pushes = [j * interval // k for j in range(k)]
    for offset in [0, 1, *pushes, *(p - 1 for p in pushes[1:]), interval - 1]:
        expected = max(j for j, t in enumerate(pushes) if t <= offset)
        assert update_index(offset, interval, k) == expected


def test_strings_read_back_as_the_exact_floats():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0, 1e6, 5000), 10 ** rng.uniform(-8, 8, 5000)])
    for x in [*values.tolist(), 0.0, 1e-8, 100.0, 0.1 + 0.2, 37915.2]:
        text = fmt(x)
        assert float(text) == x and "e" not in text.lower()
    assert fmt(100.0) == "100" and fmt(16649.5) == "16649.5"


def test_real_bars_round_trip_through_messages_and_rows():
    if not (real_linear_dir() / "1h").is_dir():
        pytest.skip(f"real Bybit data not found at {real_linear_dir()} (set BOT_DATA_DIR)")
    panel = load_panel(real_linear_dir(), ("BTCUSDT", "SOLUSDT"), "1h")
    for row in range(0, len(panel), 97):
        for s in range(2):
            if not panel.present[row, s]:
                continue
            o, h, low, c, v = panel.values[row, s].tolist()
            bar = BarValues(o, h, low, c, v, float("nan"))
            start = int(panel.starts[row])
            final = candle_state(bar, start, 3, 3, (7, s, start), TICK, QTY)
            data = kline_message("60", "X", final, HOUR, start + HOUR)["data"][0]
            assert [float(data[f]) for f in ("open", "high", "low", "close", "volume")] == [
                o,
                h,
                low,
                c,
                v,
            ]
            assert [float(x) for x in kline_row(final)[1:6]] == [o, h, low, c, v]


def test_message_has_bybit_s_shape():
    sample = json.loads(sample_text("ws_public_kline_1.jsonc"))
    bar = random_bars(1)[0]
    start = 1_672_324_800_000
    msg = kline_message("60", "BTCUSDT", life(bar, 3, start=start)[1], HOUR, start + 1200000)
    assert list(msg) == list(sample) and list(msg["data"][0]) == list(sample["data"][0])
    for key, value in sample["data"][0].items():
        assert type(msg["data"][0][key]) is type(value), key
    assert msg["data"][0]["end"] == start + HOUR - 1
    assert msg["topic"] == "kline.60.BTCUSDT" and msg["data"][0]["interval"] == "60"
    assert msg["ts"] == msg["data"][0]["timestamp"] == start + 1200000
    row = kline_row(life(bar, 3, start=start)[-1])
    assert row[0] == str(start) and all(isinstance(x, str) for x in row)
    assert not math.isnan(float(row[6]))
