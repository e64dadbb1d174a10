"""The key, the secret and the signatures never reach a log line or an exception's text, at
DEBUG, through retries, 10004s that echo the signed origin string, messages that quote the key
URL-encoded and in base64, refused websocket auths and reconnects. No log filter is installed
here: the client itself must not emit them."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

import pytest

from bot.redact import encoded_forms
from bot.venues.bybit.credentials import Credentials
from bot.venues.bybit.private_errors import OrderError, Scrubber, safe_reason
from bot.venues.bybit.private_protocol import OrderRequest
from bot.venues.bybit.private_rest import TradingRest
from bot.venues.bybit.private_stream import PrivateStream
from bot.venues.bybit.rest_protocol import BybitError
from tests.venues.private_fake import FakePrivateBybit, serving

KEY = "LeakMarkerKeyQ7W3E9R1"
SECRET = "LeakMarkerSecretT5Y2U8I4"


def forms(*values: str) -> set[str]:
    found: set[str] = set()
    for value in values:
        found |= encoded_forms(value)
    return found


def exception_texts(errors: list[BaseException]) -> str:
    return "\n".join(
        f"{error}\n{error!r}\n" + "".join(traceback.format_exception(error)) for error in errors
    )


async def exercise(url: str, credentials: Credentials, errors: list[BaseException]) -> None:
    """Every call of the trading client, keeping whatever they raise."""
    order = OrderRequest("BTCUSDT", "Buy", "0.01", "leak-1")
    async with TradingRest(url, credentials, max_retries=2, backoff_base_s=0.01,
                           timeout_s=3.0) as rest:  # fmt: skip
        calls = [rest.key_info(), rest.wallet(), rest.positions(), rest.open_orders(),
                 rest.executions_since(1_700_000_000_000), rest.create_order(order),
                 rest.create_order(order), rest.cancel_order("BTCUSDT", "leak-1")]  # fmt: skip
        for call in calls:
            try:
                await call
            except (BybitError, OrderError) as exc:
                errors.append(exc)


async def test_no_secret_in_logs_or_exceptions_at_debug(caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="bot")  # a CLI test may have left "bot" at INFO
    errors: list[BaseException] = []
    # 1. the server knows another secret: every call is a 10004 echoing the origin string
    wrong = FakePrivateBybit(keys={KEY: "the-servers-idea-of-the-secret"})
    async with serving(wrong) as url:
        await exercise(url, Credentials(KEY, SECRET), errors)
    assert wrong.counters["bad_signature"] >= 8
    assert any("retCode 10004" in str(e) for e in errors)

    # 2. the right secret, through every fault kind and key-quoting messages
    bybit = FakePrivateBybit(keys={KEY: SECRET}, skew_ms=30_000)  # a 10002 first
    bybit.faults["account/wallet-balance"].extend(["10006", "echo:10001"])
    bybit.faults["position/list"].extend(["502", "10016", "echo:10003"])
    bybit.faults["order/create"].extend(["echo:110007", "accept_then_reset"])
    bybit.faults["user/query-api"].append("slow")
    async with serving(bybit) as url:
        await exercise(url, Credentials(KEY, SECRET), errors)
        signatures = [s.headers["X-BAPI-SIGN"] for s in bybit.seen]
        # the private stream: one refused auth, then a session, then a server-side close
        bybit.ws_auth_fail.append(True)
        received: list[object] = []

        async def sink(record: object) -> None:
            received.append(record)

        ws_url = url.replace("http", "ws") + "/v5/private"
        clock = TradingRest(url, Credentials(KEY, SECRET))
        async with clock:
            await clock.sync_time()  # auth `expires` on Bybit's clock, 30 s ahead of ours
        stream = PrivateStream(ws_url, Credentials(KEY, SECRET), sink, reconnect_initial_s=0.05,
                               reconnect_max_s=0.1, ping_interval_s=0.05, epoch_ms=clock.now_ms,
                               seed=3)  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(stream.run(stop))
        deadline = time.monotonic() + 60
        while bybit.counters["ws_auth_ok"] < 1 or bybit.counters["ws_pings"] < 2:
            assert time.monotonic() < deadline, "the stream did not authenticate in time"
            await asyncio.sleep(0.02)
        await bybit.drop_connection()
        while bybit.counters["ws_auth_ok"] < 2:
            assert time.monotonic() < deadline, "the stream did not come back in time"
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 30)
    assert stream.stats["auth_failures"] == 1 and len(bybit.ws_signatures) == 3
    assert {"echo:10001", "echo:10003", "echo:110007"}.isdisjoint(
        f for queue in bybit.faults.values() for f in queue
    )  # every key-quoting answer was served

    logs = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    shown = logs + "\n" + exception_texts(errors)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert "retry" in logs and len(errors) >= 10
    leaked = {
        form for form in forms(KEY, SECRET, *signatures, *bybit.ws_signatures) if form in shown
    }
    assert leaked == set()
    assert "***" in shown or "withheld" in shown  # the messages that quoted it were scrubbed


@pytest.mark.parametrize(
    "message",
    ["error sign! origin_string[1700000000000LeakMarkerKeyQ7W3E9R15000category=linear]",
     'Error sign, please check your signature generation algorithm: origin_string[***{"a":1}]'],
)  # fmt: skip
def test_both_known_10004_shapes_are_withheld(message: str):
    assert "LeakMarker" not in safe_reason(10004, message, Scrubber(KEY))
    assert "LeakMarker" not in safe_reason(10001, message, Scrubber(KEY))
    assert "origin" not in Scrubber()(message).split("withheld")[0].replace("origin string", "")
