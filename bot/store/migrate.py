"""Schema migrations, run from code: the store upgrades its database to head when it opens.

The Alembic environment ships inside the package (``migrations/``), so an installed bot needs
no ``alembic.ini``: :func:`alembic_config` builds the configuration in code. Developers use the
same function to write new revisions::

    from alembic import command
    from bot.store.migrate import alembic_config
    command.revision(alembic_config("sqlite:///dev.db"), "add x", autogenerate=True)
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from bot.store.connect import SERIALIZED

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for the package's migrations, bound to a URL or to an open connection
    (``env.py`` prefers the connection, so a caller's transaction and pragmas carry over)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser escaping
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` in one transaction (a no-op when already there).

    The transaction holds the database's write lock from its start: two processes opening a
    fresh database together would otherwise both see it empty and both create the tables.
    """
    with engine.connect() as connection:
        connection.execution_options(**{SERIALIZED: True})
        with connection.begin():
            command.upgrade(alembic_config(connection=connection), revision)
