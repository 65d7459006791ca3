"""The served item set: ids, texts, attributes and vectors by index row, with live/deleted state.

Rows are append-only. The first ``n_model`` rows are the model's items in its index order (row ``r``
is model item ``r``), then catalogue-only items, then items PUT while serving. Replacing an item's
text gives it a new row (the old row is tombstoned), since an ANN index cannot update a vector in
place; DELETE tombstones the row. Tombstoned rows keep their vectors, so events on a deleted item
can still be replayed into profiles.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lmrec.serve.attributes import AttributeTable
from lmrec.serve.index import VectorIndex

__all__ = ["ServedItems"]


class ServedItems:
    """Items by row, over a `VectorIndex` and an `AttributeTable` with the same rows.

    Args:
        ids: external id of each base row.
        texts: text of each base row.
        index: holds one vector per base row.
        attributes: one row per base row.
        n_model: rows that are the model's items.
    """

    def __init__(
        self, ids: Sequence[str], texts: Sequence[str], index: VectorIndex, attributes: AttributeTable, n_model: int
    ) -> None:
        if not len(ids) == len(texts) == len(index) == len(attributes):
            raise ValueError(
                f"ServedItems: {len(ids)} ids, {len(texts)} texts, {len(index)} vectors, {len(attributes)} attribute rows"
            )
        self.ids: list[str] = list(ids)
        self.texts: list[str] = list(texts)
        self.index = index
        self.attributes = attributes
        self.n_model = n_model
        self.row_of: dict[str, int] = {item_id: row for row, item_id in enumerate(self.ids)}
        self.dead_row_of: dict[str, int] = {}
        self._live = np.ones(max(len(ids), 64), dtype=bool)
        self._pop = np.zeros(max(len(ids), 64), dtype=np.float64)
        self._n = len(ids)
        self.version = 0  # last store item version applied
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self._n

    @property
    def n_live(self) -> int:
        return len(self.row_of)

    def live_mask(self, n: int | None = None) -> np.ndarray:
        """(n,) bool copy: True for rows that may be recommended."""
        n = self._n if n is None else n
        return self._live[:n].copy()

    def row(self, item_id: str) -> int | None:
        """The live row of an id, or None (unknown or deleted)."""
        return self.row_of.get(item_id)

    def any_row(self, item_id: str) -> int | None:
        """The row of an id, deleted ones included (their vectors stay)."""
        row = self.row_of.get(item_id)
        return self.dead_row_of.get(item_id) if row is None else row

    def popularity(self, n: int | None = None) -> np.ndarray:
        """(n,) interaction counts by row (training counts plus logged events); a view."""
        return self._pop[: self._n if n is None else n]

    def add_popularity(self, rows: np.ndarray | Sequence[int], counts: np.ndarray | float = 1.0) -> None:
        """Add counts to rows (repeated rows add up)."""
        np.add.at(self._pop, np.asarray(rows, dtype=np.int64), counts)

    def vector(self, row: int) -> np.ndarray:
        return self.index.vectors[row]

    def title(self, row: int, width: int = 48) -> str:
        """A short label of an item for reasons: the first sentence of its text, else its id."""
        text = self.texts[row].split(". ")[0].strip() or self.ids[row]
        return text if len(text) <= width else text[: width - 1].rstrip() + "…"

    # ------------------------------------------------------------------ writes (hold `lock`)
    def _append(self, item_id: str, text: str, vector: np.ndarray, attributes: Mapping[str, Any]) -> int:
        (row,) = self.index.add(np.asarray(vector, dtype=np.float32)[None, :])
        self.attributes.add_rows(1)
        self.attributes.set_row(int(row), attributes)
        self.ids.append(item_id)
        self.texts.append(text)
        if row >= len(self._live):
            self._live = _grown(self._live)
            self._pop = _grown(self._pop)
        self._live[row] = True
        self._pop[row] = 0.0
        self._n = int(row) + 1
        return int(row)

    def upsert(self, item_id: str, text: str, attributes: Mapping[str, Any], vector: np.ndarray | None) -> tuple[int, bool]:
        """Add or update an item.

        With ``vector=None`` the item must be live with the same text: only its attributes change.
        Otherwise the item gets a new row with ``vector`` (its old row, if any, is tombstoned).

        Returns:
            ``(row, created)``: created is True when the id was not live before.
        """
        old = self.row_of.get(item_id)
        if vector is None:
            if old is None or self.texts[old] != text:
                raise ValueError(f"item {item_id!r}: a new or changed text needs a vector")
            self.attributes.set_row(old, attributes)
            return old, False
        row = self._append(item_id, text, vector, attributes)
        if old is not None:
            self._live[old] = False
            self._pop[row] = self._pop[old]  # a new text does not reset the item's popularity
        self.row_of[item_id] = row
        self.dead_row_of.pop(item_id, None)
        return row, old is None

    def delete(self, item_id: str) -> bool:
        """Tombstone an item; False when it is not live."""
        row = self.row_of.pop(item_id, None)
        if row is None:
            return False
        self._live[row] = False
        self.dead_row_of[item_id] = row
        return True

    def unchanged(self, item_id: str, text: str) -> bool:
        """True when the item is live with exactly this text (no re-encoding needed)."""
        row = self.row_of.get(item_id)
        return row is not None and self.texts[row] == text


def _grown(array: np.ndarray) -> np.ndarray:
    out = np.zeros(2 * len(array), dtype=array.dtype)
    out[: len(array)] = array
    return out
