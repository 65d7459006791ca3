"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from typing import Any

import numpy as np

from lmrec.data.dataset import Dataset
from lmrec.models.base import Recommender, register

__all__ = ["Popularity"]


@register("pop")
class Popularity(Recommender):
    """Scores each item by its interaction count in training (RecBole's Pop).

    ``similar_items`` ranks by popularity too: without content or co-occurrence there is nothing else.
    """

    def __init__(self) -> None:
        pass

    def _fit(self, dataset: Dataset) -> None:
        self.counts_ = dataset.interactions.item_counts().astype(np.float32)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(np.atleast_1d(user_idx)), len(self.counts_)))

    def item_similarities(self, item_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(item_idx), len(self.counts_)))

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"counts": self.counts_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.counts_ = arrays["counts"]
