"""Field values as clean text, and templates over item and user fields."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

import numpy as np

__all__ = ["clean_text", "join_sentences", "profile_sentence", "render_template"]


def clean_text(value: object) -> str:
    """A field value as text; missing values (None, NaN, "nan") become the empty string."""
    if value is None:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(s for s in (clean_text(v) for v in value) if s)
    text = str(value).strip()
    return "" if text.lower() in ("nan", "none", "<na>", "nat") else text


def join_sentences(parts: list[str]) -> str:
    """Non-empty parts joined with ". ", or a space after a part that already ends a sentence."""
    out = ""
    for part in parts:
        if part:
            out = part if not out else out + (" " if out[-1] in ".!?" else ". ") + part
    return out


_FIELD = re.compile(r"\{([^{}]+)\}")


def render_template(template: str, values: Mapping[str, object]) -> str:
    """Fill ``template`` with ``values``; a segment whose field is empty is dropped whole.

    A segment is a field with its label before it and its closing brackets after it; the
    punctuation between segments separates them and is written only between two non-empty ones:
    ``"{title}. {brand}. {categories}"`` with an empty brand gives ``"Title. Cats"`` rather than
    ``"Title. . Cats"``; ``"Title: {title}. Brand: {brand}"`` with an empty title gives
    ``"Brand: Acme"``; ``"{title} ({year})"`` with no year gives ``"Title"``.

    Raises:
        ValueError: a field of the template is not among ``values``.
    """
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"template field(s) {missing} not found; available: {sorted(values)}")
    literals = _FIELD.split(template)[::2]  # literals[i] precedes field i; the last one is the tail
    fields = _FIELD.findall(template)
    out: list[str] = []
    label, sep = literals[0], ""
    for i, name in enumerate(fields):
        after = literals[i + 1]
        close = _leading(_CLOSE, after)
        rest = after[len(close) :]
        value = clean_text(values[name])
        if value:
            if out and out[-1][-1:] in (".", "!", "?") and sep.startswith("."):
                sep = sep[1:]  # "Great!" + ". " + "Text" -> "Great! Text"
            out.append((sep if out else "") + label + value + close)
        if i + 1 < len(fields):
            sep = _leading(_SEP, rest)
            label = rest[len(sep) :]
        elif out:
            out.append(rest)
    return "".join(out).strip()


_CLOSE = re.compile(r"[)\]}\"'»]*")
_SEP = re.compile(r"[\s.,;:!?|/\-–—]*")


def _leading(pattern: re.Pattern[str], text: str) -> str:
    """The prefix of ``text`` matched by ``pattern``; `_CLOSE` and `_SEP` end in ``*``, so they always match."""
    match = pattern.match(text)
    return match.group(0) if match is not None else ""


def profile_sentence(attributes: Mapping[str, object]) -> str:
    """A plain-language profile from user attributes, e.g. ``"age: 24. gender: M. occupation: writer"``.

    Attribute names are used as written, so any data set's user columns work; empty values are skipped.
    """
    parts = [f"{key}: {clean_text(value)}" for key, value in attributes.items() if clean_text(value)]
    return ". ".join(parts)
