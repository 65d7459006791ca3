"""The embedded store: one SQLite database in WAL mode for events, users, items and profiles.

Durability: every write runs in one ``BEGIN IMMEDIATE ... COMMIT`` transaction and the service answers
only after ``COMMIT`` returns. In WAL mode a committed transaction is in the ``-wal`` file; with
``synchronous=FULL`` (the default) the WAL is also fsynced at each commit, so acknowledged events
survive both a process crash (kill -9) and a power loss. With ``synchronous=NORMAL`` the commit is in
the operating system's page cache before the answer, which a killed process cannot lose (the kernel
still writes it out); only a power loss or kernel crash can drop the last commits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lmrec.serve.stores.base import (
    Event,
    ItemRecord,
    Profile,
    ProfileStore,
    ProfileUpdate,
    StoredEvent,
    UserRecord,
)

__all__ = ["SQLiteProfileStore", "SQLiteStore", "blob_to_vector", "erasure_hash", "vector_to_blob"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    type TEXT NOT NULL,
    value REAL,
    ts REAL NOT NULL,
    scenario TEXT,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, seq);
CREATE TABLE IF NOT EXISTS erased (
    id_hash TEXT PRIMARY KEY,
    erased_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    n_events INTEGER NOT NULL DEFAULT 0,
    first_event_at REAL,
    last_event_at REAL,
    forgotten INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS profiles (
    user_id TEXT PRIMARY KEY,
    vector BLOB NOT NULL,
    n_events INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    last_ts REAL NOT NULL,
    space TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    attributes TEXT NOT NULL,
    vector BLOB,
    space TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT,
    query TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queries_by_user ON queries (user_id, id);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT,
    record TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS impressions (
    request_id TEXT PRIMARY KEY,
    user_id TEXT,
    at REAL NOT NULL,
    policy TEXT NOT NULL,
    explored INTEGER NOT NULL,
    epsilon REAL NOT NULL,
    items TEXT NOT NULL,
    scores BLOB,
    propensities BLOB,
    pool TEXT,
    features BLOB,
    n_features INTEGER,
    greedy TEXT
);
CREATE INDEX IF NOT EXISTS impressions_by_user ON impressions (user_id, at);
CREATE TABLE IF NOT EXISTS impression_responses (
    event_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    type TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_by_request ON impression_responses (request_id);
"""

# an events row that the service did not write: wrong storage types, empty ids, a negative or
# non-finite timestamp or value (SQLite keeps what a REAL column cannot convert as it came)
_BAD_EVENT = """
    typeof(event_id) != 'text' OR event_id = '' OR typeof(user_id) != 'text' OR user_id = ''
    OR typeof(item_id) != 'text' OR item_id = '' OR typeof(type) != 'text' OR type = ''
    OR typeof(ts) NOT IN ('integer', 'real') OR NOT (ts >= 0 AND ts < 1e300)
    OR (value IS NOT NULL AND (typeof(value) NOT IN ('integer', 'real') OR NOT abs(value) < 1e300))
    OR (scenario IS NOT NULL AND typeof(scenario) != 'text')
"""

_EVENT_COLS = "event_id, user_id, item_id, type, value, ts, scenario, seq"


def vector_to_blob(vector: np.ndarray) -> bytes:
    """(d,) float vector -> little-endian float32 bytes."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    """Inverse of `vector_to_blob`: a writable (d,) float32 array."""
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def _item_record(row: tuple) -> ItemRecord:
    """A stored ``items`` row as a record; a row that cannot be read back gets ``problem`` set."""
    item_id, text, attributes, blob, space, deleted, version = row
    problem = None
    try:
        attributes = json.loads(attributes) if isinstance(attributes, str) else attributes
    except ValueError as exc:
        attributes, problem = {}, f"attributes are not JSON ({exc})"
    if problem is None and not isinstance(attributes, dict):
        attributes, problem = {}, f"attributes are a {type(attributes).__name__}, not an object"
    if not isinstance(item_id, str) or not item_id:
        problem = f"item_id {item_id!r} is not a non-empty text"
    elif not isinstance(text, str):
        problem, text = f"text {text!r} is not a text", ""
    vector = None
    if blob is not None:
        if isinstance(blob, bytes) and len(blob) % 4 == 0:
            vector = blob_to_vector(blob)
        else:
            problem = problem or "vector is not a float32 blob"
    return ItemRecord(str(item_id), text, attributes, vector, str(space), bool(deleted), int(version), problem)


def erasure_hash(user_id: str) -> str:
    """The SHA-256 hex digest that stands for an erased user id in the ``erased`` table.

    A digest, not the id: the database keeps no readable trace of an erased user who was never in
    the model, yet a training run can still recognise their rows. Ids from a small or guessable
    space can be recovered by hashing candidates; the digest hides an id, it does not anonymise it.
    """
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


def _event(row: tuple) -> StoredEvent:
    event_id, user_id, item_id, kind, value, ts, scenario, seq = row[:8]
    return StoredEvent(event_id, user_id, item_id, kind, value, ts, scenario, seq=seq)


class SQLiteStore:
    """Event log, users, items and metadata in one SQLite file.

    Reads use one connection per thread; writes are serialised by a process lock and
    ``BEGIN IMMEDIATE`` (other processes wait up to ``busy_timeout_s``).

    Args:
        path: database file (created with its directory).
        synchronous: SQLite ``PRAGMA synchronous`` (see the module docstring).
        busy_timeout_s: how long a write waits for another process's write.
    """

    def __init__(
        self, path: str | Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL", busy_timeout_s: float = 10.0
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.Lock()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)

    # ------------------------------------------------------------------ connections
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(
                "PRAGMA secure_delete=ON"
            )  # deleted rows (erasure, retention) are overwritten, not left in free pages
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for reads of tables that other modules own (`lmrec.serve.feedback`)."""
        return self._conn()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; commits on success (durably, see the module docstring), rolls back on error."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads on this thread inside the block see one consistent state of the database (a WAL read
        transaction), even while other threads and processes commit."""
        conn = self._conn()
        if conn.in_transaction:  # already inside a snapshot or a write on this thread
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):  # a connection of a finished thread
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    # ------------------------------------------------------------------ events
    def append_events(self, tx: sqlite3.Connection, events: Sequence[Event]) -> list[StoredEvent | None]:
        """Append events inside ``tx``; an event whose ``event_id`` is already logged is skipped.

        Returns:
            Per event, the stored event (with its ``seq``) or None for a duplicate.
        """
        now = time.time()
        out: list[StoredEvent | None] = []
        counts: dict[str, list[float]] = {}
        for e in events:
            cur = tx.execute(
                "INSERT OR IGNORE INTO events (event_id, user_id, item_id, type, value, ts, scenario, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (e.event_id, e.user_id, e.item_id, e.type, e.value, e.ts, e.scenario, now),
            )
            if cur.rowcount == 1:
                assert cur.lastrowid is not None  # an INSERT that added a row has a row id
                out.append(StoredEvent(**e.__dict__, seq=cur.lastrowid))
                counts.setdefault(e.user_id, []).append(e.ts)
            else:
                out.append(None)
        tx.executemany(
            "INSERT INTO users (user_id, n_events, first_event_at, last_event_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET n_events = n_events + excluded.n_events,"
            " first_event_at = min(coalesce(first_event_at, excluded.first_event_at), excluded.first_event_at),"
            " last_event_at = max(coalesce(last_event_at, excluded.last_event_at), excluded.last_event_at)",
            [(user, len(ts), min(ts), max(ts)) for user, ts in counts.items()],
        )
        return out

    def events_since(self, user_id: str, seq: int, tx: sqlite3.Connection | None = None) -> list[StoredEvent]:
        """The user's events with ``seq`` above the given one, oldest first."""
        conn = tx or self._conn()
        rows = conn.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE user_id = ? AND seq > ? ORDER BY seq", (user_id, seq)
        ).fetchall()
        return [_event(r) for r in rows]

    def recent_events(self, user_id: str, limit: int) -> list[StoredEvent]:
        """The user's ``limit`` latest events, newest first."""
        rows = (
            self._conn()
            .execute(f"SELECT {_EVENT_COLS} FROM events WHERE user_id = ? ORDER BY seq DESC LIMIT ?", (user_id, limit))
            .fetchall()
        )
        return [_event(r) for r in rows]

    def seen_items(self, user_id: str) -> list[str]:
        """Distinct items the user has events on."""
        rows = self._conn().execute("SELECT DISTINCT item_id FROM events WHERE user_id = ?", (user_id,)).fetchall()
        return [r[0] for r in rows]

    def has_event(self, event_id: str) -> bool:
        return self._conn().execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None

    def count_events(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM events").fetchone()[0])

    def item_event_counts(self, since_seq: int = 0, types: Collection[str] | None = None) -> dict[str, int]:
        """Events per item over the log after ``since_seq`` (default: all; popularity of the online traffic).

        Args:
            since_seq: count only events logged after this ``seq``.
            types: count only these event types (None: every type).
        """
        sql = "SELECT item_id, count(*) FROM events WHERE seq > ?"
        args: list[int | str] = [since_seq]
        if types is not None:
            if not types:
                return {}
            sql += f" AND type IN ({','.join('?' * len(types))})"
            args += sorted(types)
        return dict(self._conn().execute(sql + " GROUP BY item_id", args).fetchall())

    def max_event_seq(self) -> int:
        """The largest ``seq`` in the log (0 when empty)."""
        return int(self._conn().execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

    def event_watermarks(self) -> dict[str, int]:
        """Largest ``seq`` per user in the log."""
        return dict(self._conn().execute("SELECT user_id, max(seq) FROM events GROUP BY user_id").fetchall())

    def quarantine_bad_events(self) -> int:
        """Move the events rows the service could not have written (`_BAD_EVENT`) to the ``quarantine``
        table, in one transaction, and recount their users; returns how many were moved."""
        with self.write() as tx:
            rows = tx.execute(
                f"SELECT seq, event_id, user_id, item_id, type, value, ts, scenario FROM events WHERE {_BAD_EVENT}"
            ).fetchall()
            if not rows:
                return 0
            now = time.time()
            names = ["seq", "event_id", "user_id", "item_id", "type", "value", "ts", "scenario"]
            tx.executemany(
                "INSERT INTO quarantine (kind, key, record, reason, at) VALUES ('event', ?, ?, ?, ?)",
                [
                    (str(r[1]), json.dumps(dict(zip(names, r)), default=repr), "not a valid event row", now)
                    for r in rows
                ],
            )
            tx.executemany("DELETE FROM events WHERE seq = ?", [(r[0],) for r in rows])
            users = sorted({str(r[2]) for r in rows})
            tx.executemany(
                "UPDATE users SET n_events = (SELECT count(*) FROM events e WHERE e.user_id = users.user_id),"
                " first_event_at = (SELECT min(ts) FROM events e WHERE e.user_id = users.user_id),"
                " last_event_at = (SELECT max(ts) FROM events e WHERE e.user_id = users.user_id) WHERE user_id = ?",
                [(u,) for u in users],
            )
        for r in rows:
            log.warning("set aside the stored event row seq=%s event_id=%r: not a valid event row", r[0], r[1])
        return len(rows)

    def drop_unreadable_profiles(self, space: str, dim: int) -> int:
        """Delete the profiles of ``space`` that cannot be read back (not a ``dim``-wide float32 blob, or
        a watermark or time that is not a number); they are derived data, rebuilt from the event log."""
        with self.write() as tx:
            return tx.execute(
                "DELETE FROM profiles WHERE space = ? AND (typeof(vector) != 'blob' OR length(vector) != ?"
                " OR typeof(last_seq) != 'integer' OR typeof(n_events) != 'integer'"
                " OR typeof(last_ts) NOT IN ('integer', 'real') OR NOT abs(last_ts) < 1e300)",
                (space, 4 * dim),
            ).rowcount

    def count_quarantined(self, kind: str) -> int:
        """Rows of one kind (``"event"``) in the ``quarantine`` table."""
        return int(self._conn().execute("SELECT count(*) FROM quarantine WHERE kind = ?", (kind,)).fetchone()[0])

    # ------------------------------------------------------------------ users
    def user(self, user_id: str) -> UserRecord | None:
        row = (
            self._conn()
            .execute(
                "SELECT user_id, n_events, first_event_at, last_event_at, forgotten FROM users WHERE user_id = ?",
                (user_id,),
            )
            .fetchone()
        )
        return None if row is None else UserRecord(row[0], int(row[1]), row[2], row[3], bool(row[4]))

    def erase_user(self, tx: sqlite3.Connection, user_id: str, *, mark_forgotten: bool) -> int:
        """Delete the user's events and user row; returns the number of events deleted.

        Args:
            tx: the open write transaction.
            user_id: whose data.
            mark_forgotten: keep only an erasure marker (``forgotten``) for a user the trained model
                knows: it stops the service from using what the model learned about them until the
                model is retrained without them.
        """
        n = tx.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
        tx.execute("DELETE FROM queries WHERE user_id = ?", (user_id,))
        tx.execute("DELETE FROM impressions WHERE user_id = ?", (user_id,))  # lmrec.serve.feedback
        tx.execute("DELETE FROM impression_responses WHERE user_id = ?", (user_id,))
        # every erased id, known to the model or not, leaves its hash (not the id) for the next
        # training run: that run's data may hold users this service never saw
        tx.execute(
            "INSERT OR REPLACE INTO erased (id_hash, erased_at) VALUES (?, ?)", (erasure_hash(user_id), time.time())
        )
        if mark_forgotten:
            tx.execute(
                "INSERT INTO users (user_id, n_events, forgotten) VALUES (?, 0, 1) ON CONFLICT (user_id) DO UPDATE"
                " SET n_events = 0, first_event_at = NULL, last_event_at = NULL, forgotten = 1",
                (user_id,),
            )
        else:
            tx.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
        return int(n)

    def export_user(self, user_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Everything the log holds about a user: their events (every column, oldest first) and stored
        queries, read from one state of the database."""
        with self.snapshot():
            conn = self._conn()
            cols = ["seq", "event_id", "item_id", "type", "value", "ts", "scenario", "received_at"]
            rows = conn.execute(
                f"SELECT {', '.join(cols)} FROM events WHERE user_id = ? ORDER BY seq", (user_id,)
            ).fetchall()
            queries = conn.execute("SELECT query, at FROM queries WHERE user_id = ? ORDER BY id", (user_id,)).fetchall()
        return [dict(zip(cols, r)) for r in rows], [{"query": q, "at": at} for q, at in queries]

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database and truncate it, so rows deleted by an erasure or
        by retention do not linger in the ``-wal`` file (best effort: a busy reader postpones it)."""
        with contextlib.suppress(sqlite3.Error):
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    def log_query(self, user_id: str | None, query: str, at: float) -> None:
        """Store a query text (only when the settings ask for it: ``store_queries``)."""
        with self.write() as tx:
            tx.execute("INSERT INTO queries (user_id, query, at) VALUES (?, ?, ?)", (user_id, query, at))

    # ------------------------------------------------------------------ retention
    @staticmethod
    def _expired(cutoffs: dict[str, float], default: float | None) -> tuple[str, list[Any]]:
        """SQL condition and parameters: an event of type ``t`` received before ``cutoffs[t]`` (other
        types before ``default``, when given)."""
        terms = ["(type = ? AND received_at < ?)"] * len(cutoffs)
        params: list[Any] = [x for kv in cutoffs.items() for x in kv]
        if default is not None and cutoffs:
            terms.append(f"(type NOT IN ({', '.join('?' * len(cutoffs))}) AND received_at < ?)")
            params.extend([*cutoffs, default])
        elif default is not None:
            terms.append("received_at < ?")
            params.append(default)
        return " OR ".join(terms) or "0", params

    def users_with_expired_events(self, cutoffs: dict[str, float], default: float | None) -> list[str]:
        """Users with at least one event past its retention (see `_expired`)."""
        where, params = self._expired(cutoffs, default)
        rows = (
            self._conn()
            .execute(f"SELECT DISTINCT user_id FROM events WHERE {where} ORDER BY user_id", params)
            .fetchall()
        )
        return [r[0] for r in rows]

    def delete_expired_events(
        self, tx: sqlite3.Connection, user_id: str, up_to_seq: int, cutoffs: dict[str, float], default: float | None
    ) -> int:
        """Delete the user's events past their retention with ``seq <= up_to_seq`` (those their profile
        has absorbed); the users row keeps its counts. Returns how many were deleted."""
        where, params = self._expired(cutoffs, default)
        return tx.execute(
            f"DELETE FROM events WHERE user_id = ? AND seq <= ? AND ({where})", [user_id, up_to_seq, *params]
        ).rowcount

    def delete_queries_before(self, cutoff: float) -> int:
        """Delete stored queries older than ``cutoff`` (seconds since the epoch)."""
        with self.write() as tx:
            return tx.execute("DELETE FROM queries WHERE at < ?", (cutoff,)).rowcount

    def forgotten_users(self) -> set[str]:
        return {r[0] for r in self._conn().execute("SELECT user_id FROM users WHERE forgotten = 1").fetchall()}

    # ------------------------------------------------------------------ items
    def put_item(self, tx: sqlite3.Connection, record: ItemRecord) -> int:
        """Insert or replace an item written through the API; returns its new version."""
        version = int(tx.execute("SELECT coalesce(max(version), 0) + 1 FROM items").fetchone()[0])
        blob = None if record.vector is None else vector_to_blob(record.vector)
        tx.execute(
            "INSERT OR REPLACE INTO items (item_id, text, attributes, vector, space, deleted, version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.item_id,
                record.text,
                json.dumps(record.attributes, allow_nan=False),
                blob,
                record.space,
                int(record.deleted),
                version,
            ),
        )
        return version

    def items_since(self, version: int) -> list[ItemRecord]:
        """Items written after ``version``, in write order."""
        rows = (
            self._conn()
            .execute(
                "SELECT item_id, text, attributes, vector, space, deleted, version FROM items WHERE version > ?"
                " ORDER BY version",
                (version,),
            )
            .fetchall()
        )
        return [_item_record(r) for r in rows]

    def max_item_version(self) -> int:
        return int(self._conn().execute("SELECT coalesce(max(version), 0) FROM items").fetchone()[0])

    # ------------------------------------------------------------------ metadata
    def meta_get(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def meta_set(self, tx: sqlite3.Connection, key: str, value: str) -> None:
        tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


class SQLiteProfileStore(ProfileStore):
    """Profiles in the event log's own database, updated in the same transaction as the events."""

    transactional = True

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def _get(self, conn: sqlite3.Connection, user_id: str) -> Profile | None:
        row = conn.execute(
            "SELECT vector, n_events, last_seq, last_ts, space FROM profiles WHERE user_id = ?", (user_id,)
        ).fetchone()
        if row is None:
            return None
        return Profile(blob_to_vector(row[0]), int(row[1]), int(row[2]), float(row[3]), row[4])

    def get(self, user_id: str) -> Profile | None:
        return self._get(self.store._conn(), user_id)

    def catch_up(
        self,
        user_id: str,
        events_since: Callable[[int], list[StoredEvent]],
        update: ProfileUpdate,
        tx: Any = None,
        *,
        space: str | None = None,
    ) -> Profile | None:
        if tx is None:
            with self.store.write() as conn:
                return self.catch_up(user_id, events_since, update, conn, space=space)
        stored = self._get(tx, user_id)
        profile = self._current(stored, space)
        events = events_since(profile.last_seq if profile else 0)
        if not events:
            if stored is not None and profile is None:  # from another space, and no events left to rebuild it
                tx.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,))
            return profile
        new = update(profile, events)
        if new is None:
            tx.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,))
        else:
            tx.execute(
                "INSERT OR REPLACE INTO profiles (user_id, vector, n_events, last_seq, last_ts, space)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, vector_to_blob(new.vector), new.n_events, new.last_seq, new.last_ts, new.space),
            )
        return new

    def delete(self, user_id: str, tx: Any = None) -> bool:
        if tx is None:
            with self.store.write() as conn:
                return self.delete(user_id, conn)
        return tx.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,)).rowcount > 0

    def delete_all(self, tx: Any = None) -> None:
        if tx is None:
            with self.store.write() as conn:
                return self.delete_all(conn)
        tx.execute("DELETE FROM profiles")

    def watermarks(self, user_ids: Iterable[str]) -> dict[str, int]:
        wanted = set(user_ids)
        rows = self.store._conn().execute("SELECT user_id, last_seq FROM profiles").fetchall()
        have = {u: int(s) for u, s in rows if u in wanted}
        return {u: have.get(u, 0) for u in wanted}
