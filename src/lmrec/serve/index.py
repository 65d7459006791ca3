"""Item vectors with an inner-product search structure that grows while serving.

`VectorIndex` keeps the (n, d) item vectors itself (profiles, diversity and explanations read them) and
a FAISS index over them: exact ``IndexFlatIP`` for small catalogues, HNSW, IVF or IVF-PQ beyond, or none
at all (``kind="numpy"``: exact numpy scoring over every item, the naive baseline). Rows are numbered in
the order they were added and never renumbered; removal is a tombstone, applied at search time through
an allowed-rows mask (a FAISS ``IDSelectorBitmap``), so HNSW, which cannot delete, works the same way.
An item upsert is a new row added to the live structure (HNSW links it in, IVF files it under its
nearest centroid): no rebuild.

Choosing by size and memory (`choose_kind`, ``index="auto"``): exact up to ``exact_max_items``; beyond,
IVF with the exact vectors in its lists while its estimated memory (`index_bytes`: a copy of the vectors
plus an 8-byte id per row) fits ``max_index_mb``, else IVF-PQ (``pq_bytes`` code bytes per row plus an
8-byte id; its candidates are re-scored exactly against the kept vectors, ``rerank`` times ``k`` of
them). IVF rather than HNSW by default: on clustered item vectors (many items sharing most of their
text) HNSW needs a very wide beam to find the exact top 10, while IVF's cells follow the clusters; it
also builds faster and stores no graph. HNSW stays a choice (``kind="hnsw"``). After every build or
load, `VectorIndex.tune_search` widens the search (``ef_search`` or ``nprobe``) until recall@10 against
exact search reaches ``target_recall``.

`VectorIndex.rebuild_in_background` builds a new structure (another kind, or retrained IVF centroids)
from a snapshot of the vectors in a thread while the old one keeps serving, then adds the rows that
arrived meanwhile and swaps it in under the write lock; an exact index that outgrows
``auto_upgrade_at`` rows starts one into IVF by itself.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

__all__ = ["IndexKind", "RWLock", "VectorIndex", "choose_kind", "index_bytes", "resolve_kind"]

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw", "ivf", "ivfpq", "numpy"]
_KINDS = ("flat", "hnsw", "ivf", "ivfpq", "numpy")


def index_bytes(kind: IndexKind, n: int, dim: int, *, hnsw_m: int = 32, pq_bytes: int | None = None) -> int:
    """Estimated bytes of the FAISS structure of ``n`` rows (the kept (n, d) float32 vectors not included).

    flat and ivf store the vectors again (``4 d`` per row, ivf also an 8-byte id); hnsw adds ``2 M``
    level-0 links of 4 bytes (upper levels add about ``1 / M`` of that); ivfpq stores ``pq_bytes``
    (default ``d / 8``) code bytes and an 8-byte id per row; numpy nothing.
    """
    per_row = {
        "flat": 4 * dim,
        "ivf": 4 * dim + 8,
        "hnsw": 4 * dim + 8 * hnsw_m * (1 + 1 / hnsw_m),
        "ivfpq": (pq_bytes or _default_pq_bytes(dim)) + 8,
        "numpy": 0,
    }[kind]
    return int(n * per_row)


def choose_kind(n_items: int, dim: int, exact_max_items: int, max_index_mb: float | None = None) -> IndexKind:
    """Exact (``"flat"``) up to ``exact_max_items``; beyond, ``"ivf"`` unless its estimated memory
    exceeds ``max_index_mb`` (None: no limit), then ``"ivfpq"``."""
    if n_items <= exact_max_items:
        return "flat"
    if max_index_mb is not None and index_bytes("ivf", n_items, dim) > max_index_mb * 2**20:
        return "ivfpq"
    return "ivf"


def resolve_kind(
    kind: Literal["auto", "flat", "hnsw", "ivf", "ivfpq", "numpy"],
    n_items: int,
    exact_max_items: int,
    *,
    dim: int = 0,
    max_index_mb: float | None = None,
) -> IndexKind:
    """``"auto"``: `choose_kind`; any other kind as given."""
    if kind == "auto":
        return choose_kind(n_items, dim, exact_max_items, max_index_mb)
    return kind


class RWLock:
    """Many readers or one writer; a waiting writer holds back new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class VectorIndex:
    """Growable item vectors plus an inner-product index.

    Args:
        dim: vector width.
        kind: ``"flat"``, ``"hnsw"``, ``"ivf"``, ``"ivfpq"`` or ``"numpy"``.
        hnsw_m: HNSW graph degree.
        ef_construction: HNSW build beam width.
        ef_search: HNSW search beam width (raised to ``2 * k`` for large ``k``).
        nlist: IVF cells (default ``4 * sqrt(n)`` at the first ``add``, at most ``n / 39``).
        nprobe: IVF cells visited per query (raised by `tune_search` with ``target_recall``).
        pq_bytes: IVF-PQ code bytes per row (a divisor of ``dim``; default about ``dim / 8``: sub-vectors
            of 8 dimensions, which FAISS trains far faster than narrower ones; the exact re-scoring
            recovers the precision the short codes lose).
        rerank: IVF-PQ re-scores ``rerank * k`` candidates exactly.
        auto_upgrade_at: an exact (``"flat"``) index that grows past this many rows rebuilds itself
            into IVF in the background (None: never).
        target_recall: after every approximate build or load, widen the search (``ef_search`` or
            ``nprobe``, doubling it) until recall@10 against exact search reaches this on sampled
            queries (`tune_search`); None: keep them as set.
        exact_fraction: when at most this fraction of rows is allowed, approximate indexes score
            the allowed rows exactly instead (filters that keep few items would starve HNSW/IVF).
    """

    def __init__(
        self,
        dim: int,
        kind: IndexKind = "flat",
        *,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 16,
        exact_fraction: float = 0.05,
        pq_bytes: int | None = None,
        rerank: int = 16,
        auto_upgrade_at: int | None = None,
        target_recall: float | None = None,
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"index kind {kind!r} is not one of {', '.join(repr(k) for k in _KINDS)}")
        if pq_bytes is not None and (pq_bytes < 1 or dim % pq_bytes):
            raise ValueError(f"pq_bytes={pq_bytes} must be a positive divisor of dim={dim}")
        self.dim = int(dim)
        self.kind: IndexKind = kind
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self.nlist, self.nprobe = nlist, nprobe
        self.exact_fraction = exact_fraction
        self.pq_bytes, self.rerank, self.auto_upgrade_at = pq_bytes, rerank, auto_upgrade_at
        self.target_recall = target_recall
        #: what the last `tune_search` measured (``ef_search`` or ``nprobe``, ``recall_at_10``, ``queries``)
        self.tuned: dict[str, float] | None = None
        self.rebuilding: threading.Thread | None = None
        self.last_build_s: float | None = None
        self._vecs = np.zeros((0, self.dim), dtype=np.float32)
        self._n = 0
        self._faiss: faiss.Index | None = None
        self._finite_upto = 0  # rows below it were checked finite (rows never change once added)
        self.lock = RWLock()

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return self._n

    @property
    def structure(self) -> tuple[str, int]:
        """The FAISS structure's class name and row count (``("none", 0)`` for kind ``"numpy"``)."""
        index = self._faiss
        return ("none", 0) if index is None else (type(index).__name__, int(index.ntotal))

    @property
    def vectors(self) -> np.ndarray:
        """(n, d) float32 view of every row added so far (tombstoned ones included)."""
        return self._vecs[: self._n]

    def _new_faiss(self, first: np.ndarray) -> faiss.Index | None:
        if self.kind == "numpy":
            return None
        if self.kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        if self.kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = self.ef_construction
            return hnsw
        n = len(first)
        nlist = self.nlist or max(1, int(4 * math.sqrt(max(n, 1))))
        nlist = max(1, min(nlist, n // 39 if n >= 39 else 1))
        quantizer = faiss.IndexFlatIP(self.dim)
        if self.kind == "ivfpq" and n >= 256 * 39:  # PQ needs 256 codes' worth of training rows
            m = self.pq_bytes or _default_pq_bytes(self.dim)
            index: faiss.Index = faiss.IndexIVFPQ(quantizer, self.dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        else:  # too few rows for PQ: plain IVF (re-scoring stays exact either way)
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        size = max(100_000, 39 * nlist)  # FAISS's k-means wants at least 39 training rows per cell
        sample = first if n <= size else first[np.random.default_rng(0).choice(n, size, replace=False)]
        index.train(sample)
        return index

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append rows; returns their row numbers, shape (m,).

        Args:
            vectors: (m, d) float vectors.
        """
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have width {vectors.shape[1]}, the index has {self.dim}")
        with self.lock.write():
            start, m = self._n, len(vectors)
            if start + m > len(self._vecs):
                grown = np.zeros((max(start + m, 2 * len(self._vecs), 64), self.dim), dtype=np.float32)
                grown[:start] = self._vecs[:start]
                self._vecs = grown
            self._vecs[start : start + m] = vectors
            fresh = self._faiss is None and self.kind != "numpy"
            if fresh:
                self._faiss = self._new_faiss(vectors)
            if self._faiss is not None and m:
                self._faiss.add(vectors)
            self._n = start + m
        if fresh and self.target_recall is not None:
            self.tune_search(self.target_recall)
        upgrade = self.auto_upgrade_at
        if upgrade is not None and self.kind == "flat" and self._n > upgrade and self.rebuilding is None:
            log.info("the exact index outgrew %d rows: building IVF in the background", upgrade)
            self.rebuild_in_background("ivf")
        return np.arange(start, start + m, dtype=np.int64)

    def rebuild_in_background(self, kind: IndexKind | None = None) -> threading.Thread:
        """Build a new FAISS structure (``kind``, default the current one: e.g. IVF centroids retrained
        on today's vectors) in a thread, while searches and adds keep using the old one; then, under
        the write lock, add the rows that arrived during the build and swap it in.

        Returns:
            The build thread (``join`` it to wait); `rebuilding` holds it until the swap.
        """
        kind = kind or self.kind
        if kind not in _KINDS:
            raise ValueError(f"index kind {kind!r} is not one of {', '.join(repr(k) for k in _KINDS)}")

        def build() -> None:
            start = time.perf_counter()
            try:
                with self.lock.read():
                    n0 = self._n
                    snapshot = self._vecs[:n0].copy()
                # a stand-in carries the kind and parameters; nothing of this index changes yet
                fresh = VectorIndex(
                    self.dim,
                    kind,
                    hnsw_m=self.hnsw_m,
                    ef_construction=self.ef_construction,
                    nlist=self.nlist,
                    pq_bytes=self.pq_bytes,
                )
                structure = fresh._new_faiss(snapshot)
                if structure is not None and n0:
                    structure.add(snapshot)
                with self.lock.write():
                    if structure is not None and self._n > n0:
                        structure.add(np.ascontiguousarray(self._vecs[n0 : self._n]))
                    self._faiss, self.kind = structure, kind
                if self.target_recall is not None:
                    self.tune_search(self.target_recall)
                self.last_build_s = time.perf_counter() - start
                log.info("rebuilt the index as %s over %d rows in %.1fs", kind, n0, self.last_build_s)
            finally:
                self.rebuilding = None

        thread = threading.Thread(target=build, name="lmrec-index-build", daemon=True)
        self.rebuilding = thread
        thread.start()
        return thread

    def check(self) -> list[str]:
        """Disagreements inside the index: the FAISS row count against the vectors', and rows with a
        non-finite value (each row is checked once: rows never change); [] when none."""
        problems = []
        with self.lock.read():
            n = self._n
            if self._faiss is not None and self._faiss.ntotal != n:
                problems.append(f"the FAISS index holds {self._faiss.ntotal} rows, the vectors {n}")
            bad = np.flatnonzero(~np.isfinite(self._vecs[self._finite_upto : n]).all(axis=1)) + self._finite_upto
        if len(bad):
            problems.append(f"{len(bad)} index rows have non-finite values (first: row {int(bad[0])})")
        else:
            self._finite_upto = max(self._finite_upto, n)
        return problems

    def tune_search(
        self, target: float, *, k: int = 10, n_queries: int = 100, max_width: int = 4096, seed: int = 0
    ) -> dict[str, float] | None:
        """Widen the approximate search until its recall@``k`` against exact search reaches ``target``.

        The width is HNSW's ``ef_search`` or IVF's ``nprobe`` (cells visited, at most ``nlist``); it
        doubles from its current value (it never goes down) until the recall reaches ``target`` or
        ``max_width``. Queries are the unit means of two random stored rows (in the items' distribution,
        but not items themselves, whose nearest neighbour would be trivially found); each goes through
        the search path requests take (IVF-PQ's exact re-scoring included). The search cost grows
        about linearly with the width.

        Returns:
            ``{<"ef_search" or "nprobe">, "recall_at_10", "queries"}`` (also kept in `tuned`); None when
            the structure is exact or holds fewer than ``k`` rows.
        """
        with self.lock.read():
            n = self._n
            if self.kind not in ("hnsw", "ivf", "ivfpq") or self._faiss is None or n < k:
                return None
            knob = "ef_search" if self.kind == "hnsw" else "nprobe"
            ceiling = max_width if self.kind == "hnsw" else min(max_width, int(getattr(self._faiss, "nlist", 1)))
            vecs = self._vecs[:n]
            rng = np.random.default_rng(seed)
            pairs = rng.integers(n, size=(2, n_queries))
            q = vecs[pairs[0]] + vecs[pairs[1]]
            q = np.ascontiguousarray(q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12), dtype=np.float32)
            exact: list[set[int]] = []  # each query's exact top-k, 16 queries' scores at a time
            for start in range(0, n_queries, 16):
                scores = q[start : start + 16] @ vecs.T  # (<=16, n)
                exact += [set(r.tolist()) for r in np.argpartition(-scores, k - 1, axis=1)[:, :k]]
            width = min(max(int(self.ef_search if knob == "ef_search" else self.nprobe), 1), ceiling)
            while True:
                found = [self._faiss_search(q[i : i + 1], k, None, width=width)[0] for i in range(n_queries)]
                recall = float(np.mean([len(exact[i] & set(found[i].tolist())) / k for i in range(n_queries)]))
                if recall >= target or width >= ceiling:
                    break
                width = min(2 * width, ceiling)
        if knob == "ef_search":
            self.ef_search = width
        else:
            self.nprobe = width
        self.tuned = {knob: float(width), "recall_at_10": recall, "queries": float(n_queries)}
        level = log.info if recall >= target else log.warning
        level("%s over %d rows: %s %d gives recall@%d %.3f (target %.2f)", self.kind, n, knob, width, k, recall, target)
        return self.tuned

    # ------------------------------------------------------------------ search
    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` allowed rows with the largest inner product with ``query``, best first.

        Args:
            query: (d,) vector.
            k: how many.
            allowed: optional (n,) bool mask over rows; False rows are never returned.

        Returns:
            ``(rows, scores)``: (m,) int64 and (m,) float32 with ``m <= k`` (fewer when fewer rows are allowed).
        """
        query = np.ascontiguousarray(np.asarray(query, dtype=np.float32).reshape(1, -1))
        with self.lock.read():
            n = self._n
            if allowed is not None:
                allowed = np.asarray(allowed, dtype=bool)[:n]
                if len(allowed) < n:  # rows added after the mask was built are not searched
                    allowed = np.concatenate([allowed, np.zeros(n - len(allowed), dtype=bool)])
            n_allowed = n if allowed is None else int(np.count_nonzero(allowed))  # 10x faster than sum on bools
            k = min(int(k), n_allowed)
            if k <= 0:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            if self._faiss is None:
                return self._exact(query[0], k, allowed)
            approx = self.kind in ("hnsw", "ivf", "ivfpq")
            if approx and allowed is not None and n_allowed <= self.exact_fraction * n:
                return self._exact_subset(query[0], k, np.flatnonzero(allowed))
            rows, scores = self._faiss_search(query, k, allowed)
            if approx and len(rows) < k and allowed is not None:
                return self._exact_subset(query[0], k, np.flatnonzero(allowed))
            return rows, scores

    def _faiss_search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, *, width: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's top ``k`` (IVF-PQ: re-scored exactly); ``width`` overrides ``ef_search`` / ``nprobe``."""
        bitmap = None
        selector = None
        if allowed is not None:
            bitmap = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        # faiss's bundled stubs lack the search-parameter classes and their keyword arguments
        fa: Any = faiss
        if self.kind == "hnsw":
            params = fa.SearchParametersHNSW(sel=selector, efSearch=max(width or self.ef_search, 2 * k))
        elif self.kind in ("ivf", "ivfpq"):
            params = fa.SearchParametersIVF(sel=selector, nprobe=width or self.nprobe)
        else:
            params = fa.SearchParameters(sel=selector) if selector is not None else None
        assert self._faiss is not None  # kind "numpy" never reaches a faiss search
        fetch = k * self.rerank if self.kind == "ivfpq" else k
        scores, rows = self._faiss.search(query, fetch, params=params)
        del bitmap  # the selector points into it; it must outlive the search
        keep = rows[0] >= 0
        if self.kind == "ivfpq":  # PQ scores are approximate: re-score the candidates exactly
            return self._exact_subset(query[0], k, rows[0][keep].astype(np.int64))
        return rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float32)

    def _exact(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        scores = self.vectors @ query  # (n,)
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        return top_rows(scores, np.arange(len(scores)), k)

    def _exact_subset(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return top_rows(self._vecs[rows] @ query, rows, k)

    def exact_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Inner products of ``query`` (d,) with the given rows, shape (m,)."""
        return self._vecs[np.asarray(rows, dtype=np.int64)] @ np.asarray(query, dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the FAISS structure (``kind != "numpy"``) and the vectors next to it (``.npy``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock.read():
            np.save(path.with_suffix(".npy"), self.vectors)
            if self._faiss is not None:
                faiss.write_index(self._faiss, str(path))

    @classmethod
    def load(cls, path: str | Path, kind: IndexKind, **kwargs: object) -> VectorIndex:
        """Read what `save` wrote."""
        path = Path(path)
        vectors = np.load(path.with_suffix(".npy"))
        index = cls(vectors.shape[1], kind, **kwargs)  # type: ignore[arg-type]
        index._vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        index._n = len(vectors)
        if kind != "numpy":
            index._faiss = faiss.read_index(str(path))
            if index._faiss.ntotal != index._n:
                raise ValueError(f"{path}: FAISS index holds {index._faiss.ntotal} rows, vectors {index._n}")
            if index.target_recall is not None:
                index.tune_search(index.target_recall)  # the search width is not part of the saved structure
        return index


def _default_pq_bytes(dim: int) -> int:
    """The largest divisor of ``dim`` up to ``dim / 8`` (at least 1)."""
    at_most = max(1, dim // 8)
    return max(d for d in range(1, at_most + 1) if dim % d == 0)


def top_rows(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` of ``scores`` (ties towards the lower row), dropping ``-inf``."""
    k = min(k, len(scores))
    if k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    if k < len(scores):
        part = np.argpartition(-scores, k - 1)[:k]
        # argpartition picks an arbitrary subset of the entries tied at the k-th score: take the lowest rows
        kth = scores[part].min()
        above = part[scores[part] > kth]
        ties = np.flatnonzero(scores == kth)
        part = np.concatenate([above, ties[np.argsort(rows[ties], kind="stable")][: k - len(above)]])
    else:
        part = np.arange(len(scores))
    order = np.lexsort((rows[part], -scores[part]))
    best = part[order]
    keep = np.isfinite(scores[best])
    return rows[best][keep].astype(np.int64), scores[best][keep].astype(np.float32)
