"""APScheduler triggers evaluated on the engine clock."""

import numpy as np
import pytest

from bot.core.scheduler import ClockScheduler, parse_trigger
from bot.core.timeutil import DAY_MS, HOUR_MS, MINUTE_MS, to_ms
from bot.feeds.synthetic import synthetic_panel
from strategies.baselines.equal_weight import EqualWeight
from tests.enginekit import make_engine, replay

START = to_ms("2024-03-01 00:00")


@pytest.mark.parametrize("block_rows", [8192, 50, 1])
def test_jobs_fire_at_the_expected_simulated_instants_with_the_state_as_of_then(block_rows):
    panel = synthetic_panel(("AAAUSDT", "BBBUSDT"), "15m", 4 * 24 * 3 + 5, start_ms=START)
    scheduler = ClockScheduler(keep_history=True)
    seen: list[tuple[int, float]] = []
    engine, _ = make_engine(
        panel, [EqualWeight(("AAAUSDT", "BBBUSDT"), "15m", rebalance="bar")],
        interval="15m", block_rows=block_rows, scheduler=scheduler,
    )  # fmt: skip
    scheduler.add_job("snap", "every 90m", lambda t: seen.append((t, engine.portfolio.equity)))
    scheduler.add_job("daily", "cron 0 0 * * *", lambda t: None)
    scheduler.add_job("eight", "cron 30 */8 * * *", lambda t: None)
    replay(engine, panel)

    last_close = int(panel.starts[-1]) + 15 * MINUTE_MS  # 3 days and 5 bars later
    expected_snap = list(range(START, last_close + 1, 90 * MINUTE_MS))
    assert scheduler.history("snap") == expected_snap
    assert scheduler.history("daily") == [START, START + DAY_MS, START + 2 * DAY_MS,
                                          START + 3 * DAY_MS]  # fmt: skip
    eights = [
        START + d * DAY_MS + h * HOUR_MS + 30 * MINUTE_MS for d in range(4) for h in (0, 8, 16)
    ]
    assert scheduler.history("eight") == [t for t in eights if t <= last_close]
    assert scheduler.history("eight")[-1] == START + 3 * DAY_MS + 30 * MINUTE_MS
    times, equity = engine.equity_curve()
    for fire_time, observed in seen:
        if fire_time < times[0]:
            assert observed == engine.portfolio.initial_cash  # before the first close
        else:  # equity at the last close at or before the fire time
            assert observed == equity[np.searchsorted(times, fire_time, side="right") - 1]


def test_trigger_specs():
    with pytest.raises(ValueError, match="every <interval>"):
        parse_trigger("hourly")
    with pytest.raises(ValueError):
        parse_trigger("cron 99 * * * *")
    with pytest.raises(ValueError):
        parse_trigger("every 7x")
