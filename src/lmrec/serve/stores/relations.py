"""Knowledge-graph relations sent with ``PUT /items/{id}``, kept in the SQLite store beside the items.

The table ``item_relations`` holds one row per distinct ``(item, relation, target)``, numbered in write
order (``seq``). A relation PUT commits its rows in the same transaction as the item's new vector (the
``items`` row, `lmrec.serve.related.store_relations`); at start-up, and when a model swap builds a new
service, the rows are read back in ``seq`` order and join the served graph again
(`lmrec.serve.related.ItemRelations`). Rows are never rewritten: a repeated relation is ignored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from lmrec.serve.stores.sqlite import SQLiteStore

__all__ = ["RelationLog", "StoredRelation"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS item_relations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    relation TEXT NOT NULL,
    target TEXT NOT NULL,
    UNIQUE (item_id, relation, target)
);
"""

#: ``(seq, item id, relation, target)`` as stored
StoredRelation = tuple[int, str, str, str]


class RelationLog:
    """The ``item_relations`` table of a `SQLiteStore` (created when missing).

    Args:
        store: the service's SQLite store; writes go through its transactions (`SQLiteStore.write`).
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        with store.write() as tx:
            tx.execute(_SCHEMA)

    def put(self, tx: sqlite3.Connection, item_id: str, relations: Sequence[tuple[str, str]]) -> int:
        """Add an item's ``(relation, target)`` pairs inside the write transaction ``tx``.

        Returns:
            how many pairs were new (a pair already stored for the item is ignored).
        """
        before = tx.total_changes
        tx.executemany(
            "INSERT OR IGNORE INTO item_relations (item_id, relation, target) VALUES (?, ?, ?)",
            [(item_id, r, t) for r, t in relations],
        )
        return tx.total_changes - before

    def since(self, seq: int = 0) -> list[StoredRelation]:
        """Rows written after ``seq``, in write order."""
        rows = (
            self.store.connection()
            .execute("SELECT seq, item_id, relation, target FROM item_relations WHERE seq > ? ORDER BY seq", (seq,))
            .fetchall()
        )
        return [(int(s), str(i), str(r), str(t)) for s, i, r, t in rows]

    def of_item(self, item_id: str) -> list[tuple[str, str]]:
        """An item's stored ``(relation, target)`` pairs, in write order."""
        rows = (
            self.store.connection()
            .execute("SELECT relation, target FROM item_relations WHERE item_id = ? ORDER BY seq", (item_id,))
            .fetchall()
        )
        return [(str(r), str(t)) for r, t in rows]
