"""Fixtures running every store test on SQLite and on PostgreSQL.

PostgreSQL comes from ``BOT_TEST_POSTGRES_URL`` (default: a local server with trust auth). The
session creates its own throwaway database there, so parallel sessions never collide, and every
test starts from an empty schema on both backends. Without a reachable server the PostgreSQL
cases skip, unless ``BOT_REQUIRE_POSTGRES=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bot.store import Store

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this session, dropped (``FORCE``) at its end."""
    base = sa.make_url(os.environ.get("BOT_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    name = f"bot_test_{secrets.token_hex(6)}"
    try:
        admin = sa.create_engine(
            base,
            isolation_level="AUTOCOMMIT",
            poolclass=sa.NullPool,
            connect_args={"connect_timeout": 5},
        )
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except (sa.exc.OperationalError, ImportError) as exc:
        cause = str(getattr(exc, "orig", exc)).splitlines()[0]
        reason = f"PostgreSQL at {base.render_as_string(hide_password=True)} unusable: {cause}"
        if os.environ.get("BOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (BOT_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """URL of an empty database (no tables, not even Alembic's) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as opened:
        yield opened


RUN_ID = "0123456789abcdef"


@pytest.fixture
def run_id(store: Store) -> str:
    """A running backtest in ``store``."""
    store.create_run(
        run_id=RUN_ID,
        kind="backtest",
        strategy="momentum",
        symbols=["BTCUSDT", "ETHUSDT"],
        interval="1h",
        config={"fees": {"taker": 0.00055}},
        code_version="test",
        started_at=1_700_000_000_000,
    )
    return RUN_ID
