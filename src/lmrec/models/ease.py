"""EASE: the closed-form item-item linear autoencoder (Steck 2019; RecBole's EASE)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from lmrec.data.dataset import Dataset
from lmrec.models.base import Recommender, register

__all__ = ["EASE"]

log = logging.getLogger(__name__)


@register("ease")
class EASE(Recommender):
    """``B = I - P / diag(P)`` with ``P = (X^T X + reg_weight I)^-1`` and a zero diagonal; scores ``X_u B``.

    ``X`` is the binary user x item training matrix. The inverse is taken in float64 and kept as
    float32. The model holds a dense (n_items, n_items) matrix, so it suits catalogues up to a few
    tens of thousands of items; ``max_items`` guards against accidentally asking for more.

    Scores read the current history (``seen_``), so ``observe`` folds new interactions in.

    Args:
        reg_weight: the L2 penalty lambda (RecBole's default 250.0).
        max_items: refuse catalogues larger than this (the dense inverse needs ``8 n^2`` bytes).
        random_state: unused (closed form); kept for a uniform signature.
    """

    def __init__(self, reg_weight: float = 250.0, max_items: int = 40_000, random_state: int | None = None) -> None:
        self.reg_weight = reg_weight
        self.max_items = max_items
        self.random_state = random_state

    def _fit(self, dataset: Dataset) -> None:
        if not self.reg_weight > 0:
            raise ValueError(f"EASE reg_weight must be > 0, got {self.reg_weight!r}")
        n = self.seen_.shape[1]
        if n > self.max_items:
            raise ValueError(
                f"EASE needs a dense {n} x {n} matrix ({8 * n * n / 2**30:.1f} GiB in float64) but max_items is "
                f"{self.max_items}; raise max_items or use itemknn / mf"
            )
        x = self.seen_.astype(np.float64)
        gram = (x.T @ x).toarray()  # (n_items, n_items)
        gram[np.diag_indices(n)] += float(self.reg_weight)
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))[None, :]  # B_ij = -P_ij / P_jj
        b[np.diag_indices(n)] = 0.0
        self.weights_ = b.astype(np.float32)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = self._check_users(user_idx)
        return np.asarray(self.seen_[user_idx] @ self.weights_, dtype=np.float32)

    def item_similarities(self, item_idx: np.ndarray) -> np.ndarray:
        """Row ``i`` of ``B``: how much having item ``i`` raises each other item's score."""
        return self.weights_[np.asarray(item_idx, dtype=np.int64)]

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"weights": self.weights_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.weights_ = arrays["weights"]
