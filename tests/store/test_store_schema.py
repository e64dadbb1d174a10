"""Migrations build exactly the schema that ``bot.store.schema`` describes, on both backends."""

from __future__ import annotations

import io
import logging
import multiprocessing

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import mysql

from bot.store import Store
from bot.store.migrate import alembic_config
from bot.store.schema import metadata
from bot.store.writes import Writes

TABLES = {"runs", "klines", "decisions", "orders", "fills", "positions", "equity", "events"}


def schema_diffs(url: str) -> list:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_opening_migrates_to_head_and_matches_metadata(store: Store, db_url: str) -> None:
    assert set(sa.inspect(store.engine).get_table_names()) >= TABLES
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert current_revision(store.engine) == head
    assert schema_diffs(db_url) == []


def test_reopening_keeps_data(store: Store, db_url: str, run_id: str) -> None:
    store.close()
    with Store(db_url) as again:
        assert again.get_run(run_id)["strategy"] == "momentum"


def test_env_runs_from_a_url_and_downgrades(db_url: str) -> None:
    config = alembic_config(db_url)
    command.upgrade(config, "head")
    assert schema_diffs(db_url) == []
    command.downgrade(config, "base")
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    try:
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_offline_mode_prints_the_ddl() -> None:
    config = alembic_config("postgresql+psycopg://nobody@nowhere/none")
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    ddl = config.output_buffer.getvalue()
    assert "CREATE TABLE runs" in ddl
    assert "DOUBLE PRECISION" in ddl


def test_sqlite_file_gets_its_directory_and_pragmas(tmp_path) -> None:
    path = tmp_path / "nested" / "dir" / "bot.db"
    with Store(f"sqlite:///{path}") as store, store.engine.connect() as conn:
        assert path.exists()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@pytest.mark.postgres
def test_password_is_never_logged(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    url = sa.make_url(postgres_url).set(password="s3cret")  # trust auth ignores it
    caplog.set_level(logging.DEBUG)
    with Store(url) as store:
        assert "s3cret" not in repr(store)
    assert "store open" in caplog.text
    assert "s3cret" not in caplog.text


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(NotImplementedError, match="SQLite and PostgreSQL"):
        Writes(mysql.dialect())


def _open_and_close(url: str) -> None:
    Store(url).close()


def test_processes_opening_a_fresh_database_together_migrate_once(db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        pool.map(_open_and_close, [db_url] * 3)
    assert schema_diffs(db_url) == []
