"""Item vectors with an inner-product search structure that grows while serving.

`VectorIndex` keeps the (n, d) item vectors itself (profiles, diversity and explanations read them) and
a FAISS index over them: exact ``IndexFlatIP`` for small catalogues, HNSW or IVF beyond, or none at all
(``kind="numpy"``: exact numpy scoring over every item, the naive baseline). Rows are numbered in the
order they were added and never renumbered; removal is a tombstone, applied at search time through an
allowed-rows mask (a FAISS ``IDSelectorBitmap``), so HNSW, which cannot delete, works the same way.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

__all__ = ["IndexKind", "RWLock", "VectorIndex", "resolve_kind"]

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw", "ivf", "numpy"]


def resolve_kind(
    kind: Literal["auto", "flat", "hnsw", "ivf", "numpy"], n_items: int, exact_max_items: int
) -> IndexKind:
    """``"auto"`` is exact (``"flat"``) up to ``exact_max_items`` items and ``"hnsw"`` beyond."""
    if kind == "auto":
        return "flat" if n_items <= exact_max_items else "hnsw"
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
        kind: ``"flat"``, ``"hnsw"``, ``"ivf"`` or ``"numpy"``.
        hnsw_m: HNSW graph degree.
        ef_construction: HNSW build beam width.
        ef_search: HNSW search beam width (raised to ``2 * k`` for large ``k``).
        nlist: IVF cells (default ``4 * sqrt(n)`` at the first ``add``, at most ``n / 39``).
        nprobe: IVF cells visited per query.
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
    ) -> None:
        if kind not in ("flat", "hnsw", "ivf", "numpy"):
            raise ValueError(f"index kind {kind!r} is not one of 'flat', 'hnsw', 'ivf', 'numpy'")
        self.dim = int(dim)
        self.kind: IndexKind = kind
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self.nlist, self.nprobe = nlist, nprobe
        self.exact_fraction = exact_fraction
        self._vecs = np.zeros((0, self.dim), dtype=np.float32)
        self._n = 0
        self._faiss: faiss.Index | None = None
        self._finite_upto = 0  # rows below it were checked finite (rows never change once added)
        self.lock = RWLock()

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return self._n

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
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(first)
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
            if self._faiss is None and self.kind != "numpy":
                self._faiss = self._new_faiss(vectors)
            if self._faiss is not None and m:
                self._faiss.add(vectors)
            self._n = start + m
        return np.arange(start, start + m, dtype=np.int64)

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
            n_allowed = n if allowed is None else int(allowed.sum())
            k = min(int(k), n_allowed)
            if k <= 0:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            if self._faiss is None:
                return self._exact(query[0], k, allowed)
            approx = self.kind in ("hnsw", "ivf")
            if approx and allowed is not None and n_allowed <= self.exact_fraction * n:
                return self._exact_subset(query[0], k, np.flatnonzero(allowed))
            rows, scores = self._faiss_search(query, k, allowed)
            if approx and len(rows) < k and allowed is not None:
                return self._exact_subset(query[0], k, np.flatnonzero(allowed))
            return rows, scores

    def _faiss_search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        bitmap = None
        selector = None
        if allowed is not None:
            bitmap = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
        # faiss's bundled stubs lack the search-parameter classes and their keyword arguments
        fa: Any = faiss
        if self.kind == "hnsw":
            params = fa.SearchParametersHNSW(sel=selector, efSearch=max(self.ef_search, 2 * k))
        elif self.kind == "ivf":
            params = fa.SearchParametersIVF(sel=selector, nprobe=self.nprobe)
        else:
            params = fa.SearchParameters(sel=selector) if selector is not None else None
        assert self._faiss is not None  # kind "numpy" never reaches a faiss search
        scores, rows = self._faiss.search(query, k, params=params)
        del bitmap  # the selector points into it; it must outlive the search
        keep = rows[0] >= 0
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
        return index


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
