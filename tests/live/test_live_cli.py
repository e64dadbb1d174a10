"""``bot live`` against the local exchange: the rails that come before any order.

Without ``--confirm`` nothing at all reaches the exchange (its request counters stay at zero);
mainnet needs a second, separate yes; keys come from the environment only and never from the
config; a key that can withdraw, a read-only key, an account without UTA or in hedge mode is
refused before trading; ``--check`` reads, reconciles and prints what it would place, and
sends no order; ``bot live halt`` records the halt for the run's daemon; and a confirmed run
trades the account through the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main
from bot.config import MAINNET_TOKEN, parse_settings
from bot.core.timeutil import HOUR_MS
from bot.exchange.server import ExchangeServer
from bot.store import Store
from tests.exchange.harness import server_thread

SYMBOLS = ["AAAUSDT", "BBBUSDT"]
START = 1_706_745_600_000 + 30 * 24 * HOUR_MS
KEY, SECRET = "cliTESTkey0123456", "cliTESTsecret0123456"
KEY_ENV, SECRET_ENV = "BOT_TEST_LIVE_KEY", "BOT_TEST_LIVE_SECRET"


def exchange_settings(tmp_path: Path, **account: Any):
    return parse_settings(
        {
            "engine": {"symbols": SYMBOLS, "interval": "1h"},
            "data": {"source": "synthetic", "synthetic_bars": 24 * 90, "synthetic_seed": 3,
                     "funding": False},
            "strategies": [{"name": "equal_weight"}],
            "instruments": {s: {"qty_step": 0.01, "tick_size": 0.01} for s in SYMBOLS},
            "exchange": {
                "port": 0, "speed": 3600 / 0.2, "source": "synthetic", "seed": 4,
                "start": str(START),
                "accounts": [{"name": "bot", "api_key": KEY, "api_secret": SECRET,
                              "balance": 100_000.0, **account}],
            },
        },
        "test",
    )  # fmt: skip


@contextmanager
def local_exchange(tmp_path: Path, **account: Any) -> Iterator[ExchangeServer]:
    with server_thread(exchange_settings(tmp_path, **account)) as server:
        yield server


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_config(tmp_path: Path, port: int, live: dict[str, Any] | None = None,
                 until_hours: int = 4) -> Path:  # fmt: skip
    """The user's config.toml for ``bot live`` on the exchange at ``port``."""
    tables: dict[str, dict[str, Any]] = {
        "engine": {"symbols": SYMBOLS, "interval": "1h"},
        "data": {"source": "synthetic", "funding": False},
        "portfolio": {"initial_cash": 10_000.0},
        "store": {"url": f"sqlite:///{tmp_path / 'bot.db'}"},
        "venue": {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2, "max_retries": 2},
        "paper": {"heartbeat_s": 5.0, "until": str(START + until_hours * HOUR_MS)},
        "exchange": {"port": port},
        "live": {"target": "local", "key_env": KEY_ENV, "secret_env": SECRET_ENV,
                 "settle_timeout_s": 1.0, **(live or {})},
        **{f"instruments.{s}": {"qty_step": 0.01, "tick_size": 0.01} for s in SYMBOLS},
    }  # fmt: skip
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    lines += ["[[strategies]]", 'name = "equal_weight"']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)


def live(config: Path, *args: str) -> int:
    return main(["--config", str(config), "live", *args])


def private_traffic(server: ExchangeServer) -> tuple[int, int, int]:
    """(private REST requests, order creates and cancels, private websockets) so far."""
    member = server.state.private.members["bot"]
    return server.state.private.requests, member.order_requests, member.stats.ws_connections


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("bot: ") and err.count("\n") == 1, err
    return err


def test_without_confirm_not_one_private_request_is_sent(tmp_path, keys, capsys):
    with local_exchange(tmp_path) as server:
        config = write_config(tmp_path, server.port)
        assert live(config, "--new") == 2
        err = one_error_line(capsys)
        assert "--confirm" in err and "--check" in err
        assert private_traffic(server) == (0, 0, 0)
        assert not (tmp_path / "bot.db").exists()  # no run was opened either


def test_mainnet_needs_a_second_explicit_yes(tmp_path, keys, capsys):
    config = write_config(tmp_path, 1, {"target": "mainnet"})
    assert live(config, "--confirm") == 2
    err = one_error_line(capsys)
    assert "live.allow_mainnet" in err and f"--mainnet {MAINNET_TOKEN}" in err
    assert live(config, "--confirm", "--mainnet", "yes") == 2
    assert "a different value" in one_error_line(capsys)
    testnet = write_config(tmp_path, 1, {"target": "testnet"})
    assert live(testnet, "--confirm", "--mainnet", MAINNET_TOKEN) == 2  # not what was meant
    assert "not 'mainnet'" in one_error_line(capsys)


def test_keys_are_refused_in_the_config_and_read_from_the_environment(
    tmp_path, monkeypatch, capsys
):
    config = write_config(tmp_path, 1, {"api_secret": "hunter2PASTEDsecret"})
    assert live(config, "--confirm") == 2
    err = one_error_line(capsys)
    assert "'api_secret'" in err and "environment" in err and "hunter2" not in err
    pasted = write_config(tmp_path, 1, {"key_env": "xPASTEDkeyVALUE9"})
    assert live(pasted, "--confirm") == 2
    err = one_error_line(capsys)
    assert "live.key_env" in err and "PASTEDkey" not in err
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert live(write_config(tmp_path, 1), "--confirm") == 2
    assert f"environment variable {KEY_ENV} is not set" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("account", "args", "refusal"),
    [
        ({"withdraw": True}, ("--check",), "Withdraw permission"),
        ({"withdraw": True}, ("--confirm", "--new"), "Withdraw permission"),
        ({"read_only": True}, ("--confirm", "--new"), "read-only"),
        ({"uta": False}, ("--check",), "not a unified trading account"),
        ({"position_mode": "hedge"}, ("--confirm", "--new"), "hedge mode"),
    ],
)
def test_an_account_the_bot_must_not_trade_is_refused_before_any_order(
    tmp_path, keys, capsys, account, args, refusal
):
    with local_exchange(tmp_path, **account) as server:
        assert live(write_config(tmp_path, server.port), *args) == 2
        assert refusal in one_error_line(capsys)
        requests, orders, sockets = private_traffic(server)
        assert requests >= 1 and orders == 0 and sockets == 0  # it read, and only read


@pytest.mark.slow
def test_check_prints_the_account_and_the_orders_it_would_place_and_sends_none(
    tmp_path, keys, capsys
):
    with local_exchange(tmp_path, read_only=True) as server:  # --check needs no more
        server.state.private.manual_order("bot", "AAAUSDT", "Buy", None)
        assert live(write_config(tmp_path, server.port), "--check") == 0
        out = capsys.readouterr().out
        assert "account: equity" in out and "key read-only: True" in out
        assert "position AAAUSDT:" in out
        # equal weight over two symbols from a long AAA position: buys BBB at least
        assert "would place: Buy" in out and "BBBUSDT" in out
        _, orders, sockets = private_traffic(server)
        manual = 1  # the operator's order above is not a request of the bot's
        assert orders == manual - 1 and sockets == 0
        assert len(server.state.private.members["bot"].account.orders) == manual


def test_halt_by_hand_is_recorded_for_the_run_and_unknown_runs_are_named(tmp_path, capsys):
    config = write_config(tmp_path, 1)
    with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        store.create_run(
            run_id="h" * 16, kind="live", strategy="equal_weight", symbols=SYMBOLS,
            interval="1h", config={}, code_version="t", started_at=1, data_start=0,
        )  # fmt: skip
    assert live(config, "halt", "--run", "h" * 16) == 0
    assert "halt requested for live run" in capsys.readouterr().out
    with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        assert [e["kind"] for e in store.events("h" * 16)] == ["halt_requested"]
    assert live(config, "halt", "--run", "nope") == 2
    assert "no live run 'nope'" in one_error_line(capsys)
    assert live(config, "halt") == 2
    assert "--run RUN_ID" in one_error_line(capsys)


@pytest.mark.slow
def test_a_confirmed_run_trades_the_account_through_the_command_line(tmp_path, keys, capsys):
    with local_exchange(tmp_path) as server:
        config = write_config(tmp_path, server.port, {"max_orders_per_minute": 100})
        assert live(config, "--confirm", "--new") == 0
        account = server.state.private.members["bot"].account
        assert account.orders and all(o.link_id for o in account.orders.values())
        with Store(f"sqlite:///{tmp_path / 'bot.db'}") as store:
            [run] = store.list_runs()
            assert run["kind"] == "live"
            stored = sorted(f["exec_id"] for f in store.fills(run["id"]))
            assert stored == sorted(e.exec_id for e in account.executions)
            held = {p.symbol: float(p.size) for p in account.positions.values() if p.size}
            assert set(held) == set(SYMBOLS)  # equal weight: both held
        # --check --run: the run's books against the account, the wallet's change included
        capsys.readouterr()
        assert live(config, "--check", "--run", run["id"]) == 0
        out = capsys.readouterr().out
        assert "its books equal the exchange's positions" in out
        assert "moved as the run's books say" in out
        account.wallet += Decimal("7")  # a transfer in
        assert live(config, "--check", "--run", run["id"]) == 0
        assert "(+7.0000: money moved outside the run" in capsys.readouterr().out
