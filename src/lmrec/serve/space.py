"""The vector space a served model lives in: where items, queries and profiles meet.

- `ModelSpace`: the model is a `VectorRecommender` (the language-model interest model): its own
  item vectors, its user vectors, its query and cold-item encoders.
- `TextSpace`: any other model (EASE, Popularity, ...): item vectors are the catalogue texts encoded
  by a `TextEncoder` (once, through the on-disk embedding cache); queries use the same encoder; a known
  user's offline vector is the mean of the unit vectors of the items in their training history.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from lmrec.data.idmap import IdMap
from lmrec.encoders import make_text_encoder
from lmrec.encoders.base import TextEncoder
from lmrec.encoders.cache import CachedEncoder
from lmrec.models.bundle import ModelBundle, VectorRecommender

__all__ = ["ModelSpace", "TextSpace", "VectorSpace", "bundle_text_settings", "make_space"]

log = logging.getLogger(__name__)


def bundle_text_settings(info: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """``(template, encoder model, encoder backend)`` recorded in a bundle's ``bundle.json``.

    Read keys: ``text_template`` or ``template`` at the top level, and ``encoder`` either as a model
    name or as a `TextEncoderConfig`-like dict (``model``, ``backend``, ``template``).
    """
    enc = info.get("encoder")
    model = backend = enc_template = None
    if isinstance(enc, dict):
        model, backend, enc_template = enc.get("model"), enc.get("backend"), enc.get("template")
    elif isinstance(enc, str):
        model = enc
    template = info.get("text_template") or info.get("template") or enc_template
    return template, model, backend


class VectorSpace(ABC):
    """Items, queries and users as vectors compared by inner product.

    Attributes:
        name: identifies the space; stored profiles and item vectors from another space are rebuilt.
        kind: ``"model"`` or ``"text"``.
        dim: vector width.
    """

    name: str
    kind: Literal["model", "text"]
    dim: int

    @abstractmethod
    def base_vectors(self, item_ids: Sequence[str], texts: Sequence[str], n_model: int) -> np.ndarray:
        """(n, dim) vectors of the catalogue rows: the first ``n_model`` are the model's items in index order."""

    @abstractmethod
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) query vectors."""

    @abstractmethod
    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) vectors of items known by their text only (new items)."""

    @abstractmethod
    def user_vector(self, user_idx: int, item_vectors: np.ndarray, scenario: int | None = None) -> np.ndarray | None:
        """(dim,) offline vector of a user the model knows, or None; ``scenario``: a scenario-aware
        model's scenario id (None: its shared path)."""


class ModelSpace(VectorSpace):
    """The space of a `VectorRecommender`."""

    kind = "model"

    def __init__(self, model: VectorRecommender, version: str) -> None:
        self.model = model
        self.name = f"model:{version}"
        self.dim = int(np.asarray(model.item_vectors()).shape[1])

    def base_vectors(self, item_ids: Sequence[str], texts: Sequence[str], n_model: int) -> np.ndarray:
        vectors = np.asarray(self.model.item_vectors(), dtype=np.float32)[:n_model]
        extra = list(texts[n_model:])
        if extra:
            vectors = np.concatenate([vectors, self.encode_items(extra)])
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.encode_queries(list(texts)), dtype=np.float32)

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.encode_items(list(texts)), dtype=np.float32)

    def user_vector(self, user_idx: int, item_vectors: np.ndarray, scenario: int | None = None) -> np.ndarray | None:
        users = np.asarray([user_idx], dtype=np.int64)
        if scenario is None:
            return np.asarray(self.model.user_vectors(users)[0], dtype=np.float32)
        # only scenario-aware models are asked for a scenario (the service checks is_scenario_aware)
        scenario_model = cast(Any, self.model)
        ids = np.full(len(users), scenario, dtype=np.int64)  # an array: the model broadcasts a scalar read-only
        return np.asarray(scenario_model.user_vectors(users, scenario=ids)[0], dtype=np.float32)


class TextSpace(VectorSpace):
    """The space of a text encoder, for models without vectors of their own.

    Args:
        model: the fitted model (its ``seen_`` gives the users' histories).
        encoder: the text encoder.
        cache_dir: embedding cache for the catalogue texts (None: no cache).
        show_progress: progress bar while encoding the catalogue.
    """

    kind = "text"

    def __init__(
        self, model: Any, encoder: TextEncoder, *, cache_dir: str | Path | None = None, show_progress: bool = False
    ) -> None:
        self.model = model
        self.encoder = encoder
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        self.name = f"text:{encoder.name}"
        self.dim = int(encoder.dim)

    def base_vectors(self, item_ids: Sequence[str], texts: Sequence[str], n_model: int) -> np.ndarray:
        empty = sum(1 for t in texts if not t)
        if empty:
            log.warning("%d of %d items have no text; they share the vector of the empty string", empty, len(texts))
        encoder: Any = self.encoder
        cached = None
        if self.cache_dir is not None:
            encoder = cached = CachedEncoder(self.encoder, self.cache_dir)
        try:
            vectors = encoder.encode(list(texts), batch_size=64, kind="passage", show_progress=self.show_progress)
        finally:
            if cached is not None:
                cached.cache.close()
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.encoder.encode(list(texts), kind="query"), dtype=np.float32)

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.encoder.encode(list(texts), kind="passage"), dtype=np.float32)

    def user_vector(self, user_idx: int, item_vectors: np.ndarray, scenario: int | None = None) -> np.ndarray | None:
        # the mean of the history's text vectors: a scenario changes the model's scores, not this
        seen = self.model.seen_
        history = seen.indices[seen.indptr[user_idx] : seen.indptr[user_idx + 1]]
        if len(history) == 0:
            return None
        rows = item_vectors[history]
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        return rows.mean(axis=0).astype(np.float32)


def make_space(
    bundle: ModelBundle,
    version: str,
    *,
    encoder: TextEncoder | None = None,
    encoder_model: str | None = None,
    encoder_backend: str | None = None,
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
) -> VectorSpace:
    """The model's own space when it is a `VectorRecommender`, else a text encoder's.

    Args:
        bundle: the loaded model directory.
        version: the model version (names the model space).
        encoder: a ready encoder (tests inject one); else one is built with ``make_text_encoder`` from
            ``encoder_model`` / ``encoder_backend``, falling back to the bundle's settings.
        cache_dir: embedding cache of the catalogue texts.
        show_progress: progress bar while encoding.
    """
    model = bundle.model
    if isinstance(model, VectorRecommender) and model.item_vectors() is not None:
        return ModelSpace(model, version)
    if encoder is None:
        _, info_model, info_backend = bundle_text_settings(bundle.info)
        model_name = encoder_model or info_model
        backend = encoder_backend or info_backend or "torch"
        log.info(
            "encoding items of %s with %s (backend %s)", type(model).__name__, model_name or "packaged MiniLM", backend
        )
        encoder = make_text_encoder(model_name, backend)  # type: ignore[arg-type]
    return TextSpace(model, encoder, cache_dir=cache_dir, show_progress=show_progress)


def served_item_ids(bundle: ModelBundle) -> tuple[list[str], int]:
    """Row order of the served items: the model's items in index order, then catalogue-only items.

    Returns:
        ``(ids, n_model)``.
    """
    model_ids = bundle.model.item_map_.ids
    ids = list(model_ids)
    if bundle.catalog is not None:
        known = set(model_ids)
        ids.extend(i for i in bundle.catalog.frame.index if i not in known)
    return ids, len(model_ids)


def item_texts_for(bundle: ModelBundle, ids: Sequence[str]) -> list[str]:
    """Catalogue text of each id (template from the bundle, else the text fields); "" without a catalogue."""
    if bundle.catalog is None:
        return [""] * len(ids)
    template, _, _ = bundle_text_settings(bundle.info)
    return bundle.catalog.texts(IdMap(ids), template=template)
