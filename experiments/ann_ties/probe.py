"""Probe: is HNSW's low recall on the §17 hashing vectors a tie/near-tie artefact or real misses?

Builds the 1M-item synthetic catalogue of benchmarks/serve_load.py, encodes it with the hashing
encoder (64-d), builds HNSW (M=32, efConstruction 80, 2 threads), and for 200 profile-like queries
(unit means of two stored rows, as VectorIndex.tune_search draws them) reports, per ef_search:
id recall@10, score recall@10 (a found row counts when its exact score is >= the 10th exact score
minus a tolerance), and search p50/p99 in ms (1 thread).

    python experiments/ann_ties/probe.py --n 1000000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from serve_load import synthetic_catalog  # noqa: E402

from lmrec.encoders.fake import HashingEncoder  # noqa: E402


def profile_queries(vecs: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """(n, d) unit means of two random stored rows (as `VectorIndex.tune_search` draws them)."""
    pairs = np.random.default_rng(seed).integers(len(vecs), size=(2, n))
    q = vecs[pairs[0]] + vecs[pairs[1]]
    return np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float32)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--data", choices=["hashing", "random"], default="hashing")
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--efc", type=int, default=80)
    p.add_argument("--queries", type=int, default=200)
    args = p.parse_args()
    cache = Path(f"benchmarks/out/ann_ties_{args.data}_{args.n}.npy")
    t0 = time.perf_counter()
    if cache.exists():
        vecs = np.load(cache)
    elif args.data == "hashing":
        cat = synthetic_catalog(args.n, 0)
        texts = (cat["title"] + ". " + cat["description"]).tolist()
        vecs = HashingEncoder(64).encode(texts)
        np.save(cache, vecs)
    else:
        rng = np.random.default_rng(0)
        vecs = rng.standard_normal((args.n, 64)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    print(f"vectors {vecs.shape} in {time.perf_counter() - t0:.0f} s", flush=True)
    faiss.omp_set_num_threads(2)
    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(64, args.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = args.efc
    index.add(vecs)
    print(f"HNSW M={args.m} efC={args.efc} built in {time.perf_counter() - t0:.0f} s", flush=True)
    q = profile_queries(vecs, args.queries)
    exact_ids, exact_scores = [], []
    for s in range(0, args.queries, 16):
        sc = q[s : s + 16] @ vecs.T
        top = np.argpartition(-sc, 9, axis=1)[:, :10]
        exact_ids += [set(r.tolist()) for r in top]
        exact_scores += [np.sort(np.take_along_axis(sc, top, 1), axis=1)[:, ::-1]]
    exact_scores = np.concatenate(exact_scores)
    kth = exact_scores[:, 9]
    gap = exact_scores[:, 0] - kth
    print(f"exact: top1-top10 score gap median {np.median(gap):.4f}; 10th-11th gap computed below", flush=True)
    faiss.omp_set_num_threads(1)
    for ef in [64, 128, 256, 512, 1024, 2048, 4096]:
        index.hnsw.efSearch = ef
        times = []
        found_ids, found_sc = [], []
        for i in range(args.queries):
            t = time.perf_counter()
            d, ids = index.search(q[i : i + 1], 10)
            times.append((time.perf_counter() - t) * 1000)
            found_ids.append(ids[0])
            found_sc.append(vecs[ids[0]] @ q[i])
        id_recall = np.mean([len(exact_ids[i] & set(found_ids[i].tolist())) / 10 for i in range(args.queries)])
        out = [f"ef {ef:5d}: id recall {id_recall:.3f}"]
        for tol in (1e-6, 1e-4, 1e-3):
            r = np.mean([(found_sc[i] >= kth[i] - tol).sum() / 10 for i in range(args.queries)])
            out.append(f"score recall (tol {tol:g}) {r:.3f}")
        out.append(f"p50 {np.percentile(times, 50):.2f} ms p99 {np.percentile(times, 99):.2f} ms")
        print("; ".join(out), flush=True)


if __name__ == "__main__":
    main()
