"""The library logic behind the HTTP routes: recommend, ingest events, manage items and users.

Who gets what (``/recommend``):

====================================  ==========================================================
request                               candidates
====================================  ==========================================================
query, no known profile               the query vector (``strategy="query"``)
known user, no query, vector model    the profile vector (``"profile"``)
known user, no query, other model     ``model.recommend``, blended with the online profile when the
                                      user has events (``"model"`` / ``"model+online"``)
known user and query                  ``unit(w * query + (1 - w) * profile)``, ``w = query_weight``
nothing known                         popularity (training counts plus logged events)
====================================  ==========================================================

A user's *profile* is ``unit((1 - b) * offline + b * online)`` with ``b = online_weight``: ``offline``
is the model's user vector (vector models) or the mean of the user's training items' text vectors
(other models); ``online`` is the decayed blend of the items in their logged events
(`lmrec.serve.profiles`). Either part alone is used when the other is missing.

Blend rule of ``"model+online"``: candidates are the model's top ``candidate_pool`` items and the
online profile's top ``candidate_pool`` items; each gets ``(1 - b) * mm(model score) + b * mm(cos(online,
item))``, where ``mm`` is min-max scaling over the candidates and items the model cannot score (new
ones) get the lowest model score among the candidates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmrec.models.bundle import ModelBundle
from lmrec.serve import reasons as why
from lmrec.serve.attributes import FilterError, FilterSpec
from lmrec.serve.catalog import ItemUpdates
from lmrec.serve.errors import BadRequest, NotFound, ServeError, TooLarge
from lmrec.serve.index import _top
from lmrec.serve.items import ServedItems
from lmrec.serve.metrics import Metrics
from lmrec.serve.profiles import absorb, blend, unit
from lmrec.serve.ranking import BusinessRule, Candidates, RankContext, apply_rules, mmr
from lmrec.serve.schemas import (
    EventIn,
    EventRejection,
    EventsResponse,
    ExplainResponse,
    HealthResponse,
    ItemDeleted,
    ItemWritten,
    OnlineProfile,
    RecommendResponse,
    ScoredItem,
    SimilarResponse,
    UserErased,
    UserEvent,
    UserSummary,
)
from lmrec.serve.settings import ServeSettings
from lmrec.serve.space import VectorSpace
from lmrec.serve.stores.base import Event, Profile, ProfileStore, StoredEvent
from lmrec.serve.stores.sqlite import SQLiteStore

__all__ = ["BadRequest", "NotFound", "RecService", "RequestContext", "ServeError", "TooLarge"]

log = logging.getLogger(__name__)


@dataclass
class RequestContext:
    """Who is asking and with what, resolved to vectors."""

    user_id: str | None
    u: int | None  # model user index
    online: np.ndarray | None
    query: str | None
    vec: np.ndarray | None  # the retrieval vector (None for popularity and model strategies)
    strategy: str


class RecService:
    """Everything the routes need; built by `open` (see `lmrec.serve.app.create_app`).

    Args:
        settings: the service settings.
        bundle: the loaded model directory.
        version: the model version string sent with every answer.
        space: the vector space of items, queries and profiles.
        items: the served items (vectors, attributes, liveness).
        store: the SQLite event log.
        profiles: the online-profile store.
        rules: business rules applied after retrieval.
        metrics: where counters go.
    """

    def __init__(
        self,
        settings: ServeSettings,
        bundle: ModelBundle,
        version: str,
        space: VectorSpace,
        items: ServedItems,
        store: SQLiteStore,
        profiles: ProfileStore,
        *,
        rules: Sequence[BusinessRule] = (),
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.bundle = bundle
        self.model = bundle.model
        self.version = version
        self.space = space
        self.items = items
        self.store = store
        self.profiles = profiles
        self.rules = list(rules)
        self.metrics = metrics or Metrics()
        self._forgotten = store.forgotten_users()
        self._offline: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self._offline_lock = threading.Lock()
        items.add_popularity(np.arange(items.n_model), np.asarray(self.model.seen_.sum(axis=0), dtype=np.float64).ravel())
        self.item_updates = ItemUpdates(items, store, space, bundle, settings.items_sync_interval_s)
        self.item_updates.apply(store.items_since(items.version))  # items PUT or DELETEd before this start
        logged = [(items.any_row(i), c) for i, c in store.item_event_counts().items()]
        logged = [(r, c) for r, c in logged if r is not None]
        if logged:
            items.add_popularity([r for r, _ in logged], np.asarray([c for _, c in logged], dtype=np.float64))

    @classmethod
    def open(
        cls, settings: ServeSettings, *, encoder: Any = None, rules: Sequence[BusinessRule] = ()
    ) -> RecService:
        """Load the model, the stores and the index (see `lmrec.serve.loading.open_service`)."""
        from lmrec.serve.loading import open_service

        return open_service(cls, settings, encoder=encoder, rules=rules)

    def close(self) -> None:
        self.profiles.close()
        self.store.close()

    # ------------------------------------------------------------------ resolution
    def _user_index(self, user_id: str | None) -> int | None:
        if user_id is None or user_id in self._forgotten:
            return None
        u = self.model.user_map_.get(user_id)
        return None if u < 0 or u >= self.model.n_users else u

    def _offline_vector(self, u: int) -> np.ndarray | None:
        """The model's vector of a known user, cached (LRU): it only changes when the model does."""
        with self._offline_lock:
            if u in self._offline:
                self._offline.move_to_end(u)
                return self._offline[u]
        vec = self.space.user_vector(u, self.items.index.vectors)
        with self._offline_lock:
            self._offline[u] = vec
            if len(self._offline) > 100_000:
                self._offline.popitem(last=False)
        return vec

    def _online(self, user_id: str | None) -> Profile | None:
        if user_id is None:
            return None
        profile = self.profiles.get(user_id)
        if profile is None or profile.space != self.space.name or not np.any(profile.vector):
            return None
        return profile

    def resolve(self, user_id: str | None, query: str | None) -> RequestContext:
        """Turn a user id and a query into the retrieval vector and strategy (table in the module doc)."""
        s = self.settings
        if query is not None:
            query = query.strip() or None
        if query is not None and len(query) > s.max_query_chars:
            raise BadRequest("query", f"{len(query)} characters exceed max_query_chars={s.max_query_chars}")
        u = self._user_index(user_id)
        profile = self._online(user_id)
        online = None if profile is None else profile.vector
        qvec = self.space.encode_queries([query])[0] if query else None
        if qvec is None and u is not None and self.space.kind == "text":
            return RequestContext(user_id, u, online, None, None, "model+online" if online is not None else "model")
        offline = self._offline_vector(u) if u is not None else None
        user_vec = blend([(offline, 1.0 - s.online_weight), (online, s.online_weight)])
        if qvec is not None:
            vec = blend([(qvec, s.query_weight), (user_vec, 1.0 - s.query_weight)])
            return RequestContext(user_id, u, online, query, vec, "query+profile" if user_vec is not None else "query")
        if user_vec is not None:
            return RequestContext(user_id, u, online, None, user_vec, "profile")
        return RequestContext(user_id, u, online, None, None, "popularity")

    def _seen_rows(self, user_id: str, u: int | None) -> np.ndarray:
        rows: list[int] = []
        if u is not None:
            seen = self.model.seen_
            rows.extend(seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist())
        for item_id in self.store.seen_items(user_id):
            row = self.items.any_row(item_id)
            if row is not None:
                rows.append(row)
        return np.asarray(rows, dtype=np.int64)

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.settings.max_k:
            raise BadRequest("k", f"k={k} is outside [1, max_k={self.settings.max_k}]")

    # ------------------------------------------------------------------ recommend
    def recommend(
        self,
        *,
        user_id: str | None = None,
        query: str | None = None,
        scenario: str | None = None,
        k: int = 10,
        filters: FilterSpec | None = None,
        exclude_seen: bool = True,
        diversity: float = 0.0,
    ) -> RecommendResponse:
        """Top-``k`` items for a user and/or a query (see the module docstring)."""
        self._check_k(k)
        self.item_updates.maybe_sync()
        n = len(self.items)
        allowed = self.items.live_mask(n)
        if filters:
            try:
                allowed &= self.items.attributes.mask(filters, n)
            except FilterError as exc:
                raise BadRequest(exc.field, str(exc).split(": ", 1)[1]) from None
        ctx = self.resolve(user_id, query)
        if exclude_seen and user_id is not None:
            seen = self._seen_rows(user_id, ctx.u)
            allowed[seen[seen < n]] = False
        pool = k if diversity == 0 and not self.rules else max(k, self.settings.candidate_pool)
        rows, scores = self._retrieve(ctx, allowed, pool)
        cands = Candidates(rows, scores, tuple(self.items.ids[r] for r in rows))
        context = RankContext(user_id, ctx.query, scenario, k, self.items.attributes.row)
        cands = apply_rules(cands, context, self.rules)
        if diversity > 0 and len(cands) > 1:
            cands = cands.select(mmr(cands.scores, self.items.index.vectors[cands.rows], k, diversity))
        else:
            cands = cands.select(np.arange(min(k, len(cands))))
        texts = self._reasons(ctx, cands.rows)
        self.metrics.inc("lmrec_recommendations_total", strategy=ctx.strategy)
        return RecommendResponse(
            items=[ScoredItem(item_id=i, score=float(sc), reason=r) for i, sc, r in zip(cands.item_ids, cands.scores, texts)],
            model_version=self.version,
            strategy=ctx.strategy,  # type: ignore[arg-type]
            user_id=user_id,
            known_user=ctx.u is not None or ctx.online is not None,
            scenario=scenario,
        )

    def _retrieve(self, ctx: RequestContext, allowed: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
        if ctx.strategy in ("model", "model+online"):
            return self._model_candidates(ctx, allowed, pool)
        if ctx.strategy == "popularity":
            n = len(allowed)
            return _top(np.where(allowed, self.items.popularity(n), -np.inf), np.arange(n), pool)
        return self.items.index.search(ctx.vec, pool, allowed)

    def _model_candidates(self, ctx: RequestContext, allowed: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
        n_model = self.items.n_model
        user = np.asarray([ctx.u], dtype=np.int64)
        ids, scores = self.model.recommend(user, k=pool, exclude_seen=False, candidates=np.flatnonzero(allowed[:n_model]))
        keep = ids[0] >= 0
        rows_m, scores_m = ids[0][keep], scores[0][keep].astype(np.float32)
        if ctx.online is None:
            if len(rows_m) < pool:
                return self._fill(ctx, allowed, pool, rows_m, scores_m)
            return rows_m, scores_m
        online = unit(ctx.online)
        rows_o, _ = self.items.index.search(online, pool, allowed)
        union = np.asarray(list(dict.fromkeys([*rows_m.tolist(), *rows_o.tolist()])), dtype=np.int64)
        if len(union) == 0:
            return union, np.empty(0, np.float32)
        in_model = union < n_model
        model_scores = np.zeros(len(union), dtype=np.float64)
        if in_model.any():
            model_scores[in_model] = self.model.score(np.full(int(in_model.sum()), ctx.u), union[in_model])
            model_scores[~in_model] = model_scores[in_model].min()
        b = self.settings.online_weight
        final = (1.0 - b) * _minmax(model_scores) + b * _minmax(self.items.index.exact_scores(online, union))
        order = np.argsort(-final, kind="stable")
        return union[order], final[order].astype(np.float32)

    def _fill(
        self, ctx: RequestContext, allowed: np.ndarray, pool: int, rows: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Complete a short model list (items the model cannot score: catalogue-only or new ones) from
        the user's text profile, scored ``min(model) - 1 + cos / 2`` so they rank below every model item."""
        user_vec = self._offline_vector(ctx.u) if ctx.u is not None else None
        if user_vec is None:
            return rows, scores
        rest = allowed.copy()
        rest[rows] = False
        extra, cos = self.items.index.search(unit(user_vec), pool - len(rows), rest)
        floor = float(scores.min()) if len(scores) else 0.0
        return np.concatenate([rows, extra]), np.concatenate([scores, (floor - 1.0 + cos / 2).astype(np.float32)])

    def _history(self, user_id: str | None, u: int | None, limit: int = 20) -> list[why.HistoryItem]:
        out: list[why.HistoryItem] = []
        if user_id is not None:
            for e in self.store.recent_events(user_id, limit):
                row = self.items.any_row(e.item_id)
                if row is not None:
                    out.append(why.HistoryItem(row, "event", e.type))
        if u is not None:
            seen = self.model.seen_
            for row in seen.indices[seen.indptr[u] : seen.indptr[u + 1]][-50:]:
                out.append(why.HistoryItem(int(row), "training", None))
        return out

    def _reasons(self, ctx: RequestContext, rows: np.ndarray) -> list[str]:
        history = [] if ctx.strategy in ("popularity", "query") else self._history(ctx.user_id, ctx.u, limit=10)
        return why.reasons(ctx.strategy, ctx.query, rows, history, self.items, type(self.model).__name__)

    # ------------------------------------------------------------------ events
    def ingest(self, events: Sequence[EventIn]) -> EventsResponse:
        """Validate, log durably (committed before returning) and absorb into the users' profiles."""
        s = self.settings
        if len(events) > s.max_events_per_batch:
            raise TooLarge("events", f"{len(events)} events exceed max_events_per_batch={s.max_events_per_batch}")
        self.item_updates.maybe_sync()
        now = time.time()
        valid: list[Event] = []
        rejected: list[EventRejection] = []
        for i, e in enumerate(events):
            error = None
            if e.type not in s.event_weights:
                error = f"events[{i}].type: unknown event type {e.type!r}; known: {sorted(s.event_weights)}"
            elif self.items.row(e.item_id) is None:
                error = f"events[{i}].item_id: unknown item {e.item_id!r}"
            elif e.type == "rating" and e.value is None:
                error = f"events[{i}].value: a rating event needs a value"
            if error is not None:
                rejected.append(EventRejection(index=i, event_id=e.event_id, error=error))
                continue
            ts = e.timestamp.timestamp() if hasattr(e.timestamp, "timestamp") else e.timestamp
            valid.append(Event(e.event_id, e.user_id, e.item_id, e.type, e.value, float(ts if ts is not None else now), e.scenario))
        accepted: list[StoredEvent] = []
        if valid:
            with self.store.write() as tx:
                accepted = [x for x in self.store.append_events(tx, valid) if x is not None]
                if self.profiles.transactional:
                    self._catch_up_many([e.user_id for e in accepted], tx)
            if not self.profiles.transactional:
                # duplicates' users too: a retried batch repairs a profile whose write failed after the commit
                self._catch_up_many([e.user_id for e in valid])
        rows = [self.items.any_row(e.item_id) for e in accepted]
        self.items.add_popularity([r for r in rows if r is not None])
        self.metrics.inc("lmrec_events_ingested_total", len(accepted))
        self.metrics.inc("lmrec_events_duplicate_total", len(valid) - len(accepted))
        self.metrics.inc("lmrec_events_rejected_total", len(rejected))
        return EventsResponse(accepted=len(accepted), duplicates=len(valid) - len(accepted), rejected=rejected)

    def _absorb(self, profile: Profile | None, events: list[StoredEvent]) -> Profile:
        s = self.settings
        vectors = []
        for e in events:
            row = self.items.any_row(e.item_id)
            vectors.append(None if row is None or e.type not in s.event_weights else self.items.vector(row))
        return absorb(
            profile, events, vectors, alpha=s.profile_alpha, weights=s.event_weights, space=self.space.name,
            rating_scale=s.rating_scale, half_life_s=s.profile_half_life_s,
        )

    def _catch_up_many(self, user_ids: Sequence[str], tx: Any = None) -> None:
        self.profiles.catch_up_many(user_ids, lambda user, seq: self.store.events_since(user, seq, tx), self._absorb, tx)

    def recover_profiles(self) -> int:
        """Bring every profile up to its user's last logged event (after a crash or a space change).

        Returns:
            How many profiles were behind the log.
        """
        stored = self.store.meta_get("profile_space")
        if stored != self.space.name:
            if stored is not None:
                log.info("vector space changed from %s to %s: rebuilding every profile", stored, self.space.name)
            self.profiles.delete_all()
            with self.store.write() as tx:
                self.store.meta_set(tx, "profile_space", self.space.name)
        marks = self.store.event_watermarks()
        have = self.profiles.watermarks(marks)
        behind = [user for user, seq in marks.items() if have.get(user, 0) < seq]
        for start in range(0, len(behind), 1000):
            self._catch_up_many(behind[start : start + 1000])
        if behind:
            log.info("caught up %d profiles with the event log", len(behind))
        return len(behind)

    # ------------------------------------------------------------------ items
    def put_item(self, item_id: str, text: str | None, attributes: Mapping[str, Any]) -> ItemWritten:
        """Add or replace an item (`lmrec.serve.catalog.ItemUpdates.put`)."""
        return self.item_updates.put(item_id, text, attributes)

    def delete_item(self, item_id: str) -> ItemDeleted:
        """Remove an item from results (`lmrec.serve.catalog.ItemUpdates.delete`)."""
        return self.item_updates.delete(item_id)

    def similar(self, item_id: str, k: int = 10) -> SimilarResponse:
        """Items nearest to one item in the served space (the item itself excluded)."""
        self._check_k(k)
        self.item_updates.maybe_sync()
        row = self.items.row(item_id)
        if row is None:
            raise NotFound("item_id", f"unknown item {item_id!r}")
        allowed = self.items.live_mask()
        allowed[row] = False
        rows, scores = self.items.index.search(self.items.vector(row), k, allowed)
        reason = f'similar to "{self.items.title(row)}"'
        out = [ScoredItem(item_id=self.items.ids[r], score=float(sc), reason=reason) for r, sc in zip(rows, scores)]
        return SimilarResponse(item_id=item_id, items=out, model_version=self.version)

    # ------------------------------------------------------------------ users
    def user_summary(self, user_id: str, limit: int | None = None) -> UserSummary:
        """Profile summary and recent events; `NotFound` for a user neither the model nor the log knows."""
        u = self._user_index(user_id)
        limit = self.settings.recent_events_shown if limit is None else limit
        with self.store.snapshot():  # the event count, the events and (SQLite) the profile from one state
            record = self.store.user(user_id)
            profile = self._online(user_id)
            recent = self.store.recent_events(user_id, limit)
        n_events = record.n_events if record is not None else 0
        if u is None and n_events == 0:
            raise NotFound("user_id", f"unknown user {user_id!r}")
        online = None
        if profile is not None:
            rows, scores = self.items.index.search(unit(profile.vector), 5, self.items.live_mask())
            top = [ScoredItem(item_id=self.items.ids[r], score=float(sc), reason="closest to the online profile") for r, sc in zip(rows, scores)]
            online = OnlineProfile(n_events=profile.n_events, last_event_at=profile.last_ts, top_items=top)
        seen = self.model.seen_
        return UserSummary(
            user_id=user_id,
            known_to_model=u is not None,
            n_training_items=int(seen.indptr[u + 1] - seen.indptr[u]) if u is not None else 0,
            n_events=n_events,
            first_event_at=record.first_event_at if record else None,
            last_event_at=record.last_event_at if record else None,
            online_profile=online,
            recent_events=[
                UserEvent(event_id=e.event_id, item_id=e.item_id, type=e.type, value=e.value, timestamp=e.ts, scenario=e.scenario)
                for e in recent
            ],
        )

    def forget_user(self, user_id: str) -> UserErased:
        """Erase the user's events and profile; stop using what the trained model knows of them."""
        in_model = user_id in self.model.user_map_
        with self.store.write() as tx:
            n = self.store.erase_user(tx, user_id, mark_forgotten=in_model)
            deleted = self.profiles.delete(user_id, tx) if self.profiles.transactional else False
        if not self.profiles.transactional:
            deleted = self.profiles.delete(user_id)
        if in_model:
            self._forgotten.add(user_id)
            with self._offline_lock:
                self._offline.pop(self.model.user_map_.get(user_id), None)
        return UserErased(user_id=user_id, events_deleted=n, profile_deleted=deleted, model_data_suppressed=in_model)

    # ------------------------------------------------------------------ explain and health
    def explain(self, item_id: str, user_id: str | None = None, query: str | None = None) -> ExplainResponse:
        """The history items and query terms behind recommending ``item_id``."""
        row = self.items.row(item_id)
        if row is None:
            raise NotFound("item_id", f"unknown item {item_id!r}")
        ctx = self.resolve(user_id, query)
        item = self.items.vector(row)
        if ctx.vec is not None:
            score: float | None = float(ctx.vec @ item)
        elif ctx.strategy == "popularity":
            score = float(self.items.popularity()[row])
        else:
            score = float(self.model.score(np.asarray([ctx.u]), np.asarray([row]))[0]) if row < self.items.n_model else None
        history = why.history_contributions(self._history(user_id, ctx.u, limit=50), item, self.items)
        terms = why.term_contributions(ctx.query, item, self.space) if ctx.query else []
        return ExplainResponse(
            item_id=item_id,
            score=score,
            strategy=ctx.strategy,  # type: ignore[arg-type]
            reason=self._reasons(ctx, np.asarray([row]))[0],
            history=history,
            query_terms=terms,
            model_version=self.version,
        )

    def health(self) -> HealthResponse:
        return HealthResponse(
            status="ok",
            model=type(self.model).__name__,
            model_version=self.version,
            space=self.space.name,
            index=self.items.index.kind,
            items=len(self.items),
            live_items=self.items.n_live,
            profile_store=type(self.profiles).__name__,
            events=self.store.count_events(),
        )


def _minmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    span = x.max() - x.min() if len(x) else 0.0
    return (x - x.min()) / span if span > 0 else np.ones_like(x)

