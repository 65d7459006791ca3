"""Where the language-model model loses on cold items.

Scores the frozen MiniLM item vectors alone (no training: user = mean of their history's item
vectors, cosine), raw and PCA-whitened, on the same cold-item split of Amazon Office (seed 0) as
``lm_bench.py cold``, over all items and over the new-items pool (items without a training
interaction). Compare with lm and TF-IDF in RESULTS.md §6.

Usage: ``python benchmarks/cold_content_check.py``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lm_bench  # noqa: E402

from lmrec.eval import evaluate  # noqa: E402
from lmrec.models.base import Recommender  # noqa: E402
from lmrec.models.lm import persist  # noqa: E402
from lmrec.models.lm.item_tower import fit_whitening  # noqa: E402
from lmrec.models.lm.text import encode_texts, item_fields, item_texts  # noqa: E402


class FrozenContent(Recommender):
    """User = mean of their history's item vectors; items = frozen (optionally whitened) LM vectors."""

    def __init__(self, vectors: np.ndarray, whiten: bool = False) -> None:
        self.vectors, self.whiten = vectors, whiten

    def _fit(self, dataset) -> None:
        x = self.vectors
        if self.whiten:
            mean, proj = fit_whitening(x, eps=0.1)
            x = (x - mean) @ proj
        self.x_ = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        hist = self.seen_[user_idx]
        users = np.asarray(hist @ self.x_) / np.maximum(np.asarray(hist.sum(axis=1)), 1)
        return users @ self.x_.T


def main() -> None:
    data = lm_bench.load_data("office")
    split = lm_bench.make_split(data, "cold", 0)
    texts, _ = item_texts(data.items, data.interactions.item_map, item_fields(data.items, None))
    vectors = encode_texts(persist.build_encoder(None, None, "torch", None), texts, cache_dir=str(lm_bench.CACHE))
    pool = np.flatnonzero(np.bincount(split.train.items, minlength=split.train.n_items) == 0)
    for whiten in (False, True):
        model = FrozenContent(vectors, whiten).fit(data.with_interactions(split.train))
        model.observe(split.valid)
        full = evaluate(model, split, ks=(10,), metrics=("recall", "ndcg")).metrics
        new = evaluate(model, split, ks=(10,), metrics=("recall", "ndcg"), item_pool=pool).metrics
        print(f"whiten={whiten}: all items recall@10 {full['recall@10']:.4f} ndcg@10 {full['ndcg@10']:.4f}; "
              f"new items recall@10 {new['recall@10']:.4f} ndcg@10 {new['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
