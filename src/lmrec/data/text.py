"""Text templates over item and user fields."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from lmrec.data.catalog import _clean_text

__all__ = ["render_template", "profile_sentence"]

_FIELD = re.compile(r"\{([^{}]+)\}")


def render_template(template: str, values: Mapping[str, object]) -> str:
    """Fill ``template`` with ``values``; a segment whose field is empty is dropped whole.

    Segments are the pieces between fields: ``"{title}. {brand}. {categories}"`` with an empty brand
    gives ``"Title. Cats"`` rather than ``"Title. . Cats"``.

    Raises:
        ValueError: a field of the template is not among ``values``.
    """
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(f"template field(s) {missing} not found; available: {sorted(values)}")
    out: list[str] = []
    pos = 0
    pending_sep = ""
    for match in _FIELD.finditer(template):
        literal = template[pos : match.start()]
        pos = match.end()
        value = _clean_text(values[match.group(1)])
        if out:
            pending_sep = literal
        elif literal.strip():
            out.append(literal)
        if value:
            if out:
                out.append(pending_sep)
            out.append(value)
        pending_sep = ""
    tail = template[pos:]
    if out and tail.strip():
        out.append(tail)
    return "".join(out).strip()


def profile_sentence(attributes: Mapping[str, object]) -> str:
    """A plain-language profile from user attributes, e.g. ``"age: 24. gender: M. occupation: writer"``.

    Attribute names are used as written, so any data set's user columns work; empty values are skipped.
    """
    parts = [f"{key}: {_clean_text(value)}" for key, value in attributes.items() if _clean_text(value)]
    return ". ".join(parts)
