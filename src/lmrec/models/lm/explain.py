"""Explanations of the language-model interest model, returned as data.

For a recommended item: the user's history items that contributed most (cosine to the item in the
model's item space) and, with a query, how well each item field matches it (cosine of the frozen
text embeddings) and which query terms it contains (lexical overlap).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lmrec.data.idmap import IdMap
from lmrec.data.tokenize import words
from lmrec.encoders.base import TextEncoder

__all__ = ["explain_recommendation", "query_terms"]

_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "it",
        "of",
        "on",
        "or",
        "the",
        "to",
        "with",
        "in",
        "genre",
        "genres",
        "category",
        "categories",
        "movie",
        "movies",
        "item",
        "items",
        "product",
        "products",
        "something",
        "some",
        "me",
        "my",
        "i",
        "want",
        "looking",
    ]
)


def query_terms(text: str) -> list[str]:
    """Lowercased word tokens of ``text`` without stop words, in order, each once.

    Words come from `lmrec.data.tokenize.words` in search mode: Chinese is segmented into words, and
    the shorter words inside a long one are terms too, so ``科幻电影`` (science-fiction film) and
    ``科幻片`` (science-fiction picture) share the term ``科幻``.
    """
    seen: dict[str, None] = {}
    for tok in words(text, mode="search"):
        if tok not in _STOP and tok not in seen:
            seen[tok] = None
    return list(seen)


def explain_recommendation(
    user_idx: int,
    item_idx: int,
    item_vectors: np.ndarray,
    user_vector: np.ndarray,
    history: np.ndarray,
    item_map: IdMap,
    item_fields: dict[str, list[str]],
    *,
    k: int = 3,
    query: str | None = None,
    query_vector: np.ndarray | None = None,
    encoder: Callable[[], TextEncoder] | None = None,
) -> dict[str, Any]:
    """Why ``item_idx`` is recommended to a user (optionally under ``query``), from what the model knows.

    Args:
        user_idx: the user's index (reported as given).
        item_idx: the recommended item.
        item_vectors: (n_items, d) the model's item vectors.
        user_vector: (d,) the user's vector.
        history: the user's recent item indices (empty for an unknown user).
        item_map: the model's item id map.
        item_fields: field -> each item's text of that field.
        k: how many history items to return.
        query: the query the recommendation answered, if any.
        query_vector: (d,) the query's vector in the model's space (None: the model has no text path).
        encoder: returns the model's text encoder, to match the query against item fields.

    Returns:
        ``{"user_idx", "item_idx", "item_id", "score", "history": [{"item_idx", "item_id", "text",
        "similarity"}, ...best first], "query": {"text", "similarity", "fields": [{"field", "value",
        "similarity", "matched_terms"}, ...best first]}}`` (``"query"`` only when one is given;
        ``"similarity"`` only with a ``query_vector``).
    """
    target = item_vectors[item_idx]
    score = float(user_vector @ target)
    first_field = next(iter(item_fields), None)
    contributions = []
    if len(history):
        uniq = np.unique(history)
        sims = item_vectors[uniq] @ target
        for j in np.argsort(-sims, kind="stable")[:k]:
            idx = int(uniq[j])
            contributions.append(
                {
                    "item_idx": idx,
                    "item_id": str(item_map.to_ids([idx])[0]),
                    "text": item_fields[first_field][idx] if first_field else "",
                    "similarity": float(sims[j]),
                }
            )
    out: dict[str, Any] = {
        "user_idx": int(user_idx),
        "item_idx": item_idx,
        "item_id": str(item_map.to_ids([item_idx])[0]),
        "score": score,
        "history": contributions,
    }
    if query:
        out["query"] = _query_match(item_idx, query, target, item_fields, query_vector, encoder)
    return out


def _query_match(
    item_idx: int,
    query: str,
    target: np.ndarray,
    item_fields: dict[str, list[str]],
    query_vector: np.ndarray | None,
    encoder: Callable[[], TextEncoder] | None,
) -> dict[str, Any]:
    terms = set(query_terms(query))
    fields = [(f, vals[item_idx]) for f, vals in item_fields.items() if vals[item_idx]]
    result: dict[str, Any] = {"text": query, "fields": []}
    if query_vector is not None:
        result["similarity"] = float(query_vector @ target)
    if not fields or encoder is None:
        return result
    text_encoder = encoder()
    q = text_encoder.encode([query], kind="query")[0]
    f_vecs = text_encoder.encode([v for _, v in fields], kind="passage")
    rows = []
    for (name, value), vec in zip(fields, f_vecs):
        value_terms = set(query_terms(value))
        rows.append(
            {
                "field": name,
                "value": value if len(value) <= 200 else value[:197] + "...",
                "similarity": float(vec @ q),
                "matched_terms": sorted(terms & value_terms),
            }
        )
    result["fields"] = sorted(rows, key=lambda r: -r["similarity"])
    return result
