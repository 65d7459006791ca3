"""Dense integer indices for external ids.

Raw ids (user ids, item ids) are strings at the edges of lmrec; models only ever see the dense
indices an `IdMap` hands out. A map grows with `fit_partial`, so new users and items can be added
without renumbering the existing ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["IdMap"]


class IdMap:
    """Bidirectional map between external string ids and dense indices ``0..n-1``.

    Args:
        ids: initial ids, in index order; duplicates are kept once (first occurrence wins).
    """

    def __init__(self, ids: Iterable[object] = ()) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self.fit_partial(ids)

    def fit_partial(self, ids: Iterable[object]) -> IdMap:
        """Add ids not seen before, at the end; existing indices never change."""
        for raw in ids:
            key = str(raw)
            if key not in self._index:
                self._index[key] = len(self._ids)
                self._ids.append(key)
        return self

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: object) -> bool:
        return str(raw) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)})"

    def get(self, raw: object, default: int = -1) -> int:
        """Index of one id, or ``default`` when it is unknown."""
        return self._index.get(str(raw), default)

    def index(self, raw: object) -> int:
        """Index of one id; raises ``KeyError`` naming the id when it is unknown."""
        try:
            return self._index[str(raw)]
        except KeyError:
            raise KeyError(f"unknown id {raw!r}") from None

    def to_index(self, ids: Iterable[object], *, unknown: Literal["raise", "grow", "missing"] = "raise") -> np.ndarray:
        """Map external ids to indices.

        Args:
            ids: external ids.
            unknown: ``"raise"`` a ``KeyError`` for an unknown id, ``"grow"`` the map to include it,
                or ``"missing"`` to return -1 for it.

        Returns:
            int64 array of shape ``(n,)``.
        """
        keys = [str(x) for x in ids]
        if unknown == "grow":
            self.fit_partial(keys)
        out = np.fromiter((self._index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        if unknown == "raise" and (out < 0).any():
            bad = [k for k, i in zip(keys, out) if i < 0][:5]
            raise KeyError(f"{int((out < 0).sum())} unknown ids, e.g. {bad}")
        return out

    def to_ids(self, index: Iterable[int] | np.ndarray) -> np.ndarray:
        """Map indices back to external ids (object array of str, same shape as ``index``)."""
        arr = np.asarray(index, dtype=np.int64)
        ids = np.asarray(self._ids, dtype=object)
        if arr.size and (arr.min() < 0 or arr.max() >= len(ids)):
            raise IndexError(f"index out of range for IdMap of size {len(ids)}")
        return ids[arr] if arr.size else np.empty(arr.shape, dtype=object)

    @property
    def ids(self) -> list[str]:
        """All ids in index order (a copy)."""
        return list(self._ids)

    def copy(self) -> IdMap:
        return IdMap(self._ids)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self._ids, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> IdMap:
        return cls(json.loads(Path(path).read_text()))
