"""The durable impression log: what each ``/recommend`` answer showed, and the responses naming it.

Two tables of the service's SQLite database (created with the rest of its schema,
`lmrec.serve.stores.sqlite`): ``impressions`` (one row per logged answer: the shown items in position
order, their scores and, when the list was randomised with known probabilities, their propensities;
optionally the whole candidate pool with its feature rows) and ``impression_responses`` (one row per
event that named a logged ``request_id``). Each write is one transaction; an erasure deletes a user's
rows with their events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from lmrec.serve.stores.sqlite import SQLiteStore

__all__ = ["ImpressionLog", "ImpressionRecord", "Response"]


@dataclass
class ImpressionRecord:
    """One logged answer.

    Attributes:
        request_id: the answer's id.
        user_id: who asked (None: anonymous).
        at: when, seconds since the epoch.
        policy: the ranking mode that made the list (``static``, ``greedy``, ``thompson``, ``epsilon``).
        explored: the list was randomised.
        epsilon: the exploration rate in force.
        items: the shown item ids, position order.
        scores: (k,) float32 shown scores.
        propensities: (k,) float32 probability of each shown item in its position under the logging
            policy, or None when not known (Thompson sampling, or a list re-ordered by diversity).
        pool: the candidate pool's ids in retrieval order (empty when not logged).
        features: (m, f) float32 feature rows of the pool (None when not logged).
        greedy: positions into ``pool`` of the greedy order (what the policy shows when not exploring).
        responses: the logged responses naming this answer (filled by `ImpressionLog.export`).
    """

    request_id: str
    user_id: str | None
    at: float
    policy: str
    explored: bool
    epsilon: float
    items: list[str]
    scores: np.ndarray
    propensities: np.ndarray | None = None
    pool: list[str] = field(default_factory=list)
    features: np.ndarray | None = None
    greedy: list[int] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)


@dataclass(frozen=True)
class Response:
    """An event that named a logged answer."""

    event_id: str
    request_id: str
    user_id: str
    item_id: str
    type: str
    at: float


def _blob(x: np.ndarray | None) -> bytes | None:
    return None if x is None else np.ascontiguousarray(x, dtype="<f4").tobytes()


def _array(blob: bytes | None, cols: int = 0) -> np.ndarray | None:
    if blob is None:
        return None
    out = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    return out.reshape(-1, cols) if cols else out


_COLS = "request_id, user_id, at, policy, explored, epsilon, items, scores, propensities, pool, features, n_features, greedy"


def _record(row: tuple) -> ImpressionRecord:
    rid, user, at, policy, explored, eps, items, scores, props, pool, feats, n_features, greedy = row
    return ImpressionRecord(
        rid,
        user,
        float(at),
        policy,
        bool(explored),
        float(eps),
        json.loads(items),
        _array(scores),  # type: ignore[arg-type]
        _array(props),
        json.loads(pool) if pool else [],
        _array(feats, int(n_features or 0)) if feats is not None else None,
        json.loads(greedy) if greedy else [],
    )


class ImpressionLog:
    """Reads and writes of the ``impressions`` and ``impression_responses`` tables.

    Args:
        store: the service's SQLite store (its schema holds both tables).
    """

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def write(self, record: ImpressionRecord) -> None:
        """Log one answer (one transaction)."""
        n_features = 0 if record.features is None else int(record.features.shape[1])
        with self.store.write() as tx:
            tx.execute(
                f"INSERT OR REPLACE INTO impressions ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.request_id,
                    record.user_id,
                    record.at,
                    record.policy,
                    int(record.explored),
                    record.epsilon,
                    json.dumps(record.items),
                    _blob(record.scores),
                    _blob(record.propensities),
                    json.dumps(record.pool) if record.pool else None,
                    _blob(record.features),
                    n_features,
                    json.dumps(record.greedy) if record.greedy else None,
                ),
            )

    def get(self, request_id: str) -> ImpressionRecord | None:
        """The logged answer with this id, or None."""
        row = (
            self.store.connection()
            .execute(f"SELECT {_COLS} FROM impressions WHERE request_id = ?", (request_id,))
            .fetchone()
        )
        return None if row is None else _record(row)

    def add_responses(self, responses: Sequence[Response]) -> None:
        """Log responses (one transaction; a repeated ``event_id`` is kept once)."""
        if not responses:
            return
        with self.store.write() as tx:
            tx.executemany(
                "INSERT OR IGNORE INTO impression_responses (event_id, request_id, user_id, item_id, type, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(r.event_id, r.request_id, r.user_id, r.item_id, r.type, r.at) for r in responses],
            )

    def recent_items(self, user_id: str, since: float, limit: int = 20) -> list[list[str]]:
        """The shown lists of the user's latest logged answers after ``since``, newest first."""
        rows = (
            self.store.connection()
            .execute(
                "SELECT items FROM impressions WHERE user_id = ? AND at >= ? ORDER BY at DESC LIMIT ?",
                (user_id, since, limit),
            )
            .fetchall()
        )
        return [json.loads(r[0]) for r in rows]

    def for_user(self, user_id: str) -> list[dict[str, object]]:
        """The user's logged answers, oldest first: ``request_id``, ``at``, ``items``, ``policy`` (the export)."""
        rows = (
            self.store.connection()
            .execute(
                "SELECT request_id, at, items, policy FROM impressions WHERE user_id = ? ORDER BY at, rowid", (user_id,)
            )
            .fetchall()
        )
        return [{"request_id": r, "at": float(at), "items": json.loads(i), "policy": p} for r, at, i, p in rows]

    def delete_before(self, cutoff: float) -> int:
        """Delete the answers logged before ``cutoff`` (seconds since the epoch) and the responses to
        them, in one transaction (retention, `lmrec.serve.retention`). Returns how many answers went."""
        with self.store.write() as tx:
            tx.execute(
                "DELETE FROM impression_responses WHERE request_id IN (SELECT request_id FROM impressions WHERE at < ?)",
                (cutoff,),
            )
            return int(tx.execute("DELETE FROM impressions WHERE at < ?", (cutoff,)).rowcount)

    def count(self) -> int:
        return int(self.store.connection().execute("SELECT count(*) FROM impressions").fetchone()[0])

    def export(self, batch: int = 1000) -> Iterator[ImpressionRecord]:
        """Every logged answer, oldest first, with its responses."""
        conn = self.store.connection()
        last = -1
        while True:
            rows = conn.execute(
                f"SELECT rowid, {_COLS} FROM impressions WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            records = [_record(r[1:]) for r in rows]
            ids = [r.request_id for r in records]
            found: dict[str, list[Response]] = {}
            marks = ", ".join("?" * len(ids))
            for row in conn.execute(
                "SELECT event_id, request_id, user_id, item_id, type, at FROM impression_responses"
                f" WHERE request_id IN ({marks})",
                ids,
            ):
                found.setdefault(row[1], []).append(Response(*row))
            for record in records:
                record.responses = found.get(record.request_id, [])
                yield record
