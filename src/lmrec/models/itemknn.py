"""Item-based k-nearest-neighbours over the binary interaction matrix (RecBole's ItemKNN)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from lmrec.data.dataset import Dataset
from lmrec.models.base import Recommender, register

__all__ = ["ItemKNN", "cosine_topk"]


def cosine_topk(matrix: sp.csr_matrix, k: int, shrink: float = 0.0, *, block_bytes: int = 256 * 2**20) -> sp.csr_matrix:
    """Top-``k`` cosine neighbours of every column of ``matrix``.

    ``sim(i, j) = x_i . x_j / (|x_i| |x_j| + shrink + 1e-6)`` over the columns ``x`` of ``matrix``,
    the item itself excluded. Items are processed in blocks whose dense similarity slab stays under
    ``block_bytes``, so memory is ``O(n_items * block + n_items * k)``, not ``O(n_items^2)``.

    Args:
        matrix: (n_users, n_items) CSR, usually binary.
        k: neighbours kept per item.
        shrink: added to the denominator; damps similarities resting on few co-occurrences.
        block_bytes: memory bound for one block of dense similarities.

    Returns:
        (n_items, n_items) float32 CSR whose row ``i`` holds item ``i``'s neighbours.
    """
    n_items = matrix.shape[1]
    csc = sp.csc_matrix(matrix, dtype=np.float32)
    item_t = csc.T.tocsr()  # (n_items, n_users)
    norms = np.sqrt(np.asarray(csc.multiply(csc).sum(axis=0)).ravel()).astype(np.float32)
    k = min(k, max(n_items - 1, 0))
    block = max(1, min(n_items, block_bytes // max(1, 4 * n_items)))
    rows, cols, vals = [], [], []
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        dots = (item_t[start:stop] @ csc).toarray()  # (block, n_items) co-occurrence counts
        sims = dots / (norms[start:stop, None] * norms[None, :] + shrink + 1e-6)
        sims[np.arange(stop - start), np.arange(start, stop)] = 0.0
        if k == 0:
            continue
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (block, k)
        top = np.take_along_axis(sims, part, axis=1)
        keep = top > 0
        rows.append(np.broadcast_to(np.arange(start, stop)[:, None], part.shape)[keep])
        cols.append(part[keep])
        vals.append(top[keep])
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    out = sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )
    out.sort_indices()
    return out


@register("itemknn")
class ItemKNN(Recommender):
    """Item-item cosine neighbours; a user's score for item ``i`` sums the similarities between
    ``i`` and the items in the user's history, over ``i``'s top-``k`` neighbours (RecBole's ItemKNN).

    Scores read the current history (``seen_``), so ``observe`` folds new interactions in without
    refitting.

    Args:
        k: neighbours kept per item (RecBole's default 100).
        shrink: added to the cosine denominator (RecBole's default 0.0).
        random_state: unused (the model is deterministic); kept for a uniform signature.
    """

    def __init__(self, k: int = 100, shrink: float = 0.0, random_state: int | None = None) -> None:
        self.k = k
        self.shrink = shrink
        self.random_state = random_state

    def _fit(self, dataset: Dataset) -> None:
        if not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"ItemKNN k must be an integer >= 1, got {self.k!r}")
        if self.shrink < 0:
            raise ValueError(f"ItemKNN shrink must be >= 0, got {self.shrink!r}")
        self.similarity_ = cosine_topk(self.seen_, int(self.k), float(self.shrink))
        self._weights = None

    @property
    def _score_weights(self) -> sp.csr_matrix:
        # column j of similarity_ holds the neighbourhood weights of item j's rows; scores = X @ S^T
        if getattr(self, "_weights", None) is None:
            self._weights = self.similarity_.T.tocsr()
        return self._weights

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = self._check_users(user_idx)
        return (self.seen_[user_idx] @ self._score_weights).toarray().astype(np.float32, copy=False)

    def item_similarities(self, item_idx: np.ndarray) -> np.ndarray:
        return self.similarity_[np.asarray(item_idx, dtype=np.int64)].toarray()

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        s = self.similarity_
        return {"sim_data": s.data, "sim_indices": s.indices, "sim_indptr": s.indptr}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        n = self.seen_.shape[1]
        parts = (arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"])
        self.similarity_ = sp.csr_matrix(parts, shape=(n, n))
        self._weights = None
