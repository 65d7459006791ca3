"""Produced RESULTS.md §6 (lm), cold-item split: "Borrowing the collaborative signal of text neighbours".

Cold items borrowing the collaborative signal of their text neighbours (a probe, not a shipped model).

On the cold-item split of Amazon Office (as ``lm_bench.py cold``), a cold item has no interactions, so
an item-item collaborative model has no column for it. Here it gets one: the columns of its ``k``
nearest warm items by frozen, whitened MiniLM cosine, mixed by ``softmax(cos / tau)``; a cold item in a
user's history gets its rows the same way. The score is

    cos(mean of the history's content vectors, item's content vector) + lam * mean_j S[j, item]

over the history items j, where ``S`` is item-item cosine (``--cf cosine``) or EASE's weights with
ridge ``reg`` (``--cf ease``, rescaled to the cosine matrix's mean magnitude on warm items). Per seed the
setting is chosen by validation Recall@10 over the grid; test figures are over all items and over the
new-items pool, next to TF-IDF and content alone. Compare with lm in RESULTS.md §6.

Usage::

    PYTHONPATH=benchmarks python experiments/cold_transfer_probe.py --cf cosine --seeds 0 1 2
    PYTHONPATH=benchmarks python experiments/cold_transfer_probe.py --cf ease --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import common
import lm_bench
import numpy as np
import scipy.sparse as sp
from cold_content_check import FrozenContent

from lmrec.eval import evaluate
from lmrec.models import TfidfRecommender
from lmrec.models.lm import persist
from lmrec.models.lm.text import encode_texts, item_fields, item_texts

GRID = {"k": (20,), "tau": (0.01, 0.02, 0.05), "lam": (1.0, 2.0, 4.0)}
EASE_REGS = (10.0, 50.0, 250.0)


class NeighbourTransfer(FrozenContent):
    """Content cosine plus ``lam`` times an item-item matrix whose cold rows and columns are mixes of
    their text neighbours' (see the module docstring)."""

    def __init__(self, vectors: np.ndarray, sim: np.ndarray, lam: float) -> None:
        super().__init__(vectors, whiten=True)
        self.sim, self.lam = sim, lam

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        hist = self.seen_[user_idx]
        n_hist = np.maximum(np.asarray(hist.sum(axis=1)), 1)
        return super().score_all(user_idx) + self.lam * np.asarray(hist @ self.sim) / n_hist


def mixing(content: np.ndarray, warm: np.ndarray, k: int, tau: float) -> np.ndarray:
    """(n, n) M with ``M[:, i] = e_i`` for a warm item and the softmax-weighted top-k warm neighbours
    of a cold one, so ``M.T @ S @ M`` gives cold items their neighbours' rows and columns."""
    n = len(content)
    mix = np.eye(n, dtype=np.float32)
    sims = content @ content[warm].T  # (n, n_warm)
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    for item in np.setdiff1d(np.arange(n), warm):
        s = sims[item, top[item]]
        w = np.exp((s - s.max()) / tau)
        mix[:, item] = 0.0
        mix[warm[top[item]], item] = w / w.sum()
    return mix


def item_similarities(train, kind: str) -> dict[str, np.ndarray]:
    """Item-item matrices from the training rows: cosine, or EASE at each ridge (rescaled)."""
    n = train.n_items
    x = sp.csr_matrix((np.ones(len(train)), (train.users, train.items)), shape=(train.n_users, n))
    x.data[:] = 1.0
    gram = (x.T @ x).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(gram)) + 1e-9
    cosine = gram / norms[:, None] / norms[None, :]
    np.fill_diagonal(cosine, 0.0)
    if kind == "cosine":
        return {"cosine": cosine.astype(np.float32)}
    warm = np.diag(gram) > 0
    out = {}
    for reg in EASE_REGS:
        p = np.linalg.inv(gram + reg * np.eye(n))
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        b *= np.abs(cosine[:, warm]).mean() / np.abs(b[:, warm]).mean()
        out[f"ease reg {reg:g}"] = b.astype(np.float32)
    return out


def figures(model, split, pool: np.ndarray, with_test: bool = True) -> dict[str, float]:
    out = {"valid": evaluate(model, split, phase="valid", ks=(10,), metrics=("recall",)).metrics["recall@10"]}
    if with_test:
        model.observe(split.valid)
        out["all"] = evaluate(model, split, ks=(10,), metrics=("recall",)).metrics["recall@10"]
        out["new"] = evaluate(model, split, ks=(10,), metrics=("recall",), item_pool=pool).metrics["recall@10"]
    return out


def probe(seed: int, kind: str, office: Path | None = None) -> dict[str, dict[str, float]]:
    data = common.load_data("office", office)
    split = lm_bench.make_split(data, "cold", seed)
    texts, _ = item_texts(data.items, data.interactions.item_map, item_fields(data.items, None))
    vectors = encode_texts(persist.build_encoder(None, None, "torch", None), texts, cache_dir=str(lm_bench.CACHE))
    train = data.with_interactions(split.train)
    counts = np.bincount(split.train.items, minlength=split.train.n_items)
    pool, warm = np.flatnonzero(counts == 0), np.flatnonzero(counts > 0)
    results = {
        "TF-IDF": figures(TfidfRecommender().fit(train), split, pool),
        "content alone": figures(FrozenContent(vectors, whiten=True).fit(train), split, pool),
    }
    content = FrozenContent(vectors, whiten=True).fit(train).x_
    best, best_valid = None, -1.0
    for name, sim in item_similarities(split.train, kind).items():
        for k, tau, lam in itertools.product(GRID["k"], GRID["tau"], GRID["lam"]):
            mix = mixing(content, warm, k, tau)
            setting = (name, k, tau, lam, mix.T @ sim @ mix)
            valid = figures(NeighbourTransfer(vectors, setting[-1], lam).fit(train), split, pool, False)["valid"]
            print(f"seed {seed} {name} k {k} tau {tau} lam {lam}: valid Recall@10 {valid:.4f}", flush=True)
            if valid > best_valid:
                best, best_valid = setting, valid
    name, k, tau, lam, sim = best
    results[f"transfer ({name}, k {k}, tau {tau}, lam {lam})"] = figures(
        NeighbourTransfer(vectors, sim, lam).fit(train), split, pool
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cf", choices=["cosine", "ease"], default="cosine")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    common.add_office_arg(parser)
    args = parser.parse_args()
    per_seed = {seed: probe(seed, args.cf, args.office) for seed in args.seeds}
    print("| seed | scorer | valid Recall@10 | Recall@10, all items | vs TF-IDF | Recall@10, new items | vs TF-IDF |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for seed, rows in per_seed.items():
        tfidf = rows["TF-IDF"]
        for name, r in rows.items():
            print(
                f"| {seed} | {name} | {r['valid']:.4f} | {r['all']:.4f} | {r['all'] / tfidf['all']:.2f}x "
                f"| {r['new']:.4f} | {r['new'] / tfidf['new']:.2f}x |"
            )
    ratios = [
        rows[next(k for k in rows if k.startswith("transfer"))]["all"] / rows["TF-IDF"]["all"]
        for rows in per_seed.values()
    ]
    print(f"transfer / TF-IDF over all items, mean of {len(ratios)} seeds: {np.mean(ratios):.2f}x")


if __name__ == "__main__":
    main()
