"""Short reasons for recommended items and the pieces of ``/explain``.

A reason names what drove an item up: the query (``matches "trail shoes"``) and/or the history item
most similar to it (``because you viewed "Blue cotton shirt"``), or popularity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lmrec.data.text import render_template
from lmrec.data.tokenize import join_words, words
from lmrec.models.bundle import ModelBundle
from lmrec.serve.items import ServedItems
from lmrec.serve.schemas import HistoryContribution, TermContribution
from lmrec.serve.space import VectorSpace, bundle_text_settings

__all__ = ["HistoryItem", "history_contributions", "reasons", "term_contributions", "text_from_attributes"]

_PAST = {
    "view": "viewed",
    "click": "clicked",
    "cart": "added",
    "purchase": "bought",
    "rating": "rated",
    "like": "liked",
}
_MAX_TERMS = 16


@dataclass(frozen=True)
class HistoryItem:
    """An item in a user's history: from a logged event, the model's training data, or a new user's
    ``session_items``."""

    row: int
    source: Literal["event", "training", "session"]
    event_type: str | None


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def reasons(
    strategy: str,
    query: str | None,
    rows: np.ndarray,
    history: Sequence[HistoryItem],
    items: ServedItems,
    model_name: str,
    *,
    profile_text: bool = False,
) -> list[str]:
    """One short reason per recommended row.

    Args:
        strategy: how the list was made (`lmrec.serve.candidates.RequestContext.strategy`).
        query: the request's query, if any.
        rows: (m,) recommended rows.
        history: the user's recent events and training items (may be empty).
        items: the served items (vectors and titles).
        model_name: named when nothing more specific explains an item.
        profile_text: the list was made from a new user's ``user_text`` (named, never quoted).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if strategy == "popularity":
        return ["popular with other users"] * len(rows)
    best: np.ndarray | None = None
    if history and len(rows):
        vectors = items.index.vectors
        hist = _unit_rows(vectors[[h.row for h in history]])  # (h, d)
        sims = _unit_rows(vectors[rows]) @ hist.T  # (m, h)
        best = sims.argmax(axis=1)
    out = []
    for j in range(len(rows)):
        parts = []
        if query:
            parts.append(f'matches "{_short(query)}"')
        if best is not None and sims[j, best[j]] > 0:  # a dissimilar history item explains nothing
            h = history[int(best[j])]
            title = items.title(h.row)
            if h.source == "event":
                verb = _PAST.get(h.event_type or "", "interacted with")
                parts.append(f'because you {verb} "{title}"')
            elif h.source == "session":
                parts.append(f'like "{title}" from this session')
            else:
                parts.append(f'like "{title}" from your history')
        if profile_text:
            parts.append("matches your profile text")
        if not parts:
            parts.append(f"recommended by {model_name}")
        out.append("; ".join(parts))
    return out


def history_contributions(
    history: Sequence[HistoryItem], item: np.ndarray, items: ServedItems, k: int = 5
) -> list[HistoryContribution]:
    """The ``k`` history items most similar (cosine) to ``item`` (d,), most similar first; one entry per item."""
    if not history:
        return []
    sims = _unit_rows(items.index.vectors[[h.row for h in history]]) @ _unit_rows(np.asarray(item, np.float32))
    seen: set[int] = set()
    out: list[HistoryContribution] = []
    for j in np.argsort(-sims, kind="stable"):
        h = history[int(j)]
        if h.row in seen:
            continue
        seen.add(h.row)
        out.append(
            HistoryContribution(
                item_id=items.ids[h.row], source=h.source, event_type=h.event_type, similarity=float(sims[j])
            )
        )
        if len(out) == k:
            break
    return out


def term_contributions(query: str, item: np.ndarray, space: VectorSpace) -> list[TermContribution]:
    """Leave-one-out weight of each query term: ``cos(q, item) - cos(q without the term, item)``.

    All variants are encoded in one batch. Terms are the query's distinct words (first 16, case kept;
    Chinese segmented into non-overlapping words by `lmrec.data.tokenize.words`), largest
    contribution first.
    """
    tokens = words(query, lowercase=False)
    terms = list(dict.fromkeys(tokens))[:_MAX_TERMS]
    if not terms:
        return []
    variants = [query] + [join_words(t for t in tokens if t != term) for term in terms]
    vecs = _unit_rows(space.encode_queries(variants))  # (1 + t, d)
    sims = vecs @ _unit_rows(np.asarray(item, np.float32))
    contrib = sims[0] - sims[1:]
    order = np.argsort(-contrib, kind="stable")
    return [TermContribution(term=terms[i], contribution=float(contrib[i])) for i in order]


def text_from_attributes(attributes: Mapping[str, Any], bundle: ModelBundle) -> str:
    """Text of an item sent without one: the bundle's template over its attributes (missing fields
    empty), else its string attribute values joined with ". "."""
    template, _, _ = bundle_text_settings(bundle.info)
    if template:
        names = set(re.findall(r"\{([^{}]+)\}", template))
        return render_template(template, {**{n: None for n in names}, **attributes})
    if bundle.catalog is not None and bundle.catalog.text_fields:
        fields = [f for f in bundle.catalog.text_fields if attributes.get(f)]
        if fields:
            return ". ".join(str(attributes[f]) for f in fields)
    return ". ".join(str(v) for v in attributes.values() if isinstance(v, str) and v.strip())
