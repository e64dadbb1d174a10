"""The daemon against a hostile peer: every malformed, impossible, foreign or future frame is
counted and dropped, forged-but-plausible closes are corrected from the venue's REST record,
the daemon lives to its end, the store holds exactly the venue's bars, and a restart rebuilds
the run's state exactly (its replay decides as the run did, corrections included)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from bot.config import load_settings
from bot.core.timeutil import HOUR_MS, iso, to_ms
from bot.store import Store
from tests.e2e.harness import SYMBOLS, bot, start_exchange, stop, write_config
from tests.hostile.proxy import HostileProxy

pytestmark = pytest.mark.slow

START = to_ms("2024-04-01")
BARS = 600
FORGED_SYMBOL = "ETHUSDT"


def forge_some_closes(message: dict) -> dict | None:
    """Rewrite every 37th hourly close of one symbol: close := low (or high), a value the bar
    could have had but did not."""
    if message.get("topic") != f"kline.60.{FORGED_SYMBOL}":
        return None
    item = message["data"][0]
    if not item["confirm"] or (item["start"] // HOUR_MS) % 37:
        return None
    fake = item["low"] if item["low"] != item["close"] else item["high"]
    if fake == item["close"]:
        return None
    return {**message, "data": [{**item, "close": fake}]}


def exchange_port(config: Path) -> str:
    return re.search(r"(?m)^port = (\d+)$", config.read_text()).group(1)


def through_proxy(config: Path, proxy_url: str) -> None:
    """REST straight to the exchange, the websocket through the proxy, order books on."""
    venue = (f'[venue]\ntarget = "bybit"\nrest_url = "http://127.0.0.1:{exchange_port(config)}"'
             f'\nws_url = "{proxy_url}"\norderbook_depth = 50\ncatchup_s = 5.0\n')  # fmt: skip
    config.write_text(config.read_text().replace('[venue]\ntarget = "local"\n', venue))


def test_a_hostile_feed_changes_nothing_the_daemon_stores(tmp_path, linear_dir):
    until = START + BARS * HOUR_MS
    config = write_config(tmp_path, linear_dir, iso(START).replace(" ", "T"),
                          iso(until).replace(" ", "T"), 3600 / 0.1, "")  # fmt: skip
    exchange = start_exchange(config, tmp_path / "exchange.log")
    log = tmp_path / "daemon.log"
    upstream = f"ws://127.0.0.1:{exchange_port(config)}/v5/public/linear"
    try:
        with HostileProxy(upstream, SYMBOLS, 50, every=40, forge=forge_some_closes) as proxy:
            through_proxy(config, proxy.url)
            daemon = bot(config, "paper", "--new", log=log)
            assert daemon.wait(300) == 0, log.read_text()[-3000:]
            assert proxy.counts["hostile"] > 50 and proxy.counts["forged"] >= 3, proxy.counts
            text = log.read_text()
            signs = ("dropped a malformed message", "refused bar", "orderbook.50",
                     "dated after the venue's clock", "the venue's record differs")  # fmt: skip
            for sign in signs:
                assert sign in text, f"no {sign!r} in the daemon's log"
            assert "Traceback" not in text

            # a restart replays the run, corrections included, exactly as it was decided
            later = until + 48 * HOUR_MS
            config.write_text(
                config.read_text().replace(
                    f'until = "{iso(until).replace(" ", "T")}"',
                    f'until = "{iso(later).replace(" ", "T")}"',
                )
            )
            again = bot(config, "paper", log=log)
            assert again.wait(300) == 0, log.read_text()[-3000:]
    finally:
        stop(exchange)
    replays = re.findall(r"decisions as journaled, (\d+) diverged", log.read_text())
    assert replays == ["0"]

    settings = load_settings(config)
    with Store(settings.store.url) as store:
        (run,) = store.list_runs()
        assert run["last_step"] == later
        corrected = [e for e in store.events(run["id"]) if e["kind"] == "bar_corrected"]
        assert corrected and {e["detail"]["symbol"] for e in corrected} == {FORGED_SYMBOL}
        for symbol in SYMBOLS:  # exactly the venue's bars, value for value
            stored = store.load_klines(symbol, "1h", run["data_start"], run["last_step"])
            source = pd.read_csv(linear_dir / "1h" / f"{symbol}.csv")
            source = source[(source.timestamp_ms >= run["data_start"])
                            & (source.timestamp_ms < run["last_step"])]  # fmt: skip
            assert stored["start"].tolist() == source["timestamp_ms"].tolist(), symbol
            for field in ("open", "high", "low", "close", "volume"):
                assert stored[field].tolist() == source[field].tolist(), (symbol, field)
