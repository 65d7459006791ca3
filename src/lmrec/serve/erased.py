"""The users a service has erased, read from its state directory for the next training run.

``DELETE /users/{id}`` deletes a user's logged events at once. Every erased id leaves its SHA-256
digest in the ``erased`` table (the database keeps no readable id of an erased user the model never
saw), and for a user the served model was trained on, also an erasure marker (``users.forgotten``)
so the service stops using what the model learned about them. The model forgets them only when it
is retrained without them: ``lmrec train --exclude-erased STATE_DIR`` reads both here (read-only; a
running service is not disturbed) and drops every matching user and all their rows before training.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lmrec.serve.loading import DB_NAME
from lmrec.serve.stores.sqlite import erasure_hash

__all__ = ["ErasedUsers", "erased_user_ids", "erased_users"]


@dataclass(frozen=True)
class ErasedUsers:
    """What a service's state says about erased users.

    Attributes:
        ids: readable ids of erased users the served model knew (their ``forgotten`` markers).
        hashes: `erasure_hash` digests of every erased id.
    """

    ids: frozenset[str]
    hashes: frozenset[str]

    def __len__(self) -> int:
        """How many distinct users were erased (markers without a digest come from older states)."""
        return len(self.hashes | {erasure_hash(u) for u in self.ids})

    def matching(self, user_ids: Iterable[str]) -> set[str]:
        """The ids among ``user_ids`` that were erased (by readable marker or by digest)."""
        return {u for u in user_ids if u in self.ids or erasure_hash(u) in self.hashes}


def erased_users(state_dir: str | Path) -> ErasedUsers:
    """Read the erased users of a service's state directory.

    Args:
        state_dir: the service's ``--state-dir`` (the directory holding ``lmrec.sqlite3``), or the
            database file itself.

    Raises:
        FileNotFoundError: there is no service database at ``state_dir``.
        ValueError: the file is not a service database (the message names it).
    """
    path = Path(state_dir)
    db = path / DB_NAME if path.is_dir() else path
    if not db.is_file():
        raise FileNotFoundError(f"exclude_erased: no service database {DB_NAME} in {path} (give the serve --state-dir)")
    # mode=ro: never create, migrate or write the database; WAL readers see every committed erasure
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        ids = {str(r[0]) for r in conn.execute("SELECT user_id FROM users WHERE forgotten = 1")}
        has_digests = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'erased'").fetchone()
        hashes = {str(r[0]) for r in conn.execute("SELECT id_hash FROM erased")} if has_digests else set()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"exclude_erased: {db} is not a service database ({exc})") from None
    finally:
        conn.close()
    return ErasedUsers(frozenset(ids), frozenset(hashes))


def erased_user_ids(state_dir: str | Path) -> set[str]:
    """Readable ids of the users a service erased while its model knew them (see `erased_users`)."""
    return set(erased_users(state_dir).ids)
