"""A deterministic encoder for tests: no model, no network, stable across runs and machines."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["HashingEncoder"]

_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashingEncoder:
    """Bag-of-words hashing encoder: texts sharing words get similar vectors.

    Each lowercased token maps to a fixed pseudo-random unit vector (seeded by its hash); a text is the
    normalised sum of its tokens' vectors. Chinese characters count as single tokens. Good enough to test
    that semantics flow through a pipeline, and exactly reproducible.
    """

    def __init__(self, dim: int = 32, seed: int = 0) -> None:
        self.dim = dim
        self.seed = seed
        self.name = f"hashing-{dim}-{seed}"

    def _token_vector(self, token: str) -> np.ndarray:
        digest = hashlib.blake2b(f"{self.seed}:{token}".encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        return rng.standard_normal(self.dim).astype(np.float32)

    def _tokens(self, text: str) -> list[str]:
        out: list[str] = []
        for tok in _TOKEN.findall(text.lower()):
            if any("\u4e00" <= ch <= "\u9fff" for ch in tok):
                out.extend(tok)
            else:
                out.append(tok)
        return out

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, kind: str = "passage", show_progress: bool = False
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in self._tokens(text or ""):
                out[i] += self._token_vector(tok)
            if not out[i].any():
                out[i] = self._token_vector("<empty>")
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out
