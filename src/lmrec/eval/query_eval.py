"""Query-aware evaluation: the offline twin of real-time personalisation.

Each held-out (user, item) case gets a natural-language query built from one field of the held-out
item (its genres or category path: never its title or id), e.g. ``"genres: Action, Sci-Fi"``. Three
rankings are compared over the full catalogue, with the user's known items masked:

- ``profile``: the user vector alone (what the model recommends without a query);
- ``query``: the query vector alone (the same for every user with the same query);
- ``query+profile``: ``normalise(alpha * q + (1 - alpha) * u)``.

The blend is done on vectors, not on per-user standardised scores, because that is what a server
with one ANN index over item vectors can do at request time; for unit item vectors it equals the
score blend ``alpha * cos(q, v) + (1 - alpha) * cos(u, v)`` up to a per-user constant, which does not
change rankings. ``alpha`` is chosen on the validation part only (`tune_blend`), before the model
observes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from lmrec.data.dataset import Dataset
from lmrec.data.splits import Split
from lmrec.eval.evaluator import EvalResult, metric_key
from lmrec.eval.metrics import BATCH_METRICS
from lmrec.models.base import top_k

__all__ = ["MODES", "QueryEvalResult", "build_queries", "evaluate_with_queries", "tune_blend"]

log = logging.getLogger(__name__)

Mode = Literal["profile", "query", "query+profile"]
MODES: tuple[str, ...] = ("profile", "query", "query+profile")


class _QueryModel(Protocol):
    @property
    def n_items(self) -> int: ...

    def item_vectors(self) -> np.ndarray: ...
    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray: ...
    def encode_queries(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class QueryEvalResult:
    """What ``evaluate_with_queries`` returns.

    Attributes:
        results: mode -> `EvalResult` (per-user arrays included, so ``paired_test`` applies).
        alpha: the blend weight of the query in ``query+profile``.
        query_field: the catalogue field the queries came from.
        n_cases: (user, item) cases evaluated.
        n_skipped: cases dropped because the held-out item's field was empty.
        examples: a few (item id, query) pairs, to show what the queries look like.
    """

    results: dict[str, EvalResult]
    alpha: float
    query_field: str
    n_cases: int
    n_skipped: int
    examples: list[tuple[str, str]] = field(default_factory=list)

    def metrics(self) -> dict[str, dict[str, float]]:
        """mode -> metric means."""
        return {mode: dict(res.metrics) for mode, res in self.results.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_field": self.query_field,
            "alpha": self.alpha,
            "n_cases": self.n_cases,
            "n_skipped": self.n_skipped,
            "metrics": self.metrics(),
            "examples": [list(e) for e in self.examples],
        }


def build_queries(
    dataset: Dataset, item_idx: np.ndarray, query_field: str, template: str = "{field}: {value}"
) -> list[str]:
    """One query per item from its ``query_field`` ("" where the field is empty).

    Args:
        dataset: supplies the item catalogue; indices are those of ``dataset.interactions.item_map``.
        item_idx: (n,) item indices.
        query_field: catalogue column, e.g. "genres" or "categories".
        template: format string over ``{field}`` and ``{value}``.

    Raises:
        ValueError: no catalogue, or ``query_field`` is not one of its columns, or it names a
            title / id column (the query must not give the answer away).
    """
    if dataset.items is None:
        raise ValueError("query-aware evaluation needs an item catalogue; the dataset has none")
    columns = list(dataset.items.frame.columns)
    if query_field not in columns:
        raise ValueError(f"query_field {query_field!r} is not an item field; fields: {columns}")
    lowered = query_field.lower()
    if "title" in lowered or lowered in ("item_id", "id", "asin", "name"):
        raise ValueError(f"query_field {query_field!r} would reveal the held-out item; use a category-like field")
    values = dataset.items.field_values(dataset.interactions.item_map, query_field)
    return [template.format(field=query_field, value=values[i]) if values[i] else "" for i in np.asarray(item_idx)]


def _check_model(model: object) -> None:
    for name in ("item_vectors", "user_vectors", "encode_queries"):
        if not callable(getattr(model, name, None)):
            raise TypeError(f"{type(model).__name__} has no {name}(); query-aware evaluation needs a VectorRecommender")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def evaluate_with_queries(
    model: _QueryModel,
    split: Split,
    dataset: Dataset,
    query_field: str,
    *,
    modes: Sequence[str] = MODES,
    blend: float = 0.5,
    ks: Sequence[int] = (10,),
    metrics: Sequence[str] = ("ndcg", "recall"),
    phase: Literal["valid", "test"] = "test",
    template: str = "{field}: {value}",
    batch_size: int = 512,
) -> QueryEvalResult:
    """Rank every item for each held-out case under each mode.

    Args:
        model: a fitted model with ``item_vectors``, ``user_vectors`` and ``encode_queries``; for
            "test" it should have observed ``split.valid`` (as for the plain evaluator), for "valid"
            it must not have.
        split: the split; cases are the rows of ``split.test`` (or ``split.valid``).
        dataset: supplies the catalogue field the queries come from.
        query_field: e.g. "genres" (MovieLens) or "categories" (Amazon).
        modes: any of "profile", "query", "query+profile".
        blend: ``alpha``, the query's weight in "query+profile" (tune it with `tune_blend`).
        ks: cut-offs.
        metrics: names from ``lmrec.eval.metrics.BATCH_METRICS``.
        phase: which part holds the cases; "valid" masks train items, "test" train and valid items.
        template: query text over ``{field}`` and ``{value}``.
        batch_size: cases scored at once.

    Returns:
        A `QueryEvalResult`. A user with several held-out items has one case per item; each case
        counts only its own item as relevant (the user's other held-out items are masked), and a
        user's per-user value is the mean over their cases.
    """
    _check_model(model)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown mode(s) {unknown or list(modes)}; known: {list(MODES)}")
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"blend must be in [0, 1], got {blend}")
    if phase not in ("valid", "test"):
        raise ValueError(f"phase must be 'valid' or 'test', got {phase!r}")
    bad = [m for m in metrics if m not in BATCH_METRICS]
    if bad:
        raise ValueError(f"unknown metric(s) {bad}; known: {sorted(BATCH_METRICS)}")
    if dataset.interactions.item_map != split.train.item_map:
        raise ValueError("dataset and split use different item maps; build the split from dataset.interactions")
    target = split.test if phase == "test" else split.valid
    history = split.train.to_csr("binary")
    if phase == "test":
        history = (history + split.valid.to_csr("binary")).tocsr()
    own = target.to_csr("binary")

    pairs = (
        np.unique(np.stack([target.users, target.items], axis=1), axis=0) if len(target) else np.zeros((0, 2), np.int64)
    )
    queries = build_queries(dataset, pairs[:, 1], query_field, template)
    keep = np.array([bool(q) for q in queries], dtype=bool)
    n_skipped = int((~keep).sum())
    if n_skipped:
        log.info("query eval: %d of %d cases have no %r value and are skipped", n_skipped, len(pairs), query_field)
    pairs, queries = pairs[keep], [q for q, k in zip(queries, keep) if k]
    max_k = max(ks)
    vectors = np.asarray(model.item_vectors(), dtype=np.float32)
    hits = {mode: np.zeros((len(pairs), max_k), dtype=bool) for mode in modes}
    for start in range(0, len(pairs), batch_size):
        users, items = pairs[start : start + batch_size, 0], pairs[start : start + batch_size, 1]
        u = _unit(np.asarray(model.user_vectors(users), dtype=np.float32))
        q = _unit(np.asarray(model.encode_queries(queries[start : start + batch_size]), dtype=np.float32))
        mask = ((history[users] + own[users]) > 0).toarray()
        mask[np.arange(len(items)), items] = False
        for mode in modes:
            vec = u if mode == "profile" else q if mode == "query" else _unit(blend * q + (1.0 - blend) * u)
            scores = vec @ vectors.T  # (b, n_items)
            scores[mask] = -np.inf
            ranked, _ = top_k(scores, max_k)
            hits[mode][start : start + len(users), : ranked.shape[1]] = ranked == items[:, None]

    users_all = np.unique(pairs[:, 0])
    pos = np.searchsorted(users_all, pairs[:, 0])
    counts = np.bincount(pos, minlength=len(users_all)).astype(np.float64)
    results: dict[str, EvalResult] = {}
    for mode in modes:
        per_user = {}
        for k in ks:
            for name in metrics:
                per_case = BATCH_METRICS[name](hits[mode][:, :k], np.ones(len(pairs), dtype=np.int64))
                per_user[metric_key(name, k)] = np.bincount(
                    pos, weights=per_case, minlength=len(users_all)
                ) / np.maximum(counts, 1)
        means = {key: float(v.mean()) if len(v) else float("nan") for key, v in per_user.items()}
        primary = metric_key("ndcg" if "ndcg" in metrics else metrics[0], 10 if 10 in ks else ks[0])
        results[mode] = EvalResult(means, {}, {}, per_user, users_all, len(users_all), primary=primary, phase=phase)
    examples = [(str(dataset.interactions.item_map.to_ids([i])[0]), q) for i, q in zip(pairs[:3, 1], queries[:3])]
    return QueryEvalResult(results, float(blend), query_field, len(pairs), n_skipped, examples)


def tune_blend(
    model: _QueryModel,
    split: Split,
    dataset: Dataset,
    query_field: str,
    *,
    grid: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    metric: str = "ndcg@10",
    template: str = "{field}: {value}",
) -> tuple[float, dict[float, float]]:
    """Pick ``alpha`` for "query+profile" on the validation cases (call before ``model.observe(valid)``).

    Returns:
        ``(best_alpha, {alpha: metric})``; ties go to the smaller alpha.
    """
    if not grid:
        raise ValueError("tune_blend needs a non-empty grid")
    name, _, k = metric.partition("@")
    scores: dict[float, float] = {}
    for alpha in grid:
        res = evaluate_with_queries(
            model,
            split,
            dataset,
            query_field,
            modes=("query+profile",),
            blend=float(alpha),
            ks=(int(k or 10),),
            metrics=(name,),
            phase="valid",
            template=template,
        )
        scores[float(alpha)] = res.results["query+profile"].metrics[metric]
    best = max(scores, key=lambda a: (scores[a], -a))
    log.info("tune_blend on valid: best alpha %.2f (%s=%.4f)", best, metric, scores[best])
    return best, scores
