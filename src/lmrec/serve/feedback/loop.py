"""The feedback loop of one deployment: impressions, responses, suppression, the adaptive re-ranker.

`RecService` calls it at four points of ``/recommend`` and ``/events``:

1. ``suppress``: before retrieval, the items the user said no to (``suppress_types``: dislike,
   dismiss), and optionally their near duplicates, leave the allowed mask, whatever ``exclude_seen``;
2. ``rank``: the retrieved pool (``pool`` widens it to ``rerank_pool``) is ordered by the linear
   model of `lmrec.serve.feedback.linear` over the features of `lmrec.serve.feedback.features`,
   exploring with probability ``explore_rate``;
3. ``shown``: the answer gets a ``request_id``; the shown list stays open in memory, and is logged
   durably (`ImpressionLog`) for a sampled share of answers;
4. ``responses``: an event naming a ``request_id`` marks its item as clicked (``positive_types``) or
   answered; a ``request_id`` that is unknown, older than ``impression_ttl_s`` or of another user
   counts as unmatched, and the event is logged as a plain one all the same.

A user's open list is closed by their next request (or when it leaves the bounded memory): each shown
item then updates the model with reward 1 when clicked, else 0. The model (and so the ranking) is
per deployment and shared across model swaps (`lmrec.serve.loading.open_successor` passes it on); its
state is saved to ``<state_dir>/feedback/reranker.{npz,json}`` every ``save_every`` updates (by a
saver thread, from a copy: no request waits on the files) and at shutdown, and loaded at start; a
state that does not load gives a fresh model, said in ``/health``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmrec.serve.feedback.config import FeedbackSettings
from lmrec.serve.feedback.features import FEATURES, candidate_features, category_share, category_share_codes
from lmrec.serve.feedback.impressions import ImpressionLog, ImpressionRecord, Response
from lmrec.serve.feedback.linear import LinearThompson
from lmrec.serve.items import ServedItems
from lmrec.serve.metrics import Metrics
from lmrec.serve.profiles import unit
from lmrec.serve.ranking import Candidates
from lmrec.serve.schemas import EventIn, FeedbackHealth
from lmrec.serve.stores.base import StoredEvent
from lmrec.serve.stores.sqlite import SQLiteStore

__all__ = ["FeedbackLoop", "Ranking", "prior_mean"]

log = logging.getLogger(__name__)

STATE_NAME = "reranker"


def prior_mean(score_weight: float) -> np.ndarray:
    """The weights before learning: the retrieval score only (its order is the retrieval order)."""
    out = np.zeros(len(FEATURES))
    out[FEATURES.index("score")] = score_weight
    return out


@dataclass
class Ranking:
    """The pool as `FeedbackLoop.rank` ordered it.

    Attributes:
        candidates: the pool in the order to show.
        policy: the mode that ordered it.
        explored: the order was randomised.
        epsilon: the exploration rate in force.
        pool: the pool in retrieval order (None when no features were computed).
        features: (m, f) feature rows of ``pool``.
        greedy: positions into ``pool`` of the greedy order.
        propensities: (m,) probability of each item of ``candidates`` in its position, when known.
    """

    candidates: Candidates
    policy: str = "static"
    explored: bool = False
    epsilon: float = 0.0
    pool: Candidates | None = None
    features: np.ndarray | None = None
    greedy: np.ndarray | None = None
    propensities: np.ndarray | None = None


@dataclass
class _Open:
    request_id: str
    user_id: str | None
    at: float
    item_ids: list[str]
    features: np.ndarray | None  # (k, f) of the shown items
    logged: bool
    clicked: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)


class FeedbackLoop:
    """See the module docstring.

    Args:
        settings: the feedback settings.
        store: the service's SQLite store.
        state_dir: where the re-ranker's state is saved (None: never saved).
        random_state: seed of exploration and impression sampling.
        max_open: impressions held in memory (the oldest is closed beyond it).
    """

    def __init__(
        self,
        settings: FeedbackSettings,
        store: SQLiteStore,
        state_dir: Path | None,
        *,
        random_state: int | None = None,
        max_open: int = 10_000,
    ) -> None:
        self.settings = settings
        self.impressions = ImpressionLog(store)
        self.store = store
        self.state_path = None if state_dir is None else Path(state_dir) / STATE_NAME
        self.max_open = max_open
        self.rng = np.random.default_rng(random_state)
        self.lock = threading.Lock()
        self.problem: str | None = None
        self.state = "off"
        self.unmatched = 0
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._latest: dict[str, str] = {}  # user -> their open request id
        self._shown: OrderedDict[str, Counter[str]] = OrderedDict()  # user -> item -> times shown lately
        self._unsaved = 0
        self._save_lock = threading.Lock()  # one writer of the state files at a time
        self._save_due = threading.Event()
        self._saver: threading.Thread | None = None
        self.model: LinearThompson | None = None
        if settings.reranker != "off":
            self.model = self._load()

    def _fresh(self) -> LinearThompson:
        s = self.settings
        return LinearThompson(FEATURES, prior_mean(s.prior_score_weight), l2=s.l2, noise=s.noise)

    def _load(self) -> LinearThompson:
        self.state = "fresh"
        if self.state_path is None or not self.state_path.with_suffix(".json").exists():
            return self._fresh()
        try:
            model = LinearThompson.load(self.state_path, FEATURES, noise=self.settings.noise)
        except ValueError as exc:
            self.problem = f"the re-ranker state did not load; started fresh: {exc}"
            log.warning("%s", self.problem)
            return self._fresh()
        self.state = "loaded"
        return model

    # ------------------------------------------------------------------ before retrieval
    def pool(self, k: int, pool: int) -> int:
        """Candidates to retrieve: ``pool``, widened to ``rerank_pool`` when the re-ranker is on."""
        return pool if self.model is None else max(k, pool, self.settings.rerank_pool)

    def suppress(self, user_id: str | None, allowed: np.ndarray, items: ServedItems) -> None:
        """Clear, in ``allowed``, the items the user answered with a ``suppress_types`` event (and their
        near duplicates when ``suppress_similar`` is set)."""
        types = self.settings.suppress_types
        if user_id is None or not types:
            return
        marks = ", ".join("?" * len(types))
        found = self.store.connection().execute(
            f"SELECT DISTINCT item_id FROM events WHERE user_id = ? AND type IN ({marks})", (user_id, *types)
        )
        rows = [r for r in (items.any_row(i) for (i,) in found) if r is not None and r < len(allowed)]
        if not rows:
            return
        allowed[rows] = False
        threshold = self.settings.suppress_similar
        if threshold is not None:
            vectors = items.index.vectors
            for row in rows:
                near, scores = items.index.search(unit(vectors[row]), 50, allowed)
                norms = np.linalg.norm(vectors[near], axis=1)
                cos = scores / np.maximum(norms, 1e-12)
                allowed[near[cos >= threshold]] = False

    # ------------------------------------------------------------------ ranking
    def _times_shown(self, user_id: str | None) -> Counter[str]:
        if user_id is None:
            return Counter()
        with self.lock:
            counts = self._shown.get(user_id)
            if counts is not None:
                self._shown.move_to_end(user_id)
                return counts
        counts = Counter()
        since = time.time() - self.settings.impression_ttl_s
        for shown in self.impressions.recent_items(user_id, since):  # after a restart: from the log
            counts.update(shown)
        with self.lock:
            counts = self._shown.setdefault(user_id, counts)
            if len(self._shown) > 100_000:
                self._shown.popitem(last=False)
        return counts

    @property
    def reads_features(self) -> bool:
        """`rank` computes the pool's features: a re-ranker is on, or pools are logged with impressions."""
        return self.model is not None or (self.settings.impression_sample > 0 and self.settings.log_pool)

    def rank(
        self,
        cands: Candidates,
        *,
        user_id: str | None,
        has_query: bool,
        online: np.ndarray | None,
        items: ServedItems,
        exploring: bool = True,
        recent: Sequence[StoredEvent] | None = None,
    ) -> Ranking:
        """Order the pool (see the module docstring); ``exploring=False`` (a diversity request) keeps
        the greedy order. Closes the user's previous open list first, so it has learned from it.
        ``recent``: the user's latest logged events, newest first, when the caller read them already."""
        if user_id is not None:
            self._close_latest(user_id)
        if len(cands) == 0 or not self.reads_features:
            return Ranking(cands)
        x = self._features(cands, user_id, has_query, online, items, recent)
        m = len(cands)
        if self.model is None:  # off, but the pool is logged: the retrieval order is the greedy one
            ones = np.ones(m, dtype=np.float32)
            return Ranking(cands, pool=cands, features=x, greedy=np.arange(m), propensities=ones)
        s = self.settings
        with self.lock:
            theta = self.model.mean
            greedy_scores = x @ theta
            greedy = np.argsort(-greedy_scores, kind="stable")
            explore = exploring and s.reranker in ("thompson", "epsilon") and self.rng.random() < s.explore_rate
            eps = s.explore_rate if exploring and s.reranker in ("thompson", "epsilon") else 0.0
            if explore and s.reranker == "thompson":
                scores = x @ self.model.sample(self.rng)
                order = np.argsort(-scores, kind="stable")
            elif explore:
                order = self.rng.permutation(m)
                scores = greedy_scores
            else:
                order, scores = greedy, greedy_scores
        props = None
        if s.reranker in ("greedy", "epsilon") or not exploring:
            # epsilon: (1 - eps) for the greedy item of the slot, plus eps / m (a uniform arrangement)
            props = ((1.0 - eps) * (order == greedy) + eps / m).astype(np.float32)
        shown = Candidates(cands.rows[order], scores[order].astype(np.float32), tuple(cands.item_ids[i] for i in order))
        return Ranking(shown, s.reranker, bool(explore), eps, cands, x, greedy, props)

    def _features(
        self,
        cands: Candidates,
        user_id: str | None,
        has_query: bool,
        online: np.ndarray | None,
        items: ServedItems,
        recent_events: Sequence[StoredEvent] | None = None,
    ) -> np.ndarray:
        rows = cands.rows
        pop = items.popularity()
        shown = self._times_shown(user_id)
        affinity = None
        if online is not None and np.any(online):
            v = items.index.vectors[rows]
            affinity = (v @ unit(online)) / np.maximum(np.linalg.norm(v, axis=1), 1e-12)
        category = None
        attr = self.settings.category_attribute
        if attr is not None and user_id is not None and attr in items.attributes.names:
            if recent_events is None:
                recent_events = self.store.recent_events(user_id, 20)
            found = [items.any_row(e.item_id) for e in recent_events[:20]]
            recent_rows = np.asarray([r for r in found if r is not None], dtype=np.int64)
            recent_codes = items.attributes.codes(attr, recent_rows)
            if recent_codes is not None:  # one text value per item: vectorised
                codes = items.attributes.codes(attr, rows)
                assert codes is not None
                category = category_share_codes(codes, recent_codes)
            elif len(recent_rows):  # lists of values
                recent = [items.attributes.value(int(r), attr) for r in recent_rows]
                category = category_share([items.attributes.value(int(r), attr) for r in rows], recent)
        return candidate_features(
            cands.scores,
            has_query=has_query,
            popularity=pop[rows],
            max_popularity=items.max_popularity() if len(pop) else 1.0,
            fresh=rows >= items.n_model,
            times_shown=np.asarray([shown.get(i, 0) for i in cands.item_ids], dtype=np.float64),
            affinity=affinity,
            category=category,
        )

    # ------------------------------------------------------------------ answers
    def shown(self, ranking: Ranking, final: Candidates, user_id: str | None) -> str:
        """Record the answer ``final`` (drawn from ``ranking``) and return its ``request_id``."""
        request_id = uuid.uuid4().hex
        now = time.time()
        k = len(final)
        features = None
        if ranking.pool is not None and ranking.features is not None:
            where = {int(r): i for i, r in enumerate(ranking.pool.rows)}
            features = ranking.features[[where[int(r)] for r in final.rows]]
        same_order = np.array_equal(final.rows, ranking.candidates.rows[:k])
        s = self.settings
        logged = s.impression_sample > 0 and (s.impression_sample >= 1 or self.rng.random() < s.impression_sample)
        entry = _Open(request_id, user_id, now, list(final.item_ids), features, logged)
        with self.lock:
            self._open[request_id] = entry
            if user_id is not None:
                self._latest[user_id] = request_id
                counts = self._shown.setdefault(user_id, Counter())
                counts.update(final.item_ids)
            evicted = self._open.popitem(last=False)[1] if len(self._open) > self.max_open else None
        if evicted is not None:
            self._close(evicted)
        if logged:
            pool = ranking.pool if s.log_pool else None
            self.impressions.write(
                ImpressionRecord(
                    request_id,
                    user_id,
                    now,
                    ranking.policy,
                    ranking.explored,
                    ranking.epsilon,
                    list(final.item_ids),
                    final.scores,
                    ranking.propensities[:k] if ranking.propensities is not None and same_order else None,
                    list(pool.item_ids) if pool is not None else [],
                    ranking.features if pool is not None else None,
                    [int(i) for i in ranking.greedy] if pool is not None and ranking.greedy is not None else [],
                )
            )
        return request_id

    def _close_latest(self, user_id: str) -> None:
        with self.lock:
            rid = self._latest.pop(user_id, None)
            entry = self._open.pop(rid, None) if rid is not None else None
        if entry is not None:
            self._close(entry)

    def _close(self, entry: _Open) -> None:
        """Learn from a finished list: reward 1 for each clicked item, 0 for the others."""
        if self.model is None or entry.features is None or not len(entry.item_ids):
            return
        rewards = np.asarray([1.0 if i in entry.clicked else 0.0 for i in entry.item_ids])
        with self.lock:
            self.model.update(entry.features, rewards)
            self._unsaved += 1
            due = self._unsaved >= self.settings.save_every
        if due:
            self._request_save()

    def _request_save(self) -> None:
        """Have the saver thread write the state, so no request waits on the files."""
        if self.state_path is None:
            return
        with self.lock:
            if self._saver is None or not self._saver.is_alive():
                self._saver = threading.Thread(target=self._save_when_due, name="lmrec-feedback-saver", daemon=True)
                self._saver.start()
        self._save_due.set()

    def _save_when_due(self) -> None:
        while True:
            self._save_due.wait()
            self._save_due.clear()
            try:
                self.save()
            except OSError as exc:  # the next save tries again; shutdown saves synchronously
                log.warning("the re-ranker state was not saved: %s", exc)

    # ------------------------------------------------------------------ responses
    def _match(self, e: EventIn, now: float) -> tuple[_Open | None, ImpressionRecord | None]:
        assert e.request_id is not None
        with self.lock:
            entry = self._open.get(e.request_id)
        if entry is not None:
            fresh = now - entry.at <= self.settings.impression_ttl_s
            return (entry, None) if fresh and entry.user_id in (None, e.user_id) else (None, None)
        record = self.impressions.get(e.request_id)
        if record is None or now - record.at > self.settings.impression_ttl_s:
            return None, None
        return (None, record) if record.user_id in (None, e.user_id) else (None, None)

    def expand(self, events: Sequence[EventIn], known_types: set[str]) -> list[EventIn]:
        """``events`` plus, with ``skip_unclicked_above``, a ``skip`` event for each unanswered item shown
        above a clicked one in an open list (event id ``<request_id>:skip:<item_id>``, so a retried
        batch adds none twice)."""
        out = list(events)
        if not self.settings.skip_unclicked_above or "skip" not in known_types:
            return out
        batch = {(e.request_id, e.item_id) for e in events}
        for e in events:
            if e.request_id is None or e.type not in self.settings.positive_types:
                continue
            with self.lock:
                entry = self._open.get(e.request_id)
            if entry is None or entry.user_id not in (None, e.user_id) or e.item_id not in entry.item_ids:
                continue
            for item in entry.item_ids[: entry.item_ids.index(e.item_id)]:
                if item in entry.answered or (e.request_id, item) in batch:
                    continue
                batch.add((e.request_id, item))
                out.append(
                    EventIn(
                        event_id=f"{e.request_id}:skip:{item}"[:256],
                        user_id=e.user_id,
                        item_id=item,
                        type="skip",
                        timestamp=e.timestamp,
                        request_id=e.request_id,
                    )
                )
        return out

    def responses(self, events: Sequence[EventIn], metrics: Metrics) -> int:
        """Match the logged events that name a ``request_id`` (see the module docstring); returns how
        many did not match. Called after the batch was committed to the event log."""
        now = time.time()
        durable: list[Response] = []
        matched = unmatched = 0
        for e in events:
            if e.request_id is None:
                continue
            entry, record = self._match(e, now)
            if entry is None and record is None:
                unmatched += 1
                continue
            matched += 1
            if entry is not None:
                with self.lock:
                    entry.answered.add(e.item_id)
                    if e.type in self.settings.positive_types:
                        entry.clicked.add(e.item_id)
            if (entry is not None and entry.logged) or record is not None:
                durable.append(Response(e.event_id, e.request_id, e.user_id, e.item_id, e.type, now))
        self.impressions.add_responses(durable)
        if matched:
            metrics.inc("lmrec_feedback_responses_total", matched, matched="yes")
        if unmatched:
            metrics.inc("lmrec_feedback_responses_total", unmatched, matched="no")
            with self.lock:
                self.unmatched += unmatched
        return unmatched

    # ------------------------------------------------------------------ state
    def save(self) -> None:
        """Write the re-ranker's state now (nothing when it is off or has no place to go).

        The files are written from a copy taken under the lock, so updates and re-ranking go on
        while they are written; `_save_lock` keeps two writers (the saver thread and a shutdown)
        from interleaving.
        """
        if self.model is None or self.state_path is None:
            return
        with self._save_lock:
            with self.lock:
                snapshot = self.model.copy()
                self._unsaved = 0
            snapshot.save(self.state_path)

    def health(self) -> FeedbackHealth:
        """What ``/health`` says about the loop."""
        with self.lock:
            return FeedbackHealth(
                reranker=self.settings.reranker,
                state=self.state,
                problem=self.problem,
                updates=0 if self.model is None else self.model.n_updates_,
                open_impressions=len(self._open),
                unmatched_responses=self.unmatched,
            )
