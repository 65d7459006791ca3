"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset
from lmrec.data.frames import as_raw_frame, grow_id_maps, grow_seen, on_maps
from lmrec.data.interactions import Interactions
from lmrec.models.base import Recommender, register

__all__ = ["Popularity"]


@register("pop")
class Popularity(Recommender):
    """Scores each item by its interaction count in training (RecBole's Pop).

    ``similar_items`` ranks by popularity too: without content or co-occurrence there is nothing else.
    ``partial_fit`` adds the new rows' counts: the result equals a ``fit`` on all rows so far.
    """

    def __init__(self) -> None:
        pass

    def _fit(self, dataset: Dataset) -> None:
        self.counts_ = dataset.interactions.item_counts().astype(np.float32)

    def partial_fit(
        self,
        new_interactions: Interactions | pd.DataFrame,
        new_items: ItemCatalog | None = None,
        new_users: UserTexts | None = None,
    ) -> Popularity:
        """Add new interactions (raw ids, as `LMRecommender.partial_fit`): the id maps grow, every new
        catalogue row in ``new_items`` becomes an item with count 0, and counts add up."""
        self._check_fitted()
        catalog_ids = list(new_items.frame.index) if new_items is not None else []
        frame = as_raw_frame(new_interactions)
        self.user_map_, self.item_map_, _, _ = grow_id_maps(self.user_map_, self.item_map_, frame, catalog_ids)
        self.seen_ = grow_seen(self.seen_, len(self.user_map_), len(self.item_map_))
        inter = on_maps(frame, self.user_map_, self.item_map_)
        counts = np.zeros(inter.n_items, np.float32)
        counts[: len(self.counts_)] = self.counts_
        self.counts_ = counts + inter.item_counts().astype(np.float32)
        self.observe(inter)
        return self

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(np.atleast_1d(user_idx)), len(self.counts_)))

    def item_similarities(self, item_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(item_idx), len(self.counts_)))

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"counts": self.counts_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.counts_ = arrays["counts"]
