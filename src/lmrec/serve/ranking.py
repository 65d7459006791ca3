"""Re-ranking after retrieval: business-rule hooks and maximal-marginal-relevance diversity.

Exclusion of seen items and attribute filters act earlier, as the allowed-rows mask of the retrieval
itself (`lmrec.serve.index.VectorIndex.search`), so no candidate slot is wasted on an item that would
be dropped. Then, in order: the business rules (each may re-score, re-order or drop candidates), and
MMR, which trades relevance for novelty with the request's ``diversity`` weight.

A business rule is any callable ``rule(candidates, context) -> candidates``; pass them to
``create_app(settings, rules=[...])`` or name them in ``ServeSettings.rules`` as
``"package.module:function"``. Example, boosting one brand::

    def boost_acme(c: Candidates, ctx: RankContext) -> Candidates:
        bonus = np.array([ctx.attributes(r).get("brand") == "acme" for r in c.rows]) * 0.1
        return c.rescored(c.scores + bonus)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["BusinessRule", "Candidates", "RankContext", "apply_rules", "load_rules", "mmr"]


@dataclass(frozen=True)
class Candidates:
    """Retrieved items, best first.

    Attributes:
        rows: (m,) int64 index rows.
        scores: (m,) float32 relevance scores (higher is better).
        item_ids: the m external ids.
    """

    rows: np.ndarray
    scores: np.ndarray
    item_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, positions: np.ndarray | Sequence[int]) -> Candidates:
        """The candidates at ``positions`` (a mask or indices), in that order."""
        pos = np.asarray(positions)
        if pos.dtype == bool:
            pos = np.flatnonzero(pos)
        return Candidates(self.rows[pos], self.scores[pos], tuple(self.item_ids[i] for i in pos))

    def rescored(self, scores: np.ndarray) -> Candidates:
        """The same candidates with new scores, re-sorted best first (stable)."""
        scores = np.asarray(scores, dtype=np.float32)
        if scores.shape != self.scores.shape:
            raise ValueError(f"rescored: got {scores.shape} scores for {len(self)} candidates")
        order = np.argsort(-scores, kind="stable")
        return replace(self.select(order), scores=scores[order])


@dataclass(frozen=True)
class RankContext:
    """What a business rule may read about the request."""

    user_id: str | None
    query: str | None
    scenario: str | None
    k: int
    attributes: Callable[[int], dict[str, Any]]


BusinessRule = Callable[[Candidates, RankContext], Candidates]


def apply_rules(candidates: Candidates, context: RankContext, rules: Sequence[BusinessRule]) -> Candidates:
    """Run the rules in order; each gets the previous one's output.

    Raises:
        TypeError: a rule returned something other than `Candidates` (names the rule).
    """
    for rule in rules:
        out = rule(candidates, context)
        if not isinstance(out, Candidates):
            name = getattr(rule, "__qualname__", repr(rule))
            raise TypeError(f"business rule {name} returned {type(out).__name__}, expected Candidates")
        candidates = out
    return candidates


def load_rules(paths: Sequence[str]) -> list[BusinessRule]:
    """Import rules named ``"package.module:function"``.

    Raises:
        ValueError: a path cannot be imported or names something that is not callable.
    """
    rules: list[BusinessRule] = []
    for path in paths:
        module_name, _, attr = path.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"rules: cannot import {path!r}: {exc}") from exc
        if not callable(target):
            raise ValueError(f"rules: {path!r} is not callable")
        rules.append(target)
    return rules


def mmr(scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Maximal marginal relevance (Carbonell & Goldstein, 1998).

    Picks items one at a time maximising ``(1 - diversity) * rel_i - diversity * max_{j picked} cos(i, j)``,
    where ``rel`` is ``scores`` min-max scaled to [0, 1] (all ones when the scores are equal).

    Args:
        scores: (m,) relevance, higher is better.
        vectors: (m, d) item vectors (cosine similarity is used).
        k: how many to pick.
        diversity: in [0, 1]; 0 keeps the relevance order, 1 ignores relevance after the first pick.

    Returns:
        (min(k, m),) positions into ``scores``, in pick order. Ties go to the lower position.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must lie in [0, 1], got {diversity}")
    scores = np.asarray(scores, dtype=np.float64)
    m = len(scores)
    k = min(k, m)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    span = scores.max() - scores.min()
    rel = (scores - scores.min()) / span if span > 0 else np.ones(m)
    norm = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sim = norm @ norm.T  # (m, m)
    picked: list[int] = []
    closest = np.full(m, -1.0)  # max cosine to anything picked so far (-1: nothing picked, a constant)
    available = np.ones(m, dtype=bool)
    for _ in range(k):
        objective = (1.0 - diversity) * rel - diversity * closest
        objective[~available] = -np.inf
        best = int(np.argmax(objective))
        picked.append(best)
        available[best] = False
        closest = np.maximum(closest, sim[best])
    return np.asarray(picked, dtype=np.int64)
