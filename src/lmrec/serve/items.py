"""The served item set: ids, texts, attributes and vectors by index row, with live/deleted state.

Rows are append-only. The first ``n_model`` rows are the model's items in its index order (row ``r``
is model item ``r``), then catalogue-only items, then items PUT while serving. Replacing an item's
text gives it a new row (the old row is tombstoned), since an ANN index cannot update a vector in
place; DELETE tombstones the row. Tombstoned rows keep their vectors, so events on a deleted item
can still be replayed into profiles.

A write is `ServedItems.prepare`d first (the vector's width and finiteness, every attribute against
its column), which changes nothing and raises on bad input; the caller commits it to the store and
then `ServedItems.apply`s it, which cannot fail on a prepared change. `ServedItems.check` reports any
disagreement between the ids, texts, attribute rows and index rows (``/health``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmrec.serve.attributes import AttributeTable, PreparedRow
from lmrec.serve.index import VectorIndex

__all__ = ["ItemChange", "ServedItems"]


@dataclass(frozen=True)
class ItemChange:
    """An item write checked by `ServedItems.prepare`, ready to `ServedItems.apply`.

    Attributes:
        item_id: the item.
        text: its text.
        attributes: its attributes, converted for the attribute table.
        vector: ``(dim,)`` float32 finite vector of a new or changed text; None keeps the live row's
            vector (same text: only the attributes change).
    """

    item_id: str
    text: str
    attributes: PreparedRow
    vector: np.ndarray | None


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
        self._pop_max: float | None = None
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

    def max_popularity(self) -> float:
        """The largest count over the rows (0 with none); cached until the counts change."""
        if self._pop_max is None:
            self._pop_max = float(self._pop[: self._n].max()) if self._n else 0.0
        return self._pop_max

    def add_popularity(self, rows: np.ndarray | Sequence[int], counts: np.ndarray | float = 1.0) -> None:
        """Add counts to rows (repeated rows add up)."""
        np.add.at(self._pop, np.asarray(rows, dtype=np.int64), counts)
        self._pop_max = None

    def vector(self, row: int) -> np.ndarray:
        return self.index.vectors[row]

    def title(self, row: int, width: int = 48) -> str:
        """A short label of an item for reasons: the first sentence of its text, else its id."""
        text = self.texts[row].split(". ")[0].strip() or self.ids[row]
        return text if len(text) <= width else text[: width - 1].rstrip() + "…"

    # ------------------------------------------------------------------ writes (hold `lock`)
    def prepare(self, item_id: str, text: str, attributes: Mapping[str, Any], vector: np.ndarray | None) -> ItemChange:
        """Check an add or update without changing anything.

        With ``vector=None`` the item must be live with the same text (only its attributes change);
        otherwise the item will get a new row with ``vector`` (its old row tombstoned).

        Raises:
            FilterError: an attribute does not fit its column (field ``attributes.<name>``).
            ValueError: a missing vector for a new or changed text, or a vector of the wrong width or
                with a non-finite value.
        """
        if vector is None:
            old = self.row_of.get(item_id)
            if old is None or self.texts[old] != text:
                raise ValueError(f"item {item_id!r}: a new or changed text needs a vector")
        else:
            vector = np.asarray(vector, dtype=np.float32).reshape(-1)
            if vector.shape != (self.index.dim,):
                raise ValueError(f"item {item_id!r}: vector of width {vector.size}, the index has {self.index.dim}")
            if not np.isfinite(vector).all():
                raise ValueError(f"item {item_id!r}: the vector has non-finite values")
        return ItemChange(item_id, text, self.attributes.prepare_row(attributes), vector)

    def apply(self, change: ItemChange) -> tuple[int, bool]:
        """Make a prepared change live (after it was committed to the store).

        Returns:
            ``(row, created)``: created is True when the id was not live before.
        """
        old = self.row_of.get(change.item_id)
        if change.vector is None:
            assert old is not None  # `prepare` checked it
            self.attributes.apply_row(old, change.attributes)
            return old, False
        (row,) = self.index.add(change.vector[None, :])
        row = int(row)
        self.attributes.add_rows(1)
        self.attributes.apply_row(row, change.attributes)
        self.ids.append(change.item_id)
        self.texts.append(change.text)
        if row >= len(self._live):
            self._live = _grown(self._live)
            self._pop = _grown(self._pop)
        self._live[row] = True
        self._pop[row] = 0.0 if old is None else self._pop[old]  # a new text does not reset the item's popularity
        self._pop_max = None
        self._n = row + 1  # the new row is complete: readers may see it
        if old is not None:
            self._live[old] = False
        self.row_of[change.item_id] = row
        self.dead_row_of.pop(change.item_id, None)
        return row, old is None

    def upsert(
        self, item_id: str, text: str, attributes: Mapping[str, Any], vector: np.ndarray | None
    ) -> tuple[int, bool]:
        """`prepare` then `apply` (nothing changes when `prepare` raises).

        Returns:
            ``(row, created)``: created is True when the id was not live before.
        """
        return self.apply(self.prepare(item_id, text, attributes, vector))

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

    # ------------------------------------------------------------------ consistency
    def check(self) -> list[str]:
        """Disagreements between the ids, texts, attribute rows, liveness and index rows; [] when none."""
        n = self._n
        sizes = {
            "ids": len(self.ids),
            "texts": len(self.texts),
            "attribute rows": len(self.attributes),
            "index rows": len(self.index),
        }
        problems = [f"{name}: {size}, the catalogue has {n} rows" for name, size in sizes.items() if size != n]
        live = int(self._live[:n].sum())
        if live != len(self.row_of):
            problems.append(f"{live} rows are live, {len(self.row_of)} ids are")
        problems.extend(self.index.check())
        return problems


def _grown(array: np.ndarray) -> np.ndarray:
    out = np.zeros(2 * len(array), dtype=array.dtype)
    out[: len(array)] = array
    return out
