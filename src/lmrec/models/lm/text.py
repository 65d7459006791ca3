"""Item and user text for the language-model interest model, and encoding it once per fit."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lmrec.data.catalog import ItemCatalog, UserTexts, clean_text
from lmrec.data.idmap import IdMap
from lmrec.data.text import profile_sentence
from lmrec.encoders.base import TextEncoder
from lmrec.encoders.cache import CachedEncoder

__all__ = ["encode_texts", "format_item_text", "item_fields", "item_texts", "user_texts"]

log = logging.getLogger(__name__)


def item_fields(catalog: ItemCatalog, fields: Sequence[str] | None = None) -> list[str]:
    """The catalogue columns that make up item text: ``fields`` if given, else text fields then categories.

    Raises:
        ValueError: a named field is not a catalogue column.
    """
    if fields is not None:
        missing = [f for f in fields if f not in catalog.frame.columns]
        if missing:
            raise ValueError(
                f"text field(s) {missing} not in the item catalogue; columns: {list(catalog.frame.columns)}"
            )
        return list(fields)
    # the first text field (usually the title), then short categorical fields, then the remaining
    # (often long) text fields, so that truncation by the encoder cuts descriptions, not categories
    text = list(catalog.text_fields)
    out = text[:1] + [c for c in catalog.categorical if c not in text[:1]]
    out += [c for c in text[1:] if c not in out]
    if not out:
        raise ValueError("the item catalogue declares no text or categorical fields; pass text_fields=[...]")
    return out


def item_texts(catalog: ItemCatalog, item_map: IdMap, fields: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """One text per item in index order, plus each field's values.

    The first field is written bare (usually the title); later ones as ``"name: value"`` so that a
    bare category list is not read as part of the title. Items absent from the catalogue get "".

    Returns:
        ``(texts, values)``: n_items strings, and field -> n_items strings.
    """
    values = {f: catalog.field_values(item_map, f) for f in fields}
    texts = [format_item_text({f: values[f][i] for f in fields}, fields) for i in range(len(item_map))]
    return texts, values


def format_item_text(values: Mapping[str, object], fields: Sequence[str]) -> str:
    """One item's text from its field values, as `item_texts` writes it (missing fields are skipped)."""
    parts = []
    for j, f in enumerate(fields):
        v = clean_text(values.get(f))
        if v:
            parts.append(v if j == 0 else f"{f}: {v}")
    return ". ".join(parts)


def user_texts(users: UserTexts | None, user_map: IdMap, kinds: Sequence[str] | None = None) -> list[str]:
    """One text per user in index order: their texts (reviews, queries, profile sentences) joined,
    or, for a user with none, a profile sentence built from their attributes; "" when neither exists."""
    if users is None:
        return [""] * len(user_map)
    out = users.joined(user_map, tuple(kinds) if kinds is not None else None)
    if users.attributes is not None:
        attrs = users.attributes.reindex(user_map.ids)
        cols = list(attrs.columns)
        for i, text in enumerate(out):
            if not text:
                out[i] = profile_sentence(dict(zip(cols, attrs.iloc[i].tolist())))
    return [clean_text(t) for t in out]


def encode_texts(
    encoder: TextEncoder,
    texts: Sequence[str],
    *,
    kind: str = "passage",
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Encode texts once, through lmrec's on-disk embedding cache when one is configured.

    Returns:
        (n, D) float32 unit vectors.
    """
    texts = list(texts)
    if cache_dir is not None and not isinstance(encoder, CachedEncoder):
        encoder = CachedEncoder(encoder, cache_dir)
    out = encoder.encode(texts, kind=kind, show_progress=show_progress)
    out = np.asarray(out, dtype=np.float32)
    if out.shape != (len(texts), encoder.dim):
        raise ValueError(f"encoder {encoder.name!r} returned shape {out.shape}, expected ({len(texts)}, {encoder.dim})")
    return out
