"""The library logic behind the HTTP routes: recommend, ingest events, manage items and users.

Who gets what (``/recommend``):

====================================  ==========================================================
request                               candidates
====================================  ==========================================================
query, no known profile               the query vector (``strategy="query"``)
no known profile, ``session_items``   the new user's vector from their session and/or text
and/or ``user_text``                  (``"session"``, ``"user_text"``, ``"session+user_text"``; with a
                                      query ``"query+profile"``): `lmrec.serve.cold`
known user, no query, vector model    the profile vector (``"profile"``)
known user, no query, other model     ``model.recommend``, blended with the online profile when the
                                      user has events (``"model"`` / ``"model+online"``)
known user and query                  ``unit(w * query + (1 - w) * profile)``, ``w = query_weight``
nothing known                         popularity (training counts plus logged events)
====================================  ==========================================================

A user's *profile* is ``unit((1 - b) * offline + b * online)`` with ``b = online_weight``: ``offline``
is the model's user vector (vector models) or the mean of the user's training items' text vectors
(other models); ``online`` is the decayed blend of the items in their logged events
(`lmrec.serve.profiles`). Either part alone is used when the other is missing. Keeping the online
profiles in step with the event log, and caching the offline vectors, is `lmrec.serve.profile_sync`.

Candidates per strategy, and the blend rule of ``"model+online"``, are `lmrec.serve.candidates`.

Writes are all or nothing: each is checked in full before it is committed to the SQLite store, and
the in-memory state (catalogue, index, popularity, erasures) changes only after the commit returned.
An item PUT is prepared aside (text, vector, every attribute against its column:
`lmrec.serve.catalog.ItemUpdates`), committed, then applied by a step that cannot fail. An event
batch with one bad event is a 422 naming every bad event, and nothing of it is logged
(`lmrec.serve.profile_sync.ProfileSync.check`). An erasure commits the deletion of the events and
(SQLite) the profile in one transaction before the user is suppressed in memory. A model swap builds
and checks the successor aside and only then swaps the reference (`lmrec.serve.swap`).
`RecService.health` reports "degraded" when the catalogue and the index disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lmrec.models.bundle import ModelBundle
from lmrec.models.lm.graph import encode_items_with_relations
from lmrec.serve import reasons as why
from lmrec.serve import related as kg
from lmrec.serve.attributes import FilterError, FilterSpec
from lmrec.serve.candidates import CandidateRetriever, RequestContext
from lmrec.serve.catalog import ItemUpdates
from lmrec.serve.cold import ColdProfile, ColdStart
from lmrec.serve.errors import BadRequest, NotFound, ServeError, TooLarge
from lmrec.serve.feedback.loop import FeedbackLoop
from lmrec.serve.items import ServedItems
from lmrec.serve.metrics import Metrics
from lmrec.serve.profile_sync import ProfileSync, UserVectorCache
from lmrec.serve.profiles import blend, unit
from lmrec.serve.ranking import BusinessRule, Candidates, RankContext, apply_rules, mmr
from lmrec.serve.schemas import (
    Erasure,
    EventIn,
    EventsResponse,
    ExplainResponse,
    ExportedEvent,
    ExportedImpression,
    ExportedProfile,
    HealthResponse,
    ItemDeleted,
    ItemWritten,
    OnlineProfile,
    Quarantined,
    RecommendResponse,
    RelatedResponse,
    ScoredItem,
    SimilarResponse,
    StoredQuery,
    StreamStatus,
    UserErased,
    UserEvent,
    UserExport,
    UserSummary,
)
from lmrec.serve.settings import ServeSettings
from lmrec.serve.space import VectorSpace
from lmrec.serve.stores.base import ProfileStore, StoredEvent
from lmrec.serve.stores.relations import RelationLog
from lmrec.serve.stores.sqlite import SQLiteStore

__all__ = ["BadRequest", "NotFound", "RecService", "RequestContext", "ServeError", "TooLarge"]


class RecService:
    """Everything the routes need; built by `lmrec.serve.loading.open_service`.

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
        forgotten: the set of erased users the trained model knows (shared by the services of
            successive models, so an erasure during a model swap reaches the new one); None reads
            it from the store.

    Attributes:
        retired: set once another model was swapped in; in-flight requests still finish here, but
            this service no longer writes rebuilt profiles.
        swaps: how many model swaps this process made before this service was swapped in.
        profile_sync: keeps the online profiles and event popularity in step with the event log.
        user_vectors: the model's user vectors, cached.
        retriever: the candidates of a resolved request.
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
        forgotten: set[str] | None = None,
        feedback: FeedbackLoop | None = None,
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
        self.forgotten = store.forgotten_users() if forgotten is None else forgotten
        self.retired = False
        self.swaps = 0
        self.scenarios = _scenario_names(self.model)
        self.scrubber = settings.scrubber()
        self.user_vectors = UserVectorCache(space, items)
        self.retriever = CandidateRetriever(self.model, items, settings.online_weight, self.user_vectors)
        self.cold = ColdStart(self.model, space, items, settings.query_weight)
        self.related = kg.ItemRelations.for_model(self.model, settings.model_dir)  # knowledge-graph relations
        self.relation_log = RelationLog(store)  # relations PUT with items, durable
        self.related.catch_up(self.relation_log)
        items.add_popularity(
            np.arange(items.n_model), np.asarray(self.model.seen_.sum(axis=0), dtype=np.float64).ravel()
        )
        self.item_updates = ItemUpdates(
            items, store, space, bundle, settings.items_sync_interval_s, scrub=self.scrubber
        )
        self.item_updates.apply(store.items_since(items.version))  # items PUT or DELETEd before this start
        self.profile_sync = ProfileSync(settings, store, profiles, items, space)
        self.profile_sync.catch_up_popularity()  # every logged event so far
        # impressions, suppression, the re-ranker: shared by the services of successive models
        self.feedback = feedback or FeedbackLoop(settings.feedback, store, settings.resolved_state_dir / "feedback")

    def catch_up_store(self) -> None:
        """Apply what other services wrote to the shared stores since this one was built: item PUTs and
        DELETEs, and logged events' popularity. A swap calls it while no write request is running."""
        self.item_updates.apply(self.store.items_since(self.items.version))
        self.related.catch_up(self.relation_log)
        self.profile_sync.catch_up_popularity()

    def close(self) -> None:
        self.feedback.save()
        self.profiles.close()
        self.store.close()

    # ------------------------------------------------------------------ resolution
    def _user_index(self, user_id: str | None) -> int | None:
        if user_id is None or user_id in self.forgotten:
            return None
        u = self.model.user_map_.get(user_id)
        return None if u < 0 or u >= self.model.n_users else u

    def scenario_id(self, scenario: str | None) -> int | None:
        """The model's id of a scenario name; None for no scenario, or for a model that is not scenario-aware.

        Raises:
            BadRequest: the model is scenario-aware and does not know ``scenario`` (lists the valid ones).
        """
        if scenario is None or self.scenarios is None:
            return None
        try:
            return self.scenarios.index(scenario)
        except ValueError:
            raise BadRequest("scenario", f"unknown scenario {scenario!r}; valid: {self.scenarios}") from None

    def resolve(
        self,
        user_id: str | None,
        query: str | None,
        scenario_id: int | None = None,
        new_user: Callable[[], ColdProfile | None] | None = None,
    ) -> RequestContext:
        """Turn a user id and a query into the retrieval vector and strategy (table in the module doc);
        ``new_user`` gives the profile of a user without history (called only for one)."""
        s = self.settings
        if query is not None and len(query) > s.max_query_chars:
            raise BadRequest("query", f"{len(query)} characters exceed max_query_chars={s.max_query_chars}")
        if query is not None:  # what reaches the encoder, the answer's reasons and the rules: scrubbed
            query = self.scrub(query).strip() or None
        u = self._user_index(user_id)
        profile = self.profile_sync.online(user_id)
        online = None if profile is None else profile.vector
        qvec = self.space.encode_queries([query])[0] if query else None
        if qvec is None and u is not None and self.space.kind == "text":
            strategy = "model+online" if online is not None else "model"
            return RequestContext(user_id, u, online, None, None, strategy, scenario_id, scenario_id is not None)
        offline = self.user_vectors.get(u, scenario_id) if u is not None else None
        applied = scenario_id is not None and offline is not None and self.space.kind == "model"
        user_vec = blend([(offline, 1.0 - s.online_weight), (online, s.online_weight)])
        cold = new_user() if new_user is not None and u is None and online is None else None
        if cold is not None:
            user_vec, applied = cold.vec, cold.scenario_applied
            if qvec is None and user_vec is not None:
                return RequestContext(user_id, u, None, None, user_vec, cold.strategy, scenario_id, applied, cold)
        if qvec is not None:
            vec = blend([(qvec, s.query_weight), (user_vec, 1.0 - s.query_weight)])
            strategy = "query+profile" if user_vec is not None else "query"
            return RequestContext(user_id, u, online, query, vec, strategy, scenario_id, applied, cold)
        if user_vec is not None:
            return RequestContext(user_id, u, online, None, user_vec, "profile", scenario_id, applied)
        return RequestContext(user_id, u, online, None, None, "popularity", scenario_id, cold=cold)

    def scrub(self, text: str) -> str:
        """``text`` through the PII scrubber (unchanged when ``scrub_pii`` is off)."""
        return text if self.scrubber is None else self.scrubber(text)

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
        session_items: Sequence[str] | None = None,
        user_text: str | None = None,
        mode: str = "default",
    ) -> RecommendResponse:
        """Top-``k`` items for a user and/or a query (see the module docstring).

        ``scenario`` goes to the business rules; a scenario-aware model (``is_scenario_aware``) also
        scores in it (an unknown name is a `BadRequest` listing the valid ones), another model ignores
        it, and the response's ``scenario_applied`` says which happened. ``session_items`` and
        ``user_text`` describe a user without history (`lmrec.serve.cold`); for a known user they
        are not used, and the answer's ``notes`` say so.
        """
        self._check_k(k)
        self.cold.check(session_items, user_text, self.settings.max_session_items, self.settings.max_user_text_chars)
        scenario_id = self.scenario_id(scenario)
        self.item_updates.maybe_sync()
        if query is not None and query.strip() and self.settings.store_queries != "none":
            if len(query) > self.settings.max_query_chars:
                raise BadRequest(
                    "query", f"{len(query)} characters exceed max_query_chars={self.settings.max_query_chars}"
                )
            kept = query if self.settings.store_queries == "raw" else self.scrub(query)
            self.store.log_query(user_id, kept, time.time())
        n = len(self.items)
        allowed = self.items.live_mask(n)
        if filters:
            try:
                allowed &= self.items.attributes.mask(filters, n)
            except FilterError as exc:
                raise BadRequest(exc.field, str(exc).split(": ", 1)[1]) from None
        text = None if user_text is None else (self.scrub(user_text).strip() or None)
        wants_cold = bool(session_items) or text is not None
        new_user = (lambda: self.cold.resolve(session_items or [], text, scenario_id)) if wants_cold else None
        ctx = self.resolve(user_id, query, scenario_id, new_user)
        if exclude_seen and user_id is not None:
            seen = self._seen_rows(user_id, ctx.u)
            allowed[seen[seen < n]] = False
        if exclude_seen and ctx.cold is not None:
            allowed[ctx.cold.rows[ctx.cold.rows < n]] = False
        self.feedback.suppress(user_id, allowed, self.items)  # said no to: never shown again
        pool = k if diversity == 0 and not self.rules else max(k, self.settings.candidate_pool)
        pool = self.feedback.pool(k, pool)
        mode_notes = self._complements_only(ctx, allowed) if mode == "complements" else []
        rows, scores = self.retriever.retrieve(ctx, allowed, pool)
        cands = Candidates(rows, scores, tuple(self.items.ids[r] for r in rows))
        context = RankContext(user_id, ctx.query, scenario, k, self.items.attributes.row)
        cands = apply_rules(cands, context, self.rules)
        # the user's latest events, read once for the re-ranker's features and the explanations, when either reads them
        explained = ctx.cold is None and ctx.strategy not in ("popularity", "query")
        reads = self.feedback.reads_features or explained
        recent = self.store.recent_events(user_id, 20) if user_id is not None and reads else None
        ranking = self.feedback.rank(
            cands,
            user_id=user_id,
            has_query=ctx.query is not None,
            online=ctx.online,
            items=self.items,
            exploring=diversity == 0,
            recent=recent,
        )
        cands = ranking.candidates
        if diversity > 0 and len(cands) > 1:
            cands = cands.select(mmr(cands.scores, self.items.index.vectors[cands.rows], k, diversity))
        else:
            cands = cands.select(np.arange(min(k, len(cands))))
        request_id = self.feedback.shown(ranking, cands, user_id)
        texts = self._reasons(ctx, cands.rows, recent)
        self.metrics.inc("lmrec_recommendations_total", strategy=ctx.strategy)
        return RecommendResponse(
            items=[
                ScoredItem(item_id=i, score=float(sc), reason=r)
                for i, sc, r in zip(cands.item_ids, cands.scores, texts)
            ],
            model_version=self.version,
            strategy=ctx.strategy,  # type: ignore[arg-type]
            user_id=user_id,
            known_user=ctx.u is not None or ctx.online is not None,
            scenario=scenario,
            scenario_applied=ctx.scenario_applied,
            used=ctx.used(),  # type: ignore[arg-type]
            unknown_session_items=ctx.cold.unknown if ctx.cold is not None else [],
            notes=[*ctx.notes(wants_cold), *self.profile_sync.notes(), *mode_notes],
            request_id=request_id,
        )

    def _history(
        self, user_id: str | None, u: int | None, limit: int = 20, recent: Sequence[StoredEvent] | None = None
    ) -> list[why.HistoryItem]:
        """The user's latest logged events (``recent``, newest first, when the caller read them already)
        and training items, as the explanations read them."""
        out: list[why.HistoryItem] = []
        if user_id is not None:
            events = self.store.recent_events(user_id, limit) if recent is None else recent[:limit]
            for e in events:
                row = self.items.any_row(e.item_id)
                if row is not None:
                    out.append(why.HistoryItem(row, "event", e.type))
        if u is not None:
            seen = self.model.seen_
            for row in seen.indices[seen.indptr[u] : seen.indptr[u + 1]][-50:]:
                out.append(why.HistoryItem(int(row), "training", None))
        return out

    def _reasons(self, ctx: RequestContext, rows: np.ndarray, recent: Sequence[StoredEvent] | None = None) -> list[str]:
        if ctx.cold is not None:
            history = [why.HistoryItem(int(r), "session", None) for r in ctx.cold.rows[-10:]]
            profile_text = "user_text" in ctx.cold.used
        elif ctx.strategy in ("popularity", "query"):
            history, profile_text = [], False
        else:
            history = self._history(ctx.user_id, ctx.u, limit=10, recent=recent)
            profile_text = False
        if ctx.strategy == "popularity":
            history = []
        return why.reasons(
            ctx.strategy, ctx.query, rows, history, self.items, type(self.model).__name__, profile_text=profile_text
        )

    # ------------------------------------------------------------------ events
    def ingest(self, events: Sequence[EventIn]) -> EventsResponse:
        """Check the whole batch, log it durably (committed before returning) and absorb it into the
        users' profiles (`lmrec.serve.profile_sync.ProfileSync.ingest`).

        Raises:
            TooLarge: more than ``max_events_per_batch`` events.
            BadRequest: an event is bad; the batch was not logged and nothing changed.
        """
        s = self.settings
        if len(events) > s.max_events_per_batch:
            raise TooLarge("events", f"{len(events)} events exceed max_events_per_batch={s.max_events_per_batch}")
        self.item_updates.maybe_sync()
        events = self.feedback.expand(events, set(s.event_weights))  # skips of unclicked items, by setting
        try:
            out = self.profile_sync.ingest(events)
        except BadRequest:
            self.metrics.inc("lmrec_events_rejected_total", len(events))
            raise
        self.feedback.responses(events, self.metrics)  # events naming a request_id: matched or not
        self.metrics.inc("lmrec_events_ingested_total", out.accepted)
        self.metrics.inc("lmrec_events_duplicate_total", out.duplicates)
        return out

    def recover_profiles(self) -> int:
        """Bring every profile up to its user's last logged event; returns how many were behind
        (`lmrec.serve.profile_sync.ProfileSync.recover`)."""
        return self.profile_sync.recover()

    def rebuild_profiles(self, batch: int = 200) -> int:
        """After a swap: rewrite every profile from another space from the event log, until this service
        is retired; returns how many users were visited (`lmrec.serve.profile_sync.ProfileSync.rebuild`)."""
        return self.profile_sync.rebuild(batch, stop=lambda: self.retired)

    # ------------------------------------------------------------------ items
    def put_item(
        self,
        item_id: str,
        text: str | None,
        attributes: Mapping[str, Any],
        relations: Sequence[tuple[str, str]] | None = None,
    ) -> ItemWritten:
        """Add or replace an item (`lmrec.serve.catalog.ItemUpdates.put`); a text longer than
        ``max_item_text_chars`` is a `BadRequest`. ``relations`` (``(relation, target)``) join the
        service's graph; those the model knows also shape the item's vector (`lmrec.serve.related`)."""
        limit = self.settings.max_item_text_chars
        if text is not None and len(text) > limit:
            raise BadRequest("text", f"{len(text)} characters exceed max_item_text_chars={limit}")
        out = self.item_updates.put(item_id, text, attributes)
        return out if not relations else self._put_relations(out, attributes, relations)

    def _put_relations(
        self, out: ItemWritten, attributes: Mapping[str, Any], relations: Sequence[tuple[str, str]]
    ) -> ItemWritten:
        pairs = kg.clean_relations(relations)
        known = self.related.model_relations or set()
        used = [(r, t) for r, t in pairs if r in known]
        row = self.items.row(out.item_id)
        vector = None
        if used and row is not None and self.space.kind == "model":
            vector = encode_items_with_relations(self.model, [self.items.texts[row]], [used])[0]
        stored = kg.store_relations(
            self.related, self.relation_log, self.items, self.space.name, out.item_id, pairs, attributes, vector
        )
        notes = []
        if stored["ignored_by_model"]:
            notes.append("the model was not trained with these relations and ignores them: stored for /related only")
        if vector is not None:
            notes.append(f"the item's vector uses {len(used)} relation(s)")
        return out.model_copy(
            update={
                "relations_stored": stored["stored"],
                "relations_ignored": stored["ignored_by_model"],
                "notes": notes,
            }
        )

    def related_items(self, item_id: str, relation: str, k: int = 10) -> RelatedResponse:
        """Items related to one item by ``relation`` in the knowledge graph, ranked by the model, then the
        model's nearest items when the graph has fewer than ``k`` (`lmrec.serve.related.related_items`)."""
        self._check_k(k)
        self.item_updates.maybe_sync()
        self.related.maybe_catch_up(self.relation_log, self.settings.items_sync_interval_s)
        if self.items.row(item_id) is None:
            raise NotFound("item_id", f"unknown item {item_id!r}")
        out, n_graph = kg.related_items(self.related, self.items, item_id, relation, k)
        return RelatedResponse(
            item_id=item_id, relation=relation, items=out, from_graph=n_graph, model_version=self.version
        )

    def _recent(self, user_id: str | None, u: int | None, limit: int = 10) -> list[tuple[str, float | None, str]]:
        """``(item id, time, verb)`` of the user's recent items, most recent first: logged events, then
        the model's training history (with its times where the model keeps them)."""
        out: list[tuple[str, float | None, str]] = []
        if user_id is not None:
            for e in self.store.recent_events(user_id, limit):
                out.append((e.item_id, e.ts, kg.past_tense(e.type)))
        if u is not None:
            hist = getattr(self.model, "hist_items_", None)
            times = getattr(self.model, "hist_times_", None)
            if hist is not None and u < len(hist):
                ids = self.model.item_map_.to_ids(hist[u][-limit:])
                ts = times[u][-limit:] if times is not None else [None] * len(ids)
                out += [(str(i), float(t) if t is not None else None, "bought") for i, t in zip(ids[::-1], ts[::-1])]
            else:
                seen = self.model.seen_
                rows = seen.indices[seen.indptr[u] : seen.indptr[u + 1]][-limit:]
                out += [(self.items.ids[r], None, "bought") for r in rows[::-1]]
        return out[:limit]

    def _complements_only(self, ctx: RequestContext, allowed: np.ndarray) -> list[str]:
        """Restrict ``allowed`` to complements of the user's recent items (``mode="complements"``)."""
        self.related.maybe_catch_up(self.relation_log, self.settings.items_sync_interval_s)
        history = [i for i, _, _ in self._recent(ctx.user_id, ctx.u)]
        if ctx.cold is not None:
            history += [self.items.ids[r] for r in ctx.cold.rows[::-1]]
        rows = kg.complement_rows(self.related, self.items, history)
        rows = rows[rows < len(allowed)]
        keep = np.zeros_like(allowed)
        keep[rows] = True
        if not (allowed & keep).any():
            return ["mode complements: the knowledge graph relates no unseen item to the recent items; usual list"]
        allowed &= keep
        return [f"mode complements: {int(allowed.sum())} complements of {len(history)} recent items"]

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
        self.profile_sync.sync_user(user_id)  # the Redis store: this replica has the user's latest events
        with self.store.snapshot():  # the event count, the events and (SQLite) the profile from one state
            record = self.store.user(user_id)
            profile = self.profile_sync.online(user_id)
            recent = self.store.recent_events(user_id, limit)
        n_events = record.n_events if record is not None else 0
        if u is None and n_events == 0:
            raise NotFound("user_id", f"unknown user {user_id!r}")
        online = None
        if profile is not None:
            rows, scores = self.items.index.search(unit(profile.vector), 5, self.items.live_mask())
            top = [
                ScoredItem(item_id=self.items.ids[r], score=float(sc), reason="closest to the online profile")
                for r, sc in zip(rows, scores)
            ]
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
                UserEvent(
                    event_id=e.event_id,
                    item_id=e.item_id,
                    type=e.type,
                    value=e.value,
                    timestamp=e.ts,
                    scenario=e.scenario,
                )
                for e in recent
            ],
        )

    def export_user(self, user_id: str) -> UserExport:
        """Everything the service holds about a user, machine-readable: the training interactions the
        served model has, the logged events (every column), the stored online profile, stored queries
        and the erasure state. `NotFound` when it holds nothing."""
        u = self.model.user_map_.get(user_id)
        in_model = 0 <= u < self.model.n_users
        self.profile_sync.sync_user(user_id)
        with self.store.snapshot():
            record = self.store.user(user_id)
            events, queries = self.store.export_user(user_id)
            profile = self.profiles.get(user_id)
            impressions = self.feedback.impressions.for_user(user_id)
        if not in_model and record is None and not events and not queries and profile is None and not impressions:
            raise NotFound("user_id", f"unknown user {user_id!r}")
        seen = self.model.seen_
        training = [self.items.ids[r] for r in seen.indices[seen.indptr[u] : seen.indptr[u + 1]]] if in_model else []
        forgotten = user_id in self.forgotten or (record is not None and record.forgotten)
        return UserExport(
            user_id=user_id,
            exported_at=time.time(),
            known_to_model=in_model,
            training_items=training,
            n_events_logged=record.n_events if record is not None else 0,
            first_event_at=record.first_event_at if record is not None else None,
            last_event_at=record.last_event_at if record is not None else None,
            erasure=Erasure(forgotten=forgotten, model_data_suppressed=forgotten and in_model),
            events=[ExportedEvent(timestamp=e["ts"], **{k: v for k, v in e.items() if k != "ts"}) for e in events],
            online_profile=None
            if profile is None
            else ExportedProfile(
                space=profile.space,
                n_events=profile.n_events,
                last_event_at=profile.last_ts,
                vector=[float(x) for x in profile.vector],
            ),
            queries=[StoredQuery(**q) for q in queries],
            retention_days=dict(self.settings.retention_days),
            impressions=[ExportedImpression(**x) for x in impressions],
        )

    def forget_user(self, user_id: str) -> UserErased:
        """Erase the user's events and profile; stop using what the trained model knows of them."""
        in_model = user_id in self.model.user_map_
        n, deleted = self.profile_sync.erase(user_id, mark_forgotten=in_model)
        self.store.checkpoint()  # the erased rows leave the write-ahead log too
        if in_model:
            self.forgotten.add(user_id)
            self.user_vectors.forget(self.model.user_map_.get(user_id))
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
            score = (
                float(self.model.score(np.asarray([ctx.u]), np.asarray([row]))[0]) if row < self.items.n_model else None
            )
        history = why.history_contributions(self._history(user_id, ctx.u, limit=50), item, self.items)
        terms = why.term_contributions(ctx.query, item, self.space) if ctx.query else []
        reason = self._reasons(ctx, np.asarray([row]))[0]
        self.related.maybe_catch_up(self.relation_log, self.settings.items_sync_interval_s)
        link = kg.relation_reason(self.related, self.items, item_id, self._recent(user_id, ctx.u, limit=20))
        return ExplainResponse(
            item_id=item_id,
            score=score,
            strategy=ctx.strategy,  # type: ignore[arg-type]
            reason=reason if link is None else f"{link[1]}; {reason}",
            history=history,
            query_terms=terms,
            model_version=self.version,
            relation=None if link is None else link[0],
        )

    def check(self) -> list[str]:
        """Disagreements between the catalogue and the item index (`ServedItems.check`); [] when none."""
        with self.items.lock:  # not in the middle of an item write
            return self.items.check()

    def health(self) -> HealthResponse:
        """Liveness, the model served, and whether the catalogue and the index agree ("degraded" with
        the reasons when not); stored records set aside at replay are counted in ``quarantined``."""
        problems = self.check()
        stream = self.profile_sync.stream
        status = getattr(stream, "status", None)
        if stream is not None and status is not None:
            problems += stream.problems()  # type: ignore[attr-defined]
        return HealthResponse(
            status="degraded" if problems else "ok",
            problems=problems,
            quarantined=Quarantined(
                items=len(self.item_updates.quarantined), events=self.store.count_quarantined("event")
            ),
            model=type(self.model).__name__,
            model_version=self.version,
            model_dir=str(self.settings.model_dir),
            swaps=self.swaps,
            scenarios=self.scenarios,
            space=self.space.name,
            index=self.items.index.kind,
            index_tuning=self.items.index.tuned,
            items=len(self.items),
            live_items=self.items.n_live,
            profile_store=type(self.profiles).__name__,
            events=self.store.count_events(),
            stream=None if status is None else StreamStatus(**status()),
            feedback=self.feedback.health(),
        )


def _scenario_names(model: Any) -> list[str] | None:
    """The scenario names of a scenario-aware model (position = scenario id), else None."""
    if not getattr(model, "is_scenario_aware", False):
        return None
    names = [str(n) for n in getattr(model, "scenario_names_", None) or []]
    return names or None
