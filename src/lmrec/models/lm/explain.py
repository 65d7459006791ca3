"""Explanations of the language-model interest model, returned as data.

For a recommended item: the user's history items that contributed most (cosine to the item in the
model's item space) and, with a query, how well each item field matches it (cosine of the frozen
text embeddings) and which query terms it contains (lexical overlap).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lmrec.models.lm.model import LMRecommender

__all__ = ["explain", "query_terms"]

_TOKEN = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "of", "on", "or", "the", "to", "with", "in", "genre", "genres", "category", "categories", "movie", "movies", "item", "items", "product", "products", "something", "some", "me", "my", "i", "want", "looking"]
)


def query_terms(text: str) -> list[str]:
    """Lowercased word tokens of ``text`` without stop words, in order, each once."""
    seen: dict[str, None] = {}
    for tok in _TOKEN.findall(text.lower()):
        if tok not in _STOP and tok not in seen:
            seen[tok] = None
    return list(seen)


def explain(model: LMRecommender, user_idx: int, item_idx: int, query: str | None = None, k: int = 3) -> dict[str, Any]:
    """Why ``item_idx`` is recommended to ``user_idx`` (optionally under ``query``).

    Args:
        model: a fitted `LMRecommender`.
        user_idx: the user (an index outside the model means an unknown user: no history).
        item_idx: the recommended item.
        query: the query the recommendation answered, if any.
        k: how many history items to return.

    Returns:
        ``{"user_idx", "item_idx", "item_id", "score", "history": [{"item_idx", "item_id", "text",
        "similarity"}, ...best first], "query": {"text", "similarity", "fields": [{"field", "value",
        "similarity", "matched_terms"}, ...best first]}}`` (``"query"`` only when one is given).

    Raises:
        ValueError: ``item_idx`` is not an item of the model.
    """
    model._check_fitted()
    item_idx = int(item_idx)
    if not 0 <= item_idx < model.n_items:
        raise ValueError(f"explain: item_idx {item_idx} is not an item of this model (0..{model.n_items - 1})")
    vectors = model.item_vectors()
    target = vectors[item_idx]
    known = 0 <= int(user_idx) < model.n_users
    history = model.hist_items_[int(user_idx)][-model.max_len :] if known else np.zeros(0, np.int64)
    user = model.user_vectors(np.array([int(user_idx)]))[0] if known else model.encode_users([[]])[0]
    score = float(user @ target)
    first_field = next(iter(model.item_fields_), None)
    contributions = []
    if len(history):
        uniq = np.unique(history)
        sims = vectors[uniq] @ target
        for j in np.argsort(-sims, kind="stable")[:k]:
            idx = int(uniq[j])
            contributions.append({
                "item_idx": idx,
                "item_id": str(model.item_map_.to_ids([idx])[0]),
                "text": model.item_fields_[first_field][idx] if first_field else "",
                "similarity": float(sims[j]),
            })
    out: dict[str, Any] = {
        "user_idx": int(user_idx),
        "item_idx": item_idx,
        "item_id": str(model.item_map_.to_ids([item_idx])[0]),
        "score": score,
        "history": contributions,
    }
    if query:
        out["query"] = _query_match(model, item_idx, query, target)
    return out


def _query_match(model: LMRecommender, item_idx: int, query: str, target: np.ndarray) -> dict[str, Any]:
    terms = set(query_terms(query))
    fields = [(f, vals[item_idx]) for f, vals in model.item_fields_.items() if vals[item_idx]]
    result: dict[str, Any] = {"text": query, "fields": []}
    if model.item_repr != "id":
        result["similarity"] = float(model.encode_queries([query])[0] @ target)
    if not fields:
        return result
    encoder = model._get_encoder()
    q = encoder.encode([query], kind="query")[0]
    f_vecs = encoder.encode([v for _, v in fields], kind="passage")
    rows = []
    for (name, value), vec in zip(fields, f_vecs):
        value_terms = set(query_terms(value))
        rows.append({
            "field": name,
            "value": value if len(value) <= 200 else value[:197] + "...",
            "similarity": float(vec @ q),
            "matched_terms": sorted(terms & value_terms),
        })
    result["fields"] = sorted(rows, key=lambda r: -r["similarity"])
    return result
