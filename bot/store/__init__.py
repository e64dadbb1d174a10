"""The SQL store (SQLite or PostgreSQL through SQLAlchemy): runs, klines and run journals."""

from bot.store.journal import StoreJournal
from bot.store.ledger import Execution, LastExecution, PositionAfter
from bot.store.store import Store

__all__ = ["Execution", "LastExecution", "PositionAfter", "Store", "StoreJournal"]
