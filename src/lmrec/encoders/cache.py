"""An on-disk embedding cache keyed by (encoder name, kind, text), and an encoder that uses it.

The store is one SQLite file in WAL mode: ``key`` is ``sha256(name \\0 kind \\0 text)``, ``value`` the
float32 bytes of the vector. `CachedEncoder` encodes only texts it has not seen and commits after every
batch, so an interrupted run loses at most one batch and the next run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lmrec.encoders.base import TextEncoder, check_encode_args

__all__ = ["CacheStats", "CachedEncoder", "EmbeddingCache", "cache_key"]

log = logging.getLogger(__name__)

_LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...), below SQLite's parameter limit


def cache_key(encoder_name: str, text: str, kind: str = "passage") -> bytes:
    """32-byte key of one text under one encoder; the kind matters because prefixes differ."""
    return hashlib.sha256(f"{encoder_name}\0{kind}\0{text}".encode()).digest()


class EmbeddingCache:
    """A persistent key -> float32 vector store (SQLite, WAL).

    Args:
        path: a directory (the file ``embeddings.sqlite`` is made inside) or a ``.sqlite`` file.
    """

    FILENAME = "embeddings.sqlite"

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix not in (".sqlite", ".db"):
            path.mkdir(parents=True, exist_ok=True)
            path = path / self.FILENAME
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(str(path), timeout=60.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL)"
        )
        self._conn.commit()

    def get_many(self, keys: Sequence[bytes], dim: int) -> dict[bytes, np.ndarray]:
        """Vectors found for ``keys``; entries of another width are ignored (and later overwritten)."""
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = list(keys[start : start + _LOOKUP_CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT key, dim, vec FROM emb WHERE key IN ({marks})", chunk)
            for key, width, blob in rows:
                if width == dim and len(blob) == 4 * dim:
                    found[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store rows of ``vectors`` (n, dim) under ``keys`` and commit."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(keys) != len(vectors):
            raise ValueError(f"put_many got {len(keys)} keys for {len(vectors)} vectors")
        dim = vectors.shape[1] if vectors.ndim == 2 else 0
        rows = [(k, dim, v.tobytes()) for k, v in zip(keys, vectors)]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO emb (key, dim, vec) VALUES (?, ?, ?)", rows)

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class CacheStats:
    """Hits and misses of one `CachedEncoder.encode` call (texts counted once each)."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class CachedEncoder:
    """Wraps any `TextEncoder` with an `EmbeddingCache`; itself a `TextEncoder` of the same name.

    Repeated texts are encoded once; texts already in the cache are not encoded at all. Misses are
    sorted by length, encoded one batch at a time and committed after each batch.

    Args:
        encoder: the encoder to wrap.
        cache: an `EmbeddingCache` or a directory for one.

    Attributes:
        last_stats: `CacheStats` of the latest ``encode`` call.
    """

    def __init__(self, encoder: TextEncoder, cache: EmbeddingCache | str | Path) -> None:
        self.encoder = encoder
        self.cache = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
        self.last_stats = CacheStats()

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def tokenizer(self) -> Any:
        return getattr(self.encoder, "tokenizer", None)

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, kind: str = "passage", show_progress: bool = False
    ) -> np.ndarray:
        """Encode texts through the cache; see `lmrec.encoders.TextEncoder.encode`."""
        check_encode_args(texts, batch_size)
        name, dim = self.encoder.name, self.encoder.dim
        unique = list(dict.fromkeys(t or "" for t in texts))
        keys = [cache_key(name, t, kind) for t in unique]
        found = self.cache.get_many(keys, dim)
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.last_stats = CacheStats(hits=len(unique) - len(missing), misses=len(missing))
        if missing:
            log.info("%s: %d cached, %d to encode", name, self.last_stats.hits, len(missing))
            missing.sort(key=lambda i: -len(unique[i]))  # similar lengths share a batch: little padding
            for idx in _batches(missing, batch_size, show_progress, desc=f"encode {name}"):
                vecs = self.encoder.encode([unique[i] for i in idx], batch_size=batch_size, kind=kind)
                batch_keys = [keys[i] for i in idx]
                self.cache.put_many(batch_keys, vecs)
                found.update(zip(batch_keys, np.asarray(vecs, dtype=np.float32)))
        position = {t: found[k] for t, k in zip(unique, keys)}
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        return np.stack([position[t or ""] for t in texts]).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"CachedEncoder({self.encoder!r}, cache={str(self.cache.path)!r})"


def _batches(items: list[int], size: int, show_progress: bool, desc: str) -> Iterable[list[int]]:
    starts: Iterable[int] = range(0, len(items), size)
    if show_progress:
        starts = tqdm(starts, desc=desc, unit="batch", total=(len(items) + size - 1) // size)
    for start in starts:
        yield items[start : start + size]
