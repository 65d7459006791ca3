"""Encoding texts through the embedding cache: any list of texts, or a whole item catalogue in item-index order."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmrec.data.catalog import ItemCatalog
from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.encoders.base import TextEncoder
from lmrec.encoders.cache import CachedEncoder
from lmrec.encoders.templates import render_item_texts

__all__ = ["EncodedCatalog", "encode_catalog", "encode_texts"]

log = logging.getLogger(__name__)


@dataclass
class EncodedCatalog:
    """Item vectors and how they were made.

    Attributes:
        vectors: (n_items, dim) float32 unit rows in ``item_map`` order.
        item_map: the row order.
        encoder_name: the encoder's name (its cache key).
        dim: vector width.
        seconds: wall time of the encode (text building and cache look-ups included).
        cache_hits, cache_misses: distinct texts found in / added to the cache (``None`` without a cache).
        empty_texts: items whose text was empty (they still get a vector).
    """

    vectors: np.ndarray
    item_map: IdMap
    encoder_name: str
    dim: int
    seconds: float
    cache_hits: int | None = None
    cache_misses: int | None = None
    empty_texts: int = 0

    @property
    def n_items(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def items_per_second(self) -> float:
        return self.n_items / self.seconds if self.seconds > 0 else float("inf")

    @property
    def cache_hit_rate(self) -> float | None:
        if self.cache_hits is None or self.cache_misses is None:
            return None
        total = self.cache_hits + self.cache_misses
        return self.cache_hits / total if total else 0.0

    def summary(self) -> str:
        """One line: encoder name, dim, item count, items/s and cache figures."""
        text = (
            f"encoder={self.encoder_name} dim={self.dim} items={self.n_items} "
            f"items/s={self.items_per_second:.1f} seconds={self.seconds:.2f}"
        )
        if self.cache_hits is not None:
            text += f" cache_hits={self.cache_hits} cache_misses={self.cache_misses} hit_rate={self.cache_hit_rate:.3f}"
        return text


def encode_catalog(
    dataset_or_catalog: Dataset | ItemCatalog,
    item_map: IdMap | None = None,
    *,
    encoder: TextEncoder,
    template: str | None = None,
    fields: list[str] | None = None,
    max_tokens: int | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    show_progress: bool = True,
) -> EncodedCatalog:
    """Encode every item's text, one L2-normalised row per item in item-index order.

    Args:
        dataset_or_catalog: a `Dataset` with an item catalogue, or an `ItemCatalog`.
        item_map: row order; default the dataset's item map (its interactions' index space), or the
            catalogue's own row order for a bare catalogue.
        encoder: any `TextEncoder` (see `make_text_encoder`).
        template: item text template, e.g. ``"{title}. {brand}. {categories}. {description}"``;
            ``None`` joins ``fields`` (default: the catalogue's text fields).
        fields: columns to join when no template is given.
        max_tokens: cut each item text to this many tokens of the encoder's tokenizer first.
        cache_dir: embedding cache directory; only texts not cached under this encoder's name are
            encoded. Ignored when ``encoder`` is already a `CachedEncoder`.
        batch_size: texts per forward pass.
        show_progress: show a progress bar.

    Returns:
        `EncodedCatalog` with ``vectors`` of shape (n_items, dim).
    """
    if isinstance(dataset_or_catalog, Dataset):
        catalog = dataset_or_catalog.items
        if catalog is None:
            raise ValueError(f"dataset {dataset_or_catalog.name!r} has no item catalogue to encode")
        item_map = item_map if item_map is not None else dataset_or_catalog.interactions.item_map
    elif isinstance(dataset_or_catalog, ItemCatalog):
        catalog = dataset_or_catalog
        item_map = item_map if item_map is not None else IdMap(catalog.frame.index)
    else:
        raise TypeError(f"encode_catalog takes a Dataset or an ItemCatalog, got {type(dataset_or_catalog).__name__}")
    start = time.perf_counter()
    if cache_dir is not None and not isinstance(encoder, CachedEncoder):
        encoder = CachedEncoder(encoder, cache_dir)
    tokenizer = getattr(encoder, "tokenizer", None)
    texts = render_item_texts(
        catalog, item_map, template=template, fields=fields, max_tokens=max_tokens, tokenizer=tokenizer
    )
    empty = sum(1 for t in texts if not t)
    if empty:
        log.warning("%d of %d items have no text; they get the encoding of the empty string", empty, len(texts))
    vectors = encoder.encode(texts, batch_size=batch_size, kind="passage", show_progress=show_progress)
    seconds = time.perf_counter() - start
    stats = encoder.last_stats if isinstance(encoder, CachedEncoder) else None
    result = EncodedCatalog(
        vectors=np.asarray(vectors, dtype=np.float32),
        item_map=item_map,
        encoder_name=encoder.name,
        dim=int(encoder.dim),
        seconds=seconds,
        cache_hits=stats.hits if stats else None,
        cache_misses=stats.misses if stats else None,
        empty_texts=empty,
    )
    log.info("%s", result.summary())
    return result


def encode_texts(
    encoder: TextEncoder,
    texts: Sequence[str],
    *,
    kind: str = "passage",
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
) -> np.ndarray:
    """Encode texts once, through lmrec's on-disk embedding cache when ``cache_dir`` is given.

    Args:
        encoder: any `TextEncoder`; wrapped in a `CachedEncoder` for ``cache_dir`` unless it is one.
        texts: n strings.
        kind: ``"passage"`` or ``"query"`` (the encoder's prefix for that side).
        cache_dir: embedding cache directory, or ``None``.
        show_progress: show a progress bar.

    Returns:
        (n, D) float32 unit vectors.

    Raises:
        ValueError: the encoder returned another shape than (n, ``encoder.dim``).
    """
    texts = list(texts)
    if cache_dir is not None and not isinstance(encoder, CachedEncoder):
        encoder = CachedEncoder(encoder, cache_dir)
    out = np.asarray(encoder.encode(texts, kind=kind, show_progress=show_progress), dtype=np.float32)
    if out.shape != (len(texts), encoder.dim):
        raise ValueError(f"encoder {encoder.name!r} returned shape {out.shape}, expected ({len(texts)}, {encoder.dim})")
    return out
