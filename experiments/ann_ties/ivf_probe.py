"""Probe: IVF-Flat (exact vectors in inverted lists) against HNSW on the same 1M vectors.

Reads the vectors cached by probe.py (``--data hashing``: the §17 hashing vectors; ``random``: uniform
unit vectors, generated here), trains IVF-Flat with ``--nlist`` cells (inner product), and per nprobe
reports recall@10 against exact search and search p50/p99 (1 thread), for 200 profile-like queries
(unit means of two stored rows).

    python experiments/ann_ties/ivf_probe.py --data hashing --nlist 4096
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import faiss
import numpy as np
from probe import profile_queries


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", choices=["hashing", "random"], default="hashing")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--nlist", type=int, default=4096)
    p.add_argument("--probes", default="8,16,32,64,128,256,512")
    p.add_argument("--queries", type=int, default=200)
    args = p.parse_args()
    cache = Path(f"benchmarks/out/ann_ties_{args.data}_{args.n}.npy")
    if cache.exists():
        vecs = np.load(cache)
    else:
        rng = np.random.default_rng(0)
        vecs = rng.standard_normal((args.n, 64)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        np.save(cache, vecs)
    faiss.omp_set_num_threads(2)
    t0 = time.perf_counter()
    quant = faiss.IndexFlatIP(64)
    index = faiss.IndexIVFFlat(quant, 64, args.nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(2)
    index.train(vecs[rng.choice(len(vecs), min(len(vecs), 64 * args.nlist), replace=False)])
    index.add(vecs)
    print(f"IVF-Flat nlist {args.nlist} built in {time.perf_counter() - t0:.0f} s", flush=True)
    q = profile_queries(vecs, args.queries)
    exact = []
    for s in range(0, args.queries, 16):
        sc = q[s : s + 16] @ vecs.T
        exact += [set(r.tolist()) for r in np.argpartition(-sc, 9, axis=1)[:, :10]]
    faiss.omp_set_num_threads(1)
    for nprobe in [int(x) for x in args.probes.split(",")]:
        index.nprobe = nprobe
        times, recall = [], []
        for i in range(args.queries):
            t = time.perf_counter()
            _, ids = index.search(q[i : i + 1], 10)
            times.append((time.perf_counter() - t) * 1000)
            recall.append(len(exact[i] & set(ids[0].tolist())) / 10)
        print(
            f"nprobe {nprobe:4d}: recall@10 {np.mean(recall):.3f}; "
            f"p50 {np.percentile(times, 50):.2f} ms p99 {np.percentile(times, 99):.2f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
