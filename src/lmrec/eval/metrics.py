"""Pure metric functions on arrays: top-k ranking metrics, coverage, rating and click metrics.

Ranking metrics use binary relevance and follow RecBole 1.2.1's definitions exactly, so numbers
are comparable with the literature that reports RecBole figures:

- ``recall@k``    = hits in the top k / |relevant|
- ``precision@k`` = hits in the top k / k (a list shorter than k still divides by k)
- ``hit@k``       = 1 if any of the top k is relevant
- ``mrr@k``       = 1 / rank of the first relevant item within the top k (0 if none)
- ``ndcg@k``      = sum over hits of 1/log2(rank + 1), divided by the ideal DCG over
  min(|relevant|, k) positions
- ``map@k``       = sum over hit positions p of precision@p, divided by min(|relevant|, k)

Ranks are 1-based. Each comes in two forms:

- a scalar form ``ndcg_at_k(ranked, relevant, k) -> float`` written straight from the definition,
  for users and tests; ``ranked`` may hold ``-1`` padding, which never counts as a hit;
- a vectorised batch form ``ndcg_batch(hits, n_relevant) -> (n_users,)`` over a boolean hit matrix
  whose width is the cut-off k; the evaluator uses these.

A user with no relevant items scores 0 on every ranking metric (the evaluator never scores such users).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

# scipy.stats (slow to import) is imported inside auc, its only user.

__all__ = [
    "BATCH_METRICS",
    "SCALAR_METRICS",
    "auc",
    "hit_at_k",
    "hit_batch",
    "hits_matrix",
    "item_coverage",
    "log_loss",
    "mae",
    "map_at_k",
    "map_batch",
    "mrr_at_k",
    "mrr_batch",
    "ndcg_at_k",
    "ndcg_batch",
    "precision_at_k",
    "precision_batch",
    "recall_at_k",
    "recall_batch",
    "rmse",
]


# ---------------------------------------------------------------------- scalar forms
def _prepare(
    ranked: Iterable[int] | np.ndarray, relevant: Iterable[int] | np.ndarray, k: int
) -> tuple[list[bool], int]:
    """Hit flags of the first ``k`` positions (padded with misses to length k) and |relevant|."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    ranked_arr = np.asarray(ranked).ravel()
    rel = {int(x) for x in (np.asarray(relevant).ravel() if isinstance(relevant, np.ndarray) else relevant)}
    flags = [False] * int(k)
    for pos, item in enumerate(ranked_arr[: int(k)]):
        flags[pos] = int(item) >= 0 and int(item) in rel
    return flags, len(rel)


def recall_at_k(ranked: np.ndarray, relevant: np.ndarray | Iterable[int], k: int) -> float:
    """Hits in the top ``k`` over the number of relevant items.

    Args:
        ranked: (m,) item indices, best first; ``-1`` entries are padding.
        relevant: relevant item indices (array, list or set).
        k: cut-off.
    """
    flags, n_rel = _prepare(ranked, relevant, k)
    return sum(flags) / n_rel if n_rel else 0.0


def precision_at_k(ranked: np.ndarray, relevant: np.ndarray | Iterable[int], k: int) -> float:
    """Hits in the top ``k`` over ``k`` (RecBole divides by k even when the list is shorter)."""
    flags, _ = _prepare(ranked, relevant, k)
    return sum(flags) / k


def hit_at_k(ranked: np.ndarray, relevant: np.ndarray | Iterable[int], k: int) -> float:
    """1.0 if any of the top ``k`` is relevant, else 0.0."""
    flags, _ = _prepare(ranked, relevant, k)
    return 1.0 if any(flags) else 0.0


def mrr_at_k(ranked: np.ndarray, relevant: np.ndarray | Iterable[int], k: int) -> float:
    """Reciprocal 1-based rank of the first relevant item within the top ``k``; 0.0 if none."""
    flags, _ = _prepare(ranked, relevant, k)
    for pos, flag in enumerate(flags):
        if flag:
            return 1.0 / (pos + 1)
    return 0.0


def ndcg_at_k(ranked: np.ndarray, relevant: np.ndarray | Iterable[int], k: int) -> float:
    """DCG of the top ``k`` over the ideal DCG of min(|relevant|, k) hits; gain 1/log2(rank + 1)."""
    flags, n_rel = _prepare(ranked, relevant, k)
    if n_rel == 0:
        return 0.0
    dcg = sum(1.0 / np.log2(pos + 2) for pos, flag in enumerate(flags) if flag)
    idcg = sum(1.0 / np.log2(pos + 2) for pos in range(min(n_rel, k)))
    return float(dcg / idcg)


def map_at_k(ranked: np.ndarray, relevant: np.ndarray | Iterable[int], k: int) -> float:
    """Sum of precision@p over hit positions p within the top ``k``, over min(|relevant|, k)."""
    flags, n_rel = _prepare(ranked, relevant, k)
    if n_rel == 0:
        return 0.0
    total, n_hits = 0.0, 0
    for pos, flag in enumerate(flags):
        if flag:
            n_hits += 1
            total += n_hits / (pos + 1)
    return total / min(n_rel, k)


# ---------------------------------------------------------------------- batch forms
def _check_batch(hits: np.ndarray, n_relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    if hits.ndim != 2:
        raise ValueError(f"hits must be a 2-D (n_users, k) boolean matrix, got shape {hits.shape}")
    if n_relevant.shape != (hits.shape[0],):
        raise ValueError(f"n_relevant has shape {n_relevant.shape}, expected ({hits.shape[0]},)")
    return hits, n_relevant


def hits_matrix(ranked: np.ndarray, relevant: list[Iterable[int]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hit matrix and relevant counts for a batch of ranked lists (the glue between the two forms).

    Args:
        ranked: (n_users, m) item indices, best first, ``-1`` padded.
        relevant: one collection of relevant items per user.
        k: cut-off; lists shorter than ``k`` are padded with misses.

    Returns:
        ``(hits, n_relevant)``: (n_users, k) bool and (n_users,) int64.
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.ndim != 2 or len(ranked) != len(relevant):
        raise ValueError(
            f"ranked must be (n_users, m) with one relevant set per row, got {ranked.shape}, {len(relevant)}"
        )
    hits = np.zeros((len(ranked), k), dtype=bool)
    n_rel = np.zeros(len(ranked), dtype=np.int64)
    width = min(k, ranked.shape[1])
    for row, rel in enumerate(relevant):
        rel_arr = np.unique(np.asarray(list(rel), dtype=np.int64))
        n_rel[row] = len(rel_arr)
        top = ranked[row, :width]
        hits[row, :width] = (top >= 0) & np.isin(top, rel_arr)
    return hits, n_rel


def recall_batch(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user recall@k, k = ``hits.shape[1]``.

    Args:
        hits: (n_users, k) bool, True where position j of the user's list is relevant.
        n_relevant: (n_users,) number of relevant items per user.

    Returns:
        (n_users,) float64.
    """
    hits, n_relevant = _check_batch(hits, n_relevant)
    n_hits = hits.sum(axis=1)
    return np.divide(n_hits, n_relevant, out=np.zeros(len(hits)), where=n_relevant > 0)


def precision_batch(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user precision@k: hits over k. ``n_relevant`` is unused (kept for a uniform signature)."""
    hits, _ = _check_batch(hits, n_relevant)
    k = hits.shape[1]
    return hits.sum(axis=1) / k if k else np.zeros(len(hits))


def hit_batch(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user hit@k (1.0 / 0.0). ``n_relevant`` is unused."""
    hits, _ = _check_batch(hits, n_relevant)
    return np.asarray(hits.any(axis=1), dtype=np.float64)  # (n_users,): the stubs type any(axis) as scalar-or-array


def mrr_batch(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user MRR@k: 1 / (1-based position of the first hit), 0 without a hit. ``n_relevant`` is unused."""
    hits, _ = _check_batch(hits, n_relevant)
    if hits.shape[1] == 0:
        return np.zeros(len(hits))
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


def ndcg_batch(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user NDCG@k with the ideal DCG over min(n_relevant, k) positions."""
    hits, n_relevant = _check_batch(hits, n_relevant)
    k = hits.shape[1]
    if k == 0:
        return np.zeros(len(hits))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))  # (k,) gain of 1-based rank r is 1/log2(r + 1)
    dcg = hits.astype(np.float64) @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])  # ideal[n] = IDCG with n hits
    idcg = ideal[np.minimum(n_relevant, k)]
    return np.divide(dcg, idcg, out=np.zeros(len(hits)), where=idcg > 0)


def map_batch(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user MAP@k: sum of precision@p over hit positions p, over min(n_relevant, k)."""
    hits, n_relevant = _check_batch(hits, n_relevant)
    k = hits.shape[1]
    if k == 0:
        return np.zeros(len(hits))
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)  # (n_users, k)
    total = (precision_at * hits).sum(axis=1)
    denom = np.minimum(n_relevant, k)
    return np.divide(total, denom, out=np.zeros(len(hits)), where=denom > 0)


#: metric name -> batch function ``(hits, n_relevant) -> (n_users,)``
BATCH_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "recall": recall_batch,
    "ndcg": ndcg_batch,
    "mrr": mrr_batch,
    "hit": hit_batch,
    "precision": precision_batch,
    "map": map_batch,
}

#: metric name -> scalar function ``(ranked, relevant, k) -> float``
SCALAR_METRICS: dict[str, Callable[..., float]] = {
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "hit": hit_at_k,
    "precision": precision_at_k,
    "map": map_at_k,
}


# ---------------------------------------------------------------------- beyond accuracy
def item_coverage(ranked_matrix: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list (RecBole's ItemCoverage).

    Args:
        ranked_matrix: (n_users, k) item indices; ``-1`` padding is ignored.
        n_items: catalogue size.
    """
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    ranked_matrix = np.asarray(ranked_matrix)
    shown = np.unique(ranked_matrix[ranked_matrix >= 0])
    return len(shown) / n_items


# ---------------------------------------------------------------------- ratings and clicks
def _pair(y_true: np.ndarray, y_pred: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name}: y_true has {len(y_true)} values, y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError(f"{name}: no values to score")
    return y_true, y_pred


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error over (n,) arrays."""
    y_true, y_pred = _pair(y_true, y_pred, "rmse")
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over (n,) arrays."""
    y_true, y_pred = _pair(y_true, y_pred, "mae")
    return float(np.mean(np.abs(y_true - y_pred)))


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney U); tied scores count 0.5.

    Args:
        labels: (n,) binary labels (0/1 or bool).
        scores: (n,) real scores, higher means more likely positive.

    Raises:
        ValueError: when the labels hold only one class (AUC is undefined).
    """
    from scipy.stats import rankdata

    labels, scores = _pair(labels, scores, "auc")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("auc: labels must be 0/1")
    pos = labels == 1.0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"auc is undefined with {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(scores)  # average ranks, so each tie contributes half a pair
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy with probabilities clipped to ``[eps, 1 - eps]``.

    Args:
        labels: (n,) 0/1 labels.
        probs: (n,) predicted probabilities of the positive class, in [0, 1].
        eps: clipping bound, so a confident mistake costs ``-log(eps)`` rather than infinity.
    """
    labels, probs = _pair(labels, probs, "log_loss")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("log_loss: labels must be 0/1")
    if (probs < 0).any() or (probs > 1).any() or np.isnan(probs).any():
        raise ValueError("log_loss: probs must be probabilities in [0, 1]; apply a sigmoid to logits first")
    p = np.clip(probs, eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
