"""Produced RESULTS.md §6 (lm), cold-item split: "Where the cold-start loss comes from" and the content rows of "How far content alone goes".

How far content alone goes on cold items, with no training at all.

Scores the frozen MiniLM item vectors (raw and PCA-whitened; user = mean of their history's item
vectors, cosine), other ways of pooling the history (max over history items, a log-sum-exp with a
temperature), and a lexical + dense blend (per-user z-scored MiniLM and TF-IDF scores), on the same
cold-item split of Amazon Office (seed 0) as ``lm_bench.py cold``, over all items and over the new-items
pool (items without a training interaction), with the validation Recall@10 that would pick among
them. Compare with lm and TF-IDF in RESULTS.md §6.

Usage (from the repository root; ``benchmarks/`` holds the shared helpers): ``PYTHONPATH=benchmarks python
experiments/cold_content_check.py``
"""

from __future__ import annotations

import argparse

import common
import lm_bench
import numpy as np

from lmrec.eval import evaluate
from lmrec.models import TfidfRecommender
from lmrec.models.base import Recommender
from lmrec.models.lm import persist
from lmrec.models.lm.item_tower import fit_whitening
from lmrec.models.lm.text import encode_texts, item_fields, item_texts


class FrozenContent(Recommender):
    """Items = frozen (optionally whitened) LM vectors; a user's score for an item pools the cosine
    to their history items: ``"mean"`` (cosine to the history's mean vector), ``"max"``, or
    ``"lse"`` (``tau * log sum exp(cos / tau)``, between the two)."""

    def __init__(self, vectors: np.ndarray, whiten: bool = False, pool: str = "mean", tau: float = 0.1) -> None:
        self.vectors, self.whiten, self.pool, self.tau = vectors, whiten, pool, tau

    def _fit(self, dataset) -> None:
        x = self.vectors
        if self.whiten:
            mean, proj = fit_whitening(x, eps=0.1)
            x = (x - mean) @ proj
        self.x_ = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        hist = self.seen_[user_idx]
        if self.pool == "mean":
            users = np.asarray(hist @ self.x_) / np.maximum(np.asarray(hist.sum(axis=1)), 1)
            return users @ self.x_.T
        out = np.zeros((len(user_idx), len(self.x_)), np.float32)
        for row in range(len(user_idx)):
            items = hist[row].indices
            if len(items):
                sims = self.x_[items] @ self.x_.T  # (h, n)
                if self.pool == "max":
                    out[row] = sims.max(axis=0)
                else:
                    top = sims.max(axis=0)
                    out[row] = top + self.tau * np.log(np.exp((sims - top) / self.tau).sum(axis=0))
        return out


class Blend(Recommender):
    """Per-user z-scored scores of two fitted models, ``z(a) + weight * z(b)``."""

    def __init__(self, a: Recommender, b: Recommender, weight: float) -> None:
        self.a, self.b, self.weight = a, b, weight

    def _fit(self, dataset) -> None:
        pass

    def observe(self, interactions):  # the parts score from their own histories
        self.a.observe(interactions)
        self.b.observe(interactions)
        return super().observe(interactions)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        def z(s: np.ndarray) -> np.ndarray:
            return (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-9)

        return z(self.a.score_all(user_idx)) + self.weight * z(self.b.score_all(user_idx))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_office_arg(parser)
    args = parser.parse_args()
    data = common.load_data("office", args.office)
    split = lm_bench.make_split(data, "cold", 0)
    texts, _ = item_texts(data.items, data.interactions.item_map, item_fields(data.items, None))
    vectors = encode_texts(persist.build_encoder(None, None, "torch", None), texts, cache_dir=str(lm_bench.CACHE))
    train = data.with_interactions(split.train)
    pool = np.flatnonzero(np.bincount(split.train.items, minlength=split.train.n_items) == 0)

    def report(name: str, build) -> None:
        model = build()
        valid = evaluate(model, split, phase="valid", ks=(10,), metrics=("recall",)).metrics
        model.observe(split.valid)
        full = evaluate(model, split, ks=(10,), metrics=("recall", "ndcg")).metrics
        new = evaluate(model, split, ks=(10,), metrics=("recall", "ndcg"), item_pool=pool).metrics
        print(
            f"{name}: valid recall@10 {valid['recall@10']:.4f}; all items recall@10 {full['recall@10']:.4f} "
            f"ndcg@10 {full['ndcg@10']:.4f}; new items recall@10 {new['recall@10']:.4f} ndcg@10 {new['ndcg@10']:.4f}",
            flush=True,
        )

    for whiten in (False, True):
        report(f"MiniLM whiten={whiten} mean", lambda whiten=whiten: FrozenContent(vectors, whiten).fit(train))
    report("MiniLM whitened max", lambda: FrozenContent(vectors, True, "max").fit(train))
    for tau in (0.1, 0.05):
        report(f"MiniLM whitened lse tau={tau}", lambda tau=tau: FrozenContent(vectors, True, "lse", tau).fit(train))
    report("TF-IDF", lambda: TfidfRecommender().fit(train))
    for weight in (0.5, 1.0, 2.0):
        report(
            f"z(MiniLM whitened mean) + {weight} z(TF-IDF)",
            lambda weight=weight: Blend(
                FrozenContent(vectors, True).fit(train), TfidfRecommender().fit(train), weight
            ).fit(train),
        )


if __name__ == "__main__":
    main()
