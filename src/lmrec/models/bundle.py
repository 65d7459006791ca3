"""A trained model directory: the model plus the side information serving needs.

Layout of ``DIR`` (what ``lmrec train --out DIR`` writes and ``lmrec serve --model DIR`` reads)::

    DIR/config.json, state.npz, user_map.json, item_map.json   the model (Recommender.save)
    DIR/catalog/catalog.parquet, catalog.json                   item text and attributes (optional)
    DIR/users/user_texts.parquet, user_attributes.parquet      user texts (optional)
    DIR/bundle.json                                             data set name, text template, encoder settings
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.models.base import Recommender, load_model

__all__ = ["ModelBundle", "VectorRecommender"]


@runtime_checkable
class VectorRecommender(Protocol):
    """A recommender whose scores are inner products in one vector space that text can enter.

    The language-model interest model implements this; the service then serves queries, online
    profiles and new items in the model's own space. For other models the service falls back to the
    text encoder's space.
    """

    def item_vectors(self) -> np.ndarray:
        """(n_items, d) float32 item vectors; score(u, i) = user_vectors(u) . item_vectors()[i]."""
        ...

    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """(n, d) float32 vectors of known users (from their history and text)."""
        ...

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, d) float32 vectors of natural-language queries, comparable with item vectors."""
        ...

    def encode_items(self, texts: list[str]) -> np.ndarray:
        """(n, d) float32 vectors of items known only by their text (cold start)."""
        ...


@dataclass(eq=False)
class ModelBundle:
    """A fitted model with its catalogue, user texts and settings, saved as one directory."""

    model: Recommender
    catalog: ItemCatalog | None = None
    users: UserTexts | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        self.model.save(directory)
        if self.catalog is not None:
            self.catalog.save(directory / "catalog")
        if self.users is not None:
            self.users.save(directory / "users")
        (directory / "bundle.json").write_text(json.dumps(self.info, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ModelBundle:
        directory = Path(directory)
        if not (directory / "config.json").exists():
            raise FileNotFoundError(
                f"{directory} is not a model directory (no config.json); create one with `lmrec train`"
            )
        catalog = ItemCatalog.load(directory / "catalog") if (directory / "catalog" / "catalog.json").exists() else None
        users = UserTexts.load(directory / "users") if (directory / "users" / "user_texts.parquet").exists() else None
        info_path = directory / "bundle.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        return cls(load_model(directory), catalog, users, info)
