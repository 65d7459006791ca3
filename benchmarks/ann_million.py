"""A million items in `lmrec.serve.index.VectorIndex` (issue 21): build time, memory, recall@10 against
exact search, search latency as the service calls it, upserts without a rebuild, a background rebuild.

Vectors are synthetic (no text is encoded): ``--data random`` draws unit vectors uniformly on the sphere
(the hardest case for an ANN index: no structure), ``--data clustered`` draws unit vectors around
``--clusters`` random centres (closer to real embeddings). Queries are drawn the same way.

Per index kind (``--kinds``, default ``hnsw,ivfpq``):

- build: seconds to add every vector (training included), and the resident memory it added (RSS);
  `index_bytes`' estimate beside it;
- recall@10 of the top 10 against exact inner-product search (FAISS ``IndexFlatIP``), over ``--queries``,
  and the latency of one search with an allowed-rows mask over every row (what ``/recommend`` does:
  live items), p50/p99 over the queries, one thread; both for each search-time setting in ``--sweep``
  (HNSW ``ef_search``, IVF ``nprobe``) on the same build;
- upserts: ``--upserts`` new vectors added one by one while serving; each must be its own top-1 (no
  rebuild), and the seconds per add;
- background rebuild (``--rebuild``): the structure rebuilt in a thread while the main thread keeps
  searching; searches served during the build and their p99.

Example (the box was shared with other jobs; say so with the figures)::

    python benchmarks/ann_million.py --n 1000000 --dim 64 --data clustered --out benchmarks/out/ann_million
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import common
import faiss
import numpy as np

from lmrec.serve.index import VectorIndex, index_bytes

log = logging.getLogger("ann_million")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_vectors(
    n: int, dim: int, data: str, clusters: int, rng: np.random.Generator, noise: float = 0.05
) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    centres = unit(rng.standard_normal((clusters, dim)).astype(np.float32))
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = rng.standard_normal((m, dim)).astype(np.float32)
        if data == "clustered":
            block = centres[rng.integers(clusters, size=m)] + noise * block
        out[start : start + m] = unit(block)
    return out


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    _, rows = flat.search(queries, k)
    return rows


def run_kind(
    kind: str, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    n, dim = vectors.shape
    before = rss_mb()
    index = VectorIndex(
        dim,
        kind,
        hnsw_m=args.hnsw_m,
        ef_construction=args.ef_construction,
        ef_search=args.ef_search,
        nlist=args.nlist,
        nprobe=args.nprobe,
        rerank=args.rerank,
    )  # type: ignore[arg-type]
    with common.Timer() as build:
        index.add(vectors)
    added_mb = rss_mb() - before
    allowed = np.ones(n, dtype=bool)
    # search-time settings swept on the same build: HNSW's beam width, IVF's cells visited
    sweep = []
    for value in args.sweep:
        if kind == "hnsw":
            index.ef_search = value
        else:
            index.nprobe = value
        lat, hits = [], 0
        for q, want in zip(queries, truth):
            t0 = time.perf_counter()
            rows, _ = index.search(q, 10, allowed)
            lat.append(time.perf_counter() - t0)
            hits += len(set(rows.tolist()) & set(want.tolist()))
        lat_ms = np.asarray(lat) * 1e3
        sweep.append(
            {
                "ef_search" if kind == "hnsw" else "nprobe": value,
                "recall_at_10": hits / (10 * len(queries)),
                "search_p50_ms": float(np.percentile(lat_ms, 50)),
                "search_p99_ms": float(np.percentile(lat_ms, 99)),
            }
        )
        log.info("%s %s", kind, sweep[-1])
    # upserts while serving: each new vector must come back as its own nearest neighbour
    rng = np.random.default_rng(args.seed + 1)
    new = make_vectors(args.upserts, dim, args.data, args.clusters, rng, args.noise)
    found, add_s = 0, []
    for v in new:
        t0 = time.perf_counter()
        (row,) = index.add(v[None, :])
        add_s.append(time.perf_counter() - t0)
        found += int(index.search(v, 1, np.ones(len(index), dtype=bool))[0][0] == row)
    out: dict[str, Any] = {
        "kind": kind,
        "n": n,
        "build_s": build.seconds,
        "rss_added_mb": added_mb,
        "estimated_structure_mb": index_bytes(kind, n, dim, hnsw_m=args.hnsw_m) / 2**20,  # type: ignore[arg-type]
        "kept_vectors_mb": n * dim * 4 / 2**20,
        "sweep": sweep,
        "upserts": args.upserts,
        "upserts_found_top1": found,
        "upsert_add_ms_p50": float(np.percentile(np.asarray(add_s) * 1e3, 50)),
    }
    if args.rebuild:
        served = []
        thread = index.rebuild_in_background(kind)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        i = 0
        while thread.is_alive():
            q = queries[i % len(queries)]
            s0 = time.perf_counter()
            index.search(q, 10, np.ones(len(index), dtype=bool))
            served.append(time.perf_counter() - s0)
            i += 1
        out["rebuild_s"] = time.perf_counter() - t0
        out["searches_during_rebuild"] = len(served)
        out["search_p99_ms_during_rebuild"] = float(np.percentile(np.asarray(served) * 1e3, 99)) if served else None
        out["rows_after_rebuild"] = index.structure[1]
    log.info("%s", json.dumps(out))
    del index
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--data", choices=["random", "clustered"], default="clustered")
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=0.05, help="per-dimension noise around a centre (clustered)")
    parser.add_argument("--nlist", type=int, default=None, help="IVF cells (default 4 * sqrt(n))")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", default="ivfpq,hnsw")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument(
        "--sweep", default="", help="comma-separated ef_search (hnsw) or nprobe (ivf, ivfpq) values to measure"
    )
    parser.add_argument("--rerank", type=int, default=8)
    parser.add_argument("--upserts", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true", help="also time a background rebuild under search load")
    parser.add_argument("--threads", type=int, default=2, help="FAISS build threads (search runs one query at a time)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/out/ann_million")
    args = parser.parse_args()
    default = args.ef_search if args.kinds == "hnsw" else args.nprobe
    args.sweep = [int(v) for v in args.sweep.split(",") if v] or [default]
    common.setup_logging()
    faiss.omp_set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    with common.Timer() as gen:
        vectors = make_vectors(args.n, args.dim, args.data, args.clusters, rng, args.noise)
        queries = make_vectors(
            args.queries, args.dim, args.data, args.clusters, np.random.default_rng(args.seed + 7), args.noise
        )
    with common.Timer() as exact:
        truth = exact_top(vectors, queries, 10)
    results: dict[str, Any] = {
        "config": vars(args),
        "generate_s": gen.seconds,
        "exact_search_s_per_query": exact.seconds / args.queries,
        "load_avg_at_start": os.getloadavg(),
        "runs": [],
    }
    for kind in args.kinds.split(","):
        results["runs"].append(run_kind(kind, vectors, queries, truth, args))
        (out / f"results-{args.data}.json").write_text(json.dumps(results, indent=2))
    results["load_avg_at_end"] = os.getloadavg()
    (out / f"results-{args.data}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
