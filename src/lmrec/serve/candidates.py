"""Candidate retrieval of ``/recommend``: the scored rows one resolved request starts from.

By strategy (`RequestContext.strategy`): ``"popularity"`` takes the most popular
allowed items; ``"query"``, ``"profile"``, ``"query+profile"`` and a new user's ``"session"``,
``"user_text"`` and ``"session+user_text"`` search the item index with the request's vector (under a
scenario of a model whose item vectors change with it, every item is scored exactly through that
scenario's item vectors instead); ``"model"`` and ``"model+online"`` ask the model.

Blend rule of ``"model+online"``: candidates are the model's top ``candidate_pool`` items and the
online profile's top ``candidate_pool`` items; each gets ``(1 - b) * mm(model score) + b * mm(cos(online,
item))``, where ``mm`` is min-max scaling over the candidates and items the model cannot score (new
ones) get the lowest model score among the candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lmrec.serve.cold import ColdProfile
from lmrec.serve.index import top_rows
from lmrec.serve.items import ServedItems
from lmrec.serve.profile_sync import UserVectorCache
from lmrec.serve.profiles import unit

__all__ = ["CandidateRetriever", "RequestContext"]


@dataclass
class RequestContext:
    """Who is asking and with what, resolved to vectors (`lmrec.serve.service.RecService.resolve`)."""

    user_id: str | None
    u: int | None  # model user index
    online: np.ndarray | None
    query: str | None
    vec: np.ndarray | None  # the retrieval vector (None for popularity and model strategies)
    strategy: str
    scenario_id: int | None = None  # passed to a scenario-aware model (None: its shared path)
    scenario_applied: bool = False  # the scenario reached the model: it scored the list or gave the user's vector
    cold: ColdProfile | None = None  # a user without history: what their session_items / user_text resolved to

    def used(self) -> list[str]:
        """The request's inputs behind the list (``RecommendResponse.used``)."""
        out = []
        if self.u is not None or self.online is not None:
            out.append("user_id")
        if self.query:
            out.append("query")
        if self.cold is not None:
            out.extend(self.cold.used)
        if self.strategy == "popularity":
            out.append("popularity")
        return out

    def notes(self, new_user_input: bool) -> list[str]:
        """How a new user's ``session_items`` / ``user_text`` were read (``new_user_input``: the request
        sent some), or that a user with a history was served from it instead."""
        if self.cold is not None:
            return list(self.cold.notes)
        if new_user_input:
            return ["the user has a history: session_items and user_text were not used"]
        return []


class CandidateRetriever:
    """The candidate rows and scores of a resolved request (see the module docstring).

    Args:
        model: the served model (its ``recommend``, ``score`` and, scenario-aware, ``score_all``).
        items: the served items (index, popularity; rows below ``items.n_model`` are the model's).
        online_weight: ``b`` of the blend rule.
        user_vectors: the model's cached user vectors (fill a short model list).
    """

    def __init__(self, model: Any, items: ServedItems, online_weight: float, user_vectors: UserVectorCache) -> None:
        self.model = model
        self.items = items
        self.online_weight = online_weight
        self.user_vectors = user_vectors

    def retrieve(self, ctx: RequestContext, allowed: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``pool`` allowed rows, best first.

        Args:
            ctx: the resolved request.
            allowed: ``(n_items,)`` bool mask of the rows that may be returned.
            pool: how many candidates to return at most.

        Returns:
            ``(rows, scores)``: int64 rows and float32 scores, each ``(<= pool,)``.
        """
        if ctx.strategy in ("model", "model+online"):
            return self._model_candidates(ctx, allowed, pool)
        if ctx.strategy == "popularity":
            n = len(allowed)
            return top_rows(np.where(allowed, self.items.popularity(n), -np.inf), np.arange(n), pool)
        if ctx.vec is None:
            raise ValueError(f"strategy {ctx.strategy!r} needs a query or profile vector; the request has none")
        if ctx.scenario_applied and ctx.scenario_id is not None and hasattr(self.model, "scenario_item_vectors"):
            return self._scenario_search(ctx.vec, ctx.scenario_id, allowed, pool)
        return self.items.index.search(ctx.vec, pool, allowed)

    def _scenario_search(
        self, vec: np.ndarray, scenario_id: int, allowed: np.ndarray, pool: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores under a scenario of a model whose item vectors change with the scenario
        (``scenario_item_vectors``: ``lm-scenario``): its items are scored through that scenario's
        vectors, as its ``recommend`` scores them; items added while serving, which the model does not
        hold, through their served (shared) vectors. One (n, d) product per request."""
        n, n_model = len(allowed), self.items.n_model
        scores = np.full(n, -np.inf, dtype=np.float32)
        table = np.asarray(self.model.scenario_item_vectors(scenario_id), dtype=np.float32)
        scores[:n_model] = table[:n_model] @ np.asarray(vec, dtype=np.float32)
        if n > n_model:
            scores[n_model:] = self.items.index.exact_scores(vec, np.arange(n_model, n))
        scores[~allowed] = -np.inf
        return top_rows(scores, np.arange(n), pool)

    def _model_candidates(self, ctx: RequestContext, allowed: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
        n_model = self.items.n_model
        user = np.asarray([ctx.u], dtype=np.int64)
        candidates = np.flatnonzero(allowed[:n_model])
        if ctx.scenario_id is None:
            ids, scores = self.model.recommend(user, k=pool, exclude_seen=False, candidates=candidates)
            keep = ids[0] >= 0
            rows_m, scores_m = ids[0][keep], scores[0][keep].astype(np.float32)
        else:
            every = np.asarray(self.model.score_all(user, scenario=ctx.scenario_id), dtype=np.float32)[0]
            rows_m, scores_m = top_rows(every[candidates], candidates, pool)
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
            if ctx.scenario_id is None:
                model_scores[in_model] = self.model.score(np.full(int(in_model.sum()), ctx.u), union[in_model])
            else:
                model_scores[in_model] = every[union[in_model]]
            model_scores[~in_model] = model_scores[in_model].min()
        b = self.online_weight
        final = (1.0 - b) * _minmax(model_scores) + b * _minmax(self.items.index.exact_scores(online, union))
        order = np.argsort(-final, kind="stable")
        return union[order], final[order].astype(np.float32)

    def _fill(
        self, ctx: RequestContext, allowed: np.ndarray, pool: int, rows: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Complete a short model list (items the model cannot score: catalogue-only or new ones) from
        the user's text profile, scored ``min(model) - 1 + cos / 2`` so they rank below every model item."""
        user_vec = self.user_vectors.get(ctx.u, ctx.scenario_id) if ctx.u is not None else None
        if user_vec is None:
            return rows, scores
        rest = allowed.copy()
        rest[rows] = False
        extra, cos = self.items.index.search(unit(user_vec), pool - len(rows), rest)
        floor = float(scores.min()) if len(scores) else 0.0
        return np.concatenate([rows, extra]), np.concatenate([scores, (floor - 1.0 + cos / 2).astype(np.float32)])


def _minmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    span = x.max() - x.min() if len(x) else 0.0
    return (x - x.min()) / span if span > 0 else np.ones_like(x)
