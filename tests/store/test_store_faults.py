"""Store faults are named in one line, never tracebacks: databases that cannot be opened,
writes locked by another process (retried, then given up), databases deleted or replaced."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.store import Store
from bot.store.faults import StoreGoneError, StoreOpenError, StoreUnavailableError

PASSWORD = "s3cr3t-Pa55"


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    with pytest.raises(StoreOpenError) as caught:
        Store(f"sqlite:///{path}")
    assert str(caught.value) == f"cannot open store sqlite:///{path}: file is not a database"


def test_a_folder_nobody_can_write_into(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder should be")
    with pytest.raises(StoreOpenError, match=r"cannot open store sqlite:///.*file/bot\.db: "):
        Store(f"sqlite:///{blocked / 'bot.db'}")


def test_a_read_only_database_can_be_read_and_refuses_writes_in_one_line(tmp_path: Path):
    path = tmp_path / "bot.db"
    Store(f"sqlite:///{path}").close()
    with Store(f"sqlite:///file:{path}?mode=ro&uri=true") as store:
        assert store.list_runs() == []  # `bot runs list` works on a read-only database
        with pytest.raises(StoreUnavailableError) as caught:
            store.upsert_funding("BTCUSDT", [1], [0.0001])
    text = str(caught.value)
    assert "storing funding failed: attempt to write a readonly database" in text
    assert "\n" not in text


def test_a_new_database_in_read_only_mode_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match="unable to open database file"):
        Store(f"sqlite:///file:{tmp_path / 'none.db'}?mode=ro&uri=true")


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    url = f"postgresql+psycopg://bot:{PASSWORD}@127.0.0.1:1/db?password={PASSWORD}"
    with pytest.raises(StoreOpenError) as caught:
        Store(url, lock_timeout_s=2.0)  # retried this long (a minute by default), then named
    text = str(caught.value)
    assert text.startswith("cannot open store postgresql+psycopg://bot:***@127.0.0.1:1/db")
    assert PASSWORD not in text and "\n" not in text


def test_a_database_newer_than_this_code(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    Store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(StoreOpenError, match="Can't locate revision identified by '9999'"):
        Store(url)


def hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    """Another 'process' (connection) holding SQLite's write lock for ``seconds`` (it waits
    for a write in progress to end before taking it)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    time.sleep(seconds)
    conn.execute("ROLLBACK")
    conn.close()


def test_a_locked_database_is_retried_with_a_log_line_then_works(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="bot.store")
    path = tmp_path / "bot.db"
    store = Store(f"sqlite:///{path}", lock_timeout_s=60)
    held = threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(path, 3.0, held))
    locker.start()
    held.wait(10)
    store.upsert_funding("BTCUSDT", [1], [0.0001])  # waits the lock out
    locker.join()
    assert store.load_funding(["BTCUSDT"])["BTCUSDT"][1].tolist() == [0.0001]
    waits = [r.getMessage() for r in caplog.records if "database is locked" in r.getMessage()]
    assert waits and "storing funding" in waits[0] and "retry 1" in waits[0]
    store.close()


def test_a_database_locked_for_too_long_gives_up_in_one_line(tmp_path):
    path = tmp_path / "bot.db"
    store = Store(f"sqlite:///{path}", lock_timeout_s=1.0)
    held = threading.Event()
    locker = threading.Thread(target=hold_write_lock, args=(path, 8.0, held))
    locker.start()
    held.wait(10)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            store.upsert_funding("BTCUSDT", [1], [0.0001])
    finally:
        locker.join()
        store.close()
    text = str(caught.value)
    assert "storing funding failed" in text and "database is locked" in text
    assert "giving up" in text and "\n" not in text


def test_a_deleted_database_file_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = Store(f"sqlite:///{path}")
    store.check_alive()
    path.unlink()
    with pytest.raises(StoreGoneError, match="the database file was deleted"):
        store.check_alive(deep=False)
    store.close()


def test_a_replaced_database_file_is_noticed(tmp_path: Path) -> None:
    path, other = tmp_path / "bot.db", tmp_path / "other.db"
    store = Store(f"sqlite:///{path}")
    Store(f"sqlite:///{other}").close()
    shutil.move(other, path)  # a restore from backup, another file copied over it
    with pytest.raises(StoreGoneError, match="replaced"):
        store.check_alive(deep=False)
    store.close()


def test_a_database_recreated_under_the_same_name_is_noticed(db_url: str) -> None:
    store = Store(db_url)
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE store_meta SET store_id = 'another'")
    engine.dispose()
    with pytest.raises(StoreGoneError, match="a different database"):
        store.check_alive()
    store.close()
