"""New users over HTTP: an anonymous session's items and/or a profile text turned into a user vector.

A ``/recommend`` request whose user has no history (no ``user_id``, or one the service does not
know) may send ``session_items`` (recent item ids, most recent last) and/or ``user_text`` (a profile
sentence or free text). How they become the request's user vector depends on the served model:

=============================================  =============================================================
served model                                   user vector
=============================================  =============================================================
has a user tower (``encode_users``: ``lm``,    the model's own user tower on the session's model items,
``lm-scenario``)                               oldest first, no time gaps (``encode_users([rows])``; under the
                                               request's scenario for a scenario-aware model): the session is
                                               served as the model serves a known user with those items.
                                               ``user_text`` enters the same tower when the model reads user
                                               text; otherwise it is encoded as a query (the item tower's text
                                               path) and blended in as a query is (``query_weight``)
other vector models (own item vectors, no      ``unit(mean of the unit vectors of the session's items)``
user tower)                                    in the model's space; ``user_text`` encoded as a query
models without vectors (EASE, Popularity,      the same mean over the items' text vectors (the text
ItemKNN, ...)                                  encoder's space, as for a known user's offline profile);
                                               ``user_text`` encoded with that text encoder
=============================================  =============================================================

Session ids the service does not know are ignored and listed (`ColdProfile.unknown`). Items PUT while
serving have no index in the model, so its user tower cannot read them: they enter through the mean
of their vectors only when the session has no model item at all (and are listed in the notes
otherwise). When nothing usable is left, there is no vector (popularity, said so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmrec.serve.errors import BadRequest
from lmrec.serve.items import ServedItems
from lmrec.serve.profiles import blend, unit
from lmrec.serve.space import VectorSpace

__all__ = ["ColdProfile", "ColdStart"]

#: a text the user-text probe encodes (any non-empty text with a non-zero vector would do)
_PROBE_TEXT = "someone who likes stories, music, films and books"


@dataclass(frozen=True)
class ColdProfile:
    """What a new user's ``session_items`` and ``user_text`` resolved to.

    Attributes:
        vec: (d,) unit user vector, or None (nothing usable: popularity).
        strategy: ``"session"``, ``"user_text"``, ``"session+user_text"`` or ``"popularity"``.
        used: the inputs that shaped ``vec`` (``"session_items"``, ``"user_text"``).
        rows: (s,) int64 served rows of the known session items (excluded as seen; reasons).
        unknown: session ids the service does not know (ignored), in request order.
        notes: how the inputs were read when it is not the model's own user tower, or why not at all.
        scenario_applied: the request's scenario reached the model's user tower.
    """

    vec: np.ndarray | None
    strategy: str
    used: tuple[str, ...]
    rows: np.ndarray
    unknown: list[str]
    notes: list[str] = field(default_factory=list)
    scenario_applied: bool = False


class ColdStart:
    """Resolves new users' sessions and texts (see the module docstring).

    Args:
        model: the served model (its ``encode_users``, where it has one).
        space: the served vector space.
        items: the served items (ids -> rows; their vectors).
        query_weight: weight of a ``user_text`` encoded as a query against the session vector.
    """

    def __init__(self, model: Any, space: VectorSpace, items: ServedItems, query_weight: float) -> None:
        self.model = model
        self.space = space
        self.items = items
        self.query_weight = query_weight
        self.has_user_tower = space.kind == "model" and callable(getattr(model, "encode_users", None))
        self._reads_text: bool | None = None

    @staticmethod
    def check(session_items: Sequence[str] | None, user_text: str | None, max_items: int, max_chars: int) -> None:
        """Raise `BadRequest` naming the field and the limit for too many session items or too long a text."""
        if session_items is not None and len(session_items) > max_items:
            raise BadRequest("session_items", f"{len(session_items)} items exceed max_session_items={max_items}")
        if user_text is not None and len(user_text) > max_chars:
            raise BadRequest("user_text", f"{len(user_text)} characters exceed max_user_text_chars={max_chars}")

    def reads_user_text(self) -> bool:
        """Whether the model's user tower reads a user's text (asked once, through ``encode_users``:
        a model trained without user texts gives the same vector with or without one)."""
        if self._reads_text is None:
            if not self.has_user_tower:
                self._reads_text = False
            else:
                with_text = self._encode([], _PROBE_TEXT, None)
                without = self._encode([], None, None)
                self._reads_text = not np.allclose(with_text, without, atol=1e-6)
        return self._reads_text

    def _encode(self, rows: Sequence[int], text: str | None, scenario_id: int | None) -> np.ndarray:
        """(d,) the model's user vector of one history of model rows (oldest first) and optional text."""
        kwargs: dict[str, Any] = {}
        if scenario_id is not None:  # an (n,) array: the model broadcasts a scalar to a read-only one
            kwargs["scenario"] = np.full(1, scenario_id, dtype=np.int64)
        texts = None if text is None else [text]
        return np.asarray(self.model.encode_users([list(rows)], texts, None, **kwargs)[0], dtype=np.float32)

    def _mean(self, rows: np.ndarray) -> np.ndarray | None:
        if len(rows) == 0:
            return None
        vectors = self.items.index.vectors[rows]
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return unit(vectors.mean(axis=0))

    def resolve(self, session_ids: Sequence[str], user_text: str | None, scenario_id: int | None = None) -> ColdProfile:
        """The user vector of a new user's session and text.

        Args:
            session_ids: item ids, most recent last (unknown ones are ignored and listed).
            user_text: the (scrubbed) profile text, or None / empty for none.
            scenario_id: the request's scenario id for a scenario-aware model (None: its shared path).
        """
        known = [(i, self.items.any_row(i)) for i in session_ids]
        unknown = [i for i, row in known if row is None]
        rows = np.asarray([row for _, row in known if row is not None], dtype=np.int64)
        text = user_text or None
        notes: list[str] = []
        if unknown:
            notes.append(f"{len(unknown)} of {len(session_ids)} session_items are unknown and were ignored")
        session_vec: np.ndarray | None = None
        text_vec: np.ndarray | None = None
        applied = False
        if self.has_user_tower:
            model_rows = rows[rows < self.items.n_model]
            tower_text = text if text is not None and self.reads_user_text() else None
            if len(model_rows) or tower_text is not None:
                session_vec = unit(self._encode(model_rows.tolist(), tower_text, scenario_id))
                applied = scenario_id is not None
            added = len(rows) - len(model_rows)  # items PUT while serving: not in the model
            if added and session_vec is None:
                session_vec = self._mean(rows)
                notes.append("the session_items were added while serving: the session is the mean of their vectors")
            elif added:
                notes.append(
                    f"{added} session_items were added while serving; the model's user tower cannot read them "
                    "and they were not used"
                )
            if text is not None and tower_text is None:
                text_vec = unit(self.space.encode_queries([text])[0])
                notes.append("the model's user tower does not read user text: user_text was encoded as a query")
        else:
            session_vec = self._mean(rows)
            if len(rows):
                notes.append(
                    f"{type(self.model).__name__} has no user tower for new histories: the session is the mean "
                    "of its items' vectors"
                )
            if text is not None:
                text_vec = unit(self.space.encode_queries([text])[0])
                notes.append(f"user_text was encoded as a query in the {self.space.name} space")
        vec = blend([(text_vec, self.query_weight), (session_vec, 1.0 - self.query_weight)])
        used = tuple(name for name, on in (("session_items", len(rows) > 0), ("user_text", text is not None)) if on)
        if vec is None:
            if session_ids or text is not None:
                notes.append("nothing usable in session_items or user_text: popular items")
            return ColdProfile(None, "popularity", (), rows, unknown, notes)
        return ColdProfile(vec, "+".join(u.replace("_items", "") for u in used), used, rows, unknown, notes, applied)
