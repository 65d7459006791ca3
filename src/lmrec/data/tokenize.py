"""The one word splitter of lmrec: ``\\w+`` runs, with Chinese runs segmented into words by jieba.

Every part that matches words (TF-IDF, an explanation's matched query terms, the service's
per-term contributions) splits text here, so a query and an item are split the same way.

Text without Han characters splits exactly as ``re.findall(r"\\w+", text)`` does (same tokens,
same order). Han characters have no spaces between words, so ``\\w+`` would make a whole Chinese
phrase one token; each run of Han characters is segmented with jieba instead (its bundled
dictionary, loaded on the first Chinese text, offline). Japanese kana and Korean hangul keep the
``\\w+`` behaviour.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

__all__ = ["has_han", "join_words", "words"]

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
# A Han run, or a \w run with the Han characters taken out: without Han this is exactly \w+.
_RUN = re.compile(rf"[{_HAN}]+|[^\W{_HAN}]+")
_HAN_CHAR = re.compile(rf"[{_HAN}]")

_lock = threading.Lock()
_cutters: dict[str, Callable[[str], Iterable[str]]] = {}


def has_han(text: str) -> bool:
    """Whether ``text`` holds any Han (Chinese) character."""
    return _HAN_CHAR.search(text) is not None


def _cutter(mode: Literal["precise", "search"]) -> Callable[[str], Iterable[str]]:
    """jieba's segmenter for ``mode``, imported and initialised on first use (its log kept quiet)."""
    cut = _cutters.get(mode)
    if cut is None:
        with _lock:
            if not _cutters:
                with warnings.catch_warnings():
                    # jieba's import may touch the deprecated pkg_resources, and its sources hold
                    # regex strings that newer Pythons flag with a SyntaxWarning
                    warnings.simplefilter("ignore")
                    import jieba

                # jieba logs "Building prefix dict..." at DEBUG to stderr on its own handler.
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()  # the bundled dictionary: no network
                _cutters["precise"] = jieba.cut
                _cutters["search"] = jieba.cut_for_search
        cut = _cutters[mode]
    return cut


def _tokens(text: str, mode: Literal["precise", "search"]) -> Iterator[str]:
    for match in _RUN.finditer(text):
        run = match.group()
        if _HAN_CHAR.match(run):
            yield from _cutter(mode)(run)
        else:
            yield run


def words(text: str, *, lowercase: bool = True, mode: Literal["precise", "search"] = "precise") -> list[str]:
    """Word tokens of ``text`` in order (repeats kept).

    Args:
        text: any text.
        lowercase: lowercase the text first.
        mode: how a Chinese run is segmented. ``"precise"`` (jieba's default cut) partitions it into
            words, so the tokens never overlap; ``"search"`` (jieba's search-engine cut) also adds the
            dictionary words inside long words (``科幻电影`` -> ``科幻, 电影, 科幻电影``), so a query and
            an item match on a shorter word they share. Text without Han characters is the same in
            both modes.

    Returns:
        The tokens; ``re.findall(r"\\w+", text)`` for text without Han characters.

    Raises:
        ValueError: ``mode`` is not ``"precise"`` or ``"search"``.
    """
    if mode not in ("precise", "search"):
        raise ValueError(f"words mode must be 'precise' or 'search', got {mode!r}")
    if lowercase:
        text = text.lower()
    return list(_tokens(text, mode))


def join_words(tokens: Iterable[str]) -> str:
    """Tokens back into text: a space between two tokens unless both are Chinese (written without spaces)."""
    out: list[str] = []
    prev_han = False
    for tok in tokens:
        han = has_han(tok)
        if out and not (han and prev_han):
            out.append(" ")
        out.append(tok)
        prev_han = han
    return "".join(out)
