"""Stores of the service: the SQLite event log and the profile stores (SQLite or Redis)."""

from lmrec.serve.stores.base import (
    Event,
    ItemRecord,
    Profile,
    ProfileStore,
    StoredEvent,
    UserRecord,
)
from lmrec.serve.stores.sqlite import SQLiteProfileStore, SQLiteStore

__all__ = [
    "Event",
    "ItemRecord",
    "Profile",
    "ProfileStore",
    "SQLiteProfileStore",
    "SQLiteStore",
    "StoredEvent",
    "UserRecord",
]
