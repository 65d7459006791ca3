"""Item and user texts for encoding: templates over catalogue fields, truncated by tokens."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.idmap import IdMap
from lmrec.data.text import clean_text, profile_sentence

__all__ = ["DEFAULT_ITEM_TEMPLATE", "render_item_texts", "render_user_texts", "truncate_to_tokens"]

#: The usual product template; segments of empty fields are dropped (see `render_template`).
DEFAULT_ITEM_TEMPLATE = "{title}. {brand}. {categories}. {description}"

_WORD = re.compile(r"\S+")


def truncate_to_tokens(
    texts: Sequence[str],
    max_tokens: int,
    tokenizer: Any | None = None,
    *,
    keep: Literal["head", "tail"] = "head",
) -> list[str]:
    """Cut each text to its first (or last) ``max_tokens`` tokens, keeping the original characters.

    With a fast Hugging Face tokenizer the cut falls on a token boundary from its offset mapping (special
    tokens are not counted); without one, tokens are whitespace-separated words.

    Args:
        texts: n strings.
        max_tokens: tokens to keep (>= 1).
        tokenizer: a Hugging Face fast tokenizer, or ``None``.
        keep: ``"head"`` keeps the start (item text), ``"tail"`` the end (the latest of a user's reviews).

    Returns:
        n strings, each unchanged when already short enough.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if keep not in ("head", "tail"):
        raise ValueError(f"keep must be 'head' or 'tail', got {keep!r}")
    texts = [t or "" for t in texts]
    if tokenizer is not None and getattr(tokenizer, "is_fast", False):
        spans = tokenizer(
            texts, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )["offset_mapping"]
    else:
        spans = [[m.span() for m in _WORD.finditer(t)] for t in texts]
    out = []
    for text, offsets in zip(texts, spans):
        if len(offsets) <= max_tokens:
            out.append(text)
        elif keep == "head":
            out.append(text[: offsets[max_tokens - 1][1]].rstrip())
        else:
            out.append(text[offsets[-max_tokens][0] :].lstrip())
    return out


def render_item_texts(
    catalog: ItemCatalog,
    item_map: IdMap,
    *,
    template: str | None = None,
    fields: list[str] | None = None,
    max_tokens: int | None = None,
    tokenizer: Any | None = None,
) -> list[str]:
    """One text per item in ``item_map`` order; items missing from the catalogue get ``""``.

    Args:
        catalog: the item catalogue.
        item_map: output order.
        template: e.g. `DEFAULT_ITEM_TEMPLATE`; fields must be catalogue columns. ``None`` joins
            ``fields`` (default: the catalogue's text fields) with ``". "``.
        fields: columns to join when no template is given.
        max_tokens: keep the first ``max_tokens`` tokens of each text.
        tokenizer: the encoder's tokenizer for ``max_tokens`` (whitespace words without one).
    """
    texts = catalog.texts(item_map, template=template, fields=fields)
    return truncate_to_tokens(texts, max_tokens, tokenizer) if max_tokens else texts


def render_user_texts(
    users: UserTexts,
    user_map: IdMap,
    *,
    kinds: tuple[str, ...] | None = ("review",),
    include_profile: bool = True,
    max_tokens: int | None = None,
    tokenizer: Any | None = None,
    sep: str = " ",
) -> list[str]:
    """One text per user in ``user_map`` order: profile sentence, then their texts oldest first.

    When ``max_tokens`` cuts a text, the profile is kept and the most recent texts win (the cut keeps
    the tail of the texts).

    Args:
        users: user texts and optional attributes.
        user_map: output order.
        kinds: which kinds of text to use (``None``: all), e.g. ``("review",)`` or ``("query",)``.
        include_profile: start with `profile_sentence` of the user's attributes, where there are any.
        max_tokens: token budget of the whole user text.
        tokenizer: the encoder's tokenizer for ``max_tokens``.
        sep: between a user's texts.
    """
    bodies = users.joined(user_map, kinds=kinds, sep=sep)
    profiles = [""] * len(bodies)
    if include_profile and users.attributes is not None:
        attrs = users.attributes.reindex(user_map.ids)
        profiles = [profile_sentence(row) for row in attrs.to_dict("records")]
    if max_tokens:
        out = []
        for profile, body in zip(profiles, bodies):
            profile = truncate_to_tokens([profile], max_tokens, tokenizer)[0] if profile else ""
            used = len(_count_tokens(profile, tokenizer))
            body = truncate_to_tokens([body], max_tokens - used, tokenizer, keep="tail")[0] if used < max_tokens else ""
            out.append(_join(profile, body))
        return out
    return [_join(p, b) for p, b in zip(profiles, bodies)]


def _count_tokens(text: str, tokenizer: Any | None) -> list[object]:
    if not text:
        return []
    if tokenizer is not None and getattr(tokenizer, "is_fast", False):
        return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return _WORD.findall(text)


def _join(profile: str, body: str) -> str:
    profile, body = clean_text(profile), clean_text(body)
    if profile and body:
        return f"{profile}. {body}"
    return profile or body
