"""The re-ranker's features of one (user, candidate) pair, as a pure function of arrays.

=====================  ===========================================================================
feature                value
=====================  ===========================================================================
``bias``               1
``score``              the retrieval score, min-max scaled over the pool to [0, 1]
``rank``               ``1 / log2(2 + retrieval rank)``
``query_match``        ``score`` when the request has a query, else 0
``popularity``         ``log1p(count) / log1p(max count)`` over the served items
``fresh``              1 for an item added while serving (not in the trained model), else 0
``novelty``            ``0.5 ** (times shown to this user recently)``: 1 for an item never shown
``affinity``           cosine of the item to the user's online profile (0 without one)
``category``           share of the user's recent events on items of the item's category
=====================  ===========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["FEATURES", "candidate_features", "category_share", "category_share_codes"]

FEATURES: tuple[str, ...] = (
    "bias",
    "score",
    "rank",
    "query_match",
    "popularity",
    "fresh",
    "novelty",
    "affinity",
    "category",
)


def candidate_features(
    scores: np.ndarray,
    *,
    has_query: bool,
    popularity: np.ndarray,
    max_popularity: float,
    fresh: np.ndarray,
    times_shown: np.ndarray,
    affinity: np.ndarray | None = None,
    category: np.ndarray | None = None,
) -> np.ndarray:
    """The feature rows of a pool of ``m`` candidates, in retrieval order (best first).

    Args:
        scores: (m,) retrieval scores.
        has_query: the request has a query.
        popularity: (m,) interaction counts of the candidates.
        max_popularity: the largest count over the served items.
        fresh: (m,) bool, items added while serving.
        times_shown: (m,) how often each was shown to the user recently.
        affinity: (m,) cosine to the user's online profile, or None (no profile).
        category: (m,) share of the user's recent events in the candidate's category, or None.

    Returns:
        (m, len(FEATURES)) float32.
    """
    m = len(scores)
    s = np.asarray(scores, dtype=np.float64)
    span = float(s.max() - s.min()) if m else 0.0
    scaled = (s - s.min()) / span if span > 0 else np.ones(m)
    out = np.zeros((m, len(FEATURES)), dtype=np.float32)
    out[:, 0] = 1.0
    out[:, 1] = scaled
    out[:, 2] = 1.0 / np.log2(2.0 + np.arange(m))
    out[:, 3] = scaled if has_query else 0.0
    out[:, 4] = np.log1p(np.maximum(popularity, 0.0)) / np.log1p(max(max_popularity, 1.0))
    out[:, 5] = np.asarray(fresh, dtype=np.float32)
    out[:, 6] = 0.5 ** np.asarray(times_shown, dtype=np.float64)
    if affinity is not None:
        out[:, 7] = np.clip(affinity, -1.0, 1.0)
    if category is not None:
        out[:, 8] = category
    return out


def category_share(candidate_values: Sequence[object], recent_values: Sequence[object]) -> np.ndarray:
    """(m,) share of the recent events whose item shares a category with each candidate.

    A value may be a scalar or a list (multi-valued attributes); None matches nothing.
    """
    recent = [_as_set(v) for v in recent_values]
    recent = [v for v in recent if v]
    out = np.zeros(len(candidate_values), dtype=np.float32)
    if not recent:
        return out
    events_of: dict[object, int] = {}  # category -> bit mask of the recent events that have it
    for j, cats in enumerate(recent):
        for c in cats:
            events_of[c] = events_of.get(c, 0) | (1 << j)
    for i, value in enumerate(candidate_values):
        mask = 0
        for c in _as_set(value):
            mask |= events_of.get(c, 0)
        out[i] = mask.bit_count() / len(recent)  # events sharing at least one category with the candidate
    return out


def category_share_codes(candidate_codes: np.ndarray, recent_codes: np.ndarray) -> np.ndarray:
    """`category_share` of a single-valued attribute given as int codes (-1: absent), vectorised.

    Args:
        candidate_codes: (m,) codes of the candidates.
        recent_codes: (r,) codes of the recent events' items.
    """
    recent = recent_codes[recent_codes >= 0]
    if not len(recent):
        return np.zeros(len(candidate_codes), dtype=np.float32)
    same = candidate_codes[:, None] == recent[None, :]  # (m, r); -1 never equals a kept code
    return (same.sum(axis=1) / len(recent)).astype(np.float32)


def _as_set(value: object) -> frozenset[object]:
    if value is None:
        return frozenset()
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(value)
    return frozenset([value])
