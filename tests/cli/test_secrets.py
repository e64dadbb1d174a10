"""End to end: a password or key given to the bot appears in no output, log line or table.

A unique marker is the password of the store (as userinfo *and* as ``?password=``, which
psycopg accepts too) and the credential of the venue URLs; the real CLI backtests with DEBUG
logging, shows and lists the run, and then everything it printed, logged, wrote as a report and
stored in every table of the database is searched for the marker in each encoding a secret
travels in. PostgreSQL runs as in ``tests/store`` (trust auth: any password is accepted).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa

from bot.cli.main import main
from tests.conftest import ROOT
from tests.store import conftest as store_fixtures

#: The session's throwaway PostgreSQL database (skips without a server unless CI requires it).
postgres_url = store_fixtures.postgres_url

CONFIG = """
[engine]
symbols = ["AAAUSDT", "BBBUSDT"]
interval = "1h"
[data]
source = "synthetic"
synthetic_bars = 400
[store]
url = "sqlite:///state/bot.db"
[venue]
rest_url = "https://bot:{q}@proxy.example/bybit?api_key={qp}&category=linear"
ws_url = "wss://{q}@proxy.example/v5/public/linear?token={qp}"
[[strategies]]
name = "momentum"
params = {{ lookback = 24, top = 1, rebalance = "1d" }}
[instruments.AAAUSDT]
qty_step = 0.01
[instruments.BBBUSDT]
qty_step = 0.01
"""


def new_marker() -> str:
    """A password no run could contain by chance, with the characters URLs and JSON encode."""
    return f"Mk{os.urandom(6).hex()}@/+ é:#"


def leaked_forms(marker: str) -> dict[str, str]:
    """The marker in every encoding a secret typically travels in. Its alphanumeric core comes
    first: any encoding that keeps ASCII letters (raw, percent, JSON) contains it."""
    raw = marker.encode()
    return {
        "core": marker[:14],
        "raw": marker,
        "quote": quote(marker, safe=""),
        "quote_plus": quote_plus(marker),
        "json": json.dumps(marker)[1:-1],
        "b64": base64.b64encode(raw).decode().rstrip("="),
        "b64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
    }


def assert_no_leak(marker: str, where: str, text: str | bytes) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for name, form in leaked_forms(marker).items():
        assert form not in text, f"the secret leaked into {where} ({name}: {form!r})"


def write_config(folder: Path, marker: str) -> Path:
    path = folder / "config.toml"
    path.write_text(CONFIG.format(q=quote(marker, safe=""), qp=quote_plus(marker)))
    return path


def table_dump(url: str) -> str:
    """Every value of every row of every table in the database, as text."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            rows = {
                name: [row._asdict() for row in conn.execute(sa.select(table))]
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()
    assert rows["runs"], "the backtest recorded no run"

    def text(value: Any) -> str:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return json.dumps(value, default=str, ensure_ascii=False)

    return "\n".join(f"{name}: {text(row)}" for name, table in rows.items() for row in table)


def run_cli(config: Path, capsys, *args: str) -> str:
    """The CLI in this process with DEBUG logging; its stdout, stderr and log records."""
    assert main(["-v", "-v", "--config", str(config), *args]) == 0
    out = capsys.readouterr()
    return out.out + out.err


def backtest_show_and_list(folder: Path, marker: str, caplog, capsys) -> tuple[str, str, str]:
    """Backtest, ``runs show --json`` and ``runs list``; returns (run id, everything shown,
    the JSON of ``runs show``)."""
    config = write_config(folder, marker)
    caplog.set_level(logging.DEBUG)
    report = folder / "report.json"
    shown = run_cli(config, capsys, "backtest", "--source", "synthetic", "--no-progress",
                    "--json", str(report))  # fmt: skip
    run_id = json.loads(report.read_text())["run_id"]
    details = run_cli(config, capsys, "runs", "show", run_id, "--json")
    shown += details + run_cli(config, capsys, "runs", "list")
    assert run_id in shown
    # the filter main() installed is on the handlers, for whatever logs afterwards
    logging.getLogger("bot.test").debug("a late log line with %s in it", marker)
    everything = shown + caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert_no_leak(marker, "a report", report.read_text())
    return run_id, everything, details


@pytest.mark.postgres
def test_no_secret_leaks_with_a_postgresql_store(postgres_url, tmp_path, monkeypatch, caplog,
                                                 capsys):  # fmt: skip
    marker = new_marker()
    base = sa.make_url(postgres_url)
    engine = sa.create_engine(base, poolclass=sa.NullPool)
    with engine.begin() as conn:  # the session's database, emptied: only this test's rows
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    secret_url = (
        f"postgresql+psycopg://postgres:{quote(marker, safe='')}@{base.host}:{base.port}/"
        f"{base.database}?password={quote_plus(marker)}"
    )
    monkeypatch.setenv("BOT_STORE_URL", secret_url)

    run_id, everything, details = backtest_show_and_list(tmp_path, marker, caplog, capsys)
    assert_no_leak(marker, "the output and the logs", everything)
    assert "store open" in caplog.text
    assert "postgresql+psycopg://postgres:***@127.0.0.1:5432/" in caplog.text
    config = json.loads(details)["config"]
    assert config["store"]["url"].startswith("postgresql+psycopg://postgres:***@")
    assert config["store"]["url"].endswith("?password=***")
    assert config["venue"]["rest_url"] == (
        "https://bot:***@proxy.example/bybit?api_key=***&category=linear"
    )
    assert config["venue"]["ws_url"] == "wss://***@proxy.example/v5/public/linear?token=***"
    assert_no_leak(marker, "the database", table_dump(postgres_url))

    # and as a separate process, where logging.basicConfig writes DEBUG lines to stderr
    env = {**os.environ, "BOT_STORE_URL": secret_url}
    config_path = str(tmp_path / "config.toml")
    for args in (["backtest", "--source", "synthetic", "--no-progress"],
                 ["runs", "show", run_id[:8], "--json"]):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "bot", "-v", "-v", "--config", config_path, *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "DEBUG" in done.stderr or "INFO" in done.stderr
        assert_no_leak(marker, f"bot {args[0]}'s stdout", done.stdout)
        assert_no_leak(marker, f"bot {args[0]}'s stderr", done.stderr)
    assert_no_leak(marker, "the database", table_dump(postgres_url))


def test_no_venue_secret_leaks_with_a_sqlite_store(tmp_path, monkeypatch, caplog, capsys):
    marker = new_marker()
    monkeypatch.delenv("BOT_STORE_URL", raising=False)
    _, everything, details = backtest_show_and_list(tmp_path, marker, caplog, capsys)
    assert_no_leak(marker, "the output and the logs", everything)
    config = json.loads(details)["config"]
    assert config["store"]["url"] == f"sqlite:///{tmp_path / 'state' / 'bot.db'}"
    assert config["venue"]["ws_url"] == "wss://***@proxy.example/v5/public/linear?token=***"
    db = tmp_path / "state" / "bot.db"
    assert_no_leak(marker, "the database", table_dump(f"sqlite:///{db}"))
    assert_no_leak(marker, "the database file", db.read_bytes())
