"""Item attributes as columns, so filters are vectorised masks over every item at once.

A categorical column stores int32 codes (-1 = missing) and compares codes; a numeric column stores
float64 (NaN = missing); a multi-valued column (lists such as genres) keeps, per value, the rows that
hold it, and matches a row holding the value among others. Filters: ``equals`` (one value), ``in``
(a list of values: any of them) and ``range`` (inclusive ``min``/``max``, numeric columns only).
Missing values never match.

Writes are two steps, so a bad value never leaves a half-written row: `AttributeTable.prepare_row`
checks and converts every value of a row against its column (or the column a new name would get)
without changing anything, and `AttributeTable.apply_row` stores a prepared row and cannot fail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from lmrec.data.text import clean_text

__all__ = ["AttributeTable", "FilterError", "FilterSpec", "PreparedRow"]

Scalar = str | int | float | bool


class FilterError(ValueError):
    """A filter names an unknown attribute or does not fit its column; ``field`` is its path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class FilterSpec:
    """Attribute filters of one request (all must hold)."""

    equals: Mapping[str, Scalar] = field(default_factory=dict)
    isin: Mapping[str, Sequence[Scalar]] = field(default_factory=dict)
    range: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.equals or self.isin or self.range)


class _Column:
    def __init__(self, kind: Literal["categorical", "numeric", "multi"], capacity: int) -> None:
        self.kind = kind
        self.vocab: dict[str, int] = {}
        self.names: list[str] = []  # code -> value
        if kind == "numeric":
            self.values = np.full(capacity, np.nan, np.float64)
        else:  # categorical: the code per row; multi: unused (rows_of / row_codes hold the data)
            self.values = np.full(capacity, -1, dtype=np.int32)
        self.rows_of: dict[int, list[int]] = {}
        self.row_codes: dict[int, tuple[int, ...]] = {}

    def grow(self, capacity: int) -> None:
        if capacity > len(self.values):
            fill = np.nan if self.kind == "numeric" else -1
            grown = np.full(max(capacity, 2 * len(self.values)), fill, dtype=self.values.dtype)
            grown[: len(self.values)] = self.values
            self.values = grown

    def code(self, value: Any) -> int:
        text = clean_text(value)
        if not text:
            return -1
        code = self.vocab.get(text)
        if code is None:
            code = self.vocab[text] = len(self.names)
            self.names.append(text)
        return code

    def convert(self, value: Any, name: str) -> Any:
        """``value`` as this column stores it (float, cleaned text, or a tuple of cleaned texts); changes nothing.

        Raises:
            FilterError: the value does not fit the column (field ``attributes.<name>``).
        """
        field = f"attributes.{name}"
        if self.kind == "numeric":
            return _number(value, field)
        if self.kind == "multi":
            values = value if _is_list(value) else ([] if value is None else [value])
            return tuple(dict.fromkeys(t for t in (_text(v, field) for v in values) if t))
        if _is_list(value):
            raise FilterError(field, f"expected one value, got a list {list(value)!r}")
        return _text(value, field)

    def store(self, row: int, value: Any) -> None:
        """Store a value `convert` returned (assigns new codes; cannot fail)."""
        if self.kind == "numeric":
            self.values[row] = value
        elif self.kind == "multi":
            for code in self.row_codes.pop(row, ()):
                self.rows_of[code].remove(row)
            codes = tuple(dict.fromkeys(self.code(v) for v in value))
            for code in codes:
                self.rows_of.setdefault(code, []).append(row)
            if codes:
                self.row_codes[row] = codes
        else:
            self.values[row] = self.code(value) if value else -1

    def set_multi(self, row: int, values: Any) -> None:
        """Store a catalogue value as it comes (lists, scalars, missing), unchecked: start-up only."""
        items = values if _is_list(values) else ([] if values is None else [values])
        self.store(row, tuple(dict.fromkeys(t for t in (clean_text(v) for v in items) if t)))

    def get(self, row: int) -> Any:
        if self.kind == "numeric":
            value = self.values[row]
            return None if np.isnan(value) else float(value)
        if self.kind == "multi":
            codes = self.row_codes.get(row, ())
            return [self.names[c] for c in codes] if codes else None
        code = int(self.values[row])
        return self.names[code] if code >= 0 else None


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _number(value: Any, field: str) -> float:
    """A numeric attribute value: None or blank is missing (NaN); a finite number or numeric string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return np.nan
    if isinstance(value, bool) or _is_list(value):
        raise FilterError(field, f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FilterError(field, f"expected a number, got {value!r}") from None
    if not np.isfinite(number):
        raise FilterError(field, f"expected a finite number, got {value!r}")
    return number


def _text(value: Any, field: str) -> str:
    """A categorical attribute value as cleaned text ("" is missing); a non-finite number (NaN included:
    send null for a missing value) is refused."""
    if isinstance(value, float) and not np.isfinite(value):
        raise FilterError(field, f"expected a finite number or a text, got {value!r}")
    if isinstance(value, (dict, set)):
        raise FilterError(field, f"expected a text or a number, got {value!r}")
    return clean_text(value)


@dataclass(frozen=True)
class PreparedRow:
    """One row's attributes checked and converted by `AttributeTable.prepare_row`, ready to store.

    Attributes:
        values: column name -> stored value (float, text, or tuple of texts); names absent are missing.
        new_columns: names the row adds to the table, with their kinds.
    """

    values: Mapping[str, Any]
    new_columns: Mapping[str, Literal["categorical", "numeric", "multi"]]


class AttributeTable:
    """Columns of item attributes over rows ``0..n-1`` (the `VectorIndex` rows)."""

    def __init__(self) -> None:
        self._cols: dict[str, _Column] = {}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def names(self) -> list[str]:
        return sorted(self._cols)

    def kind(self, name: str) -> str:
        return self._cols[name].kind

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, categorical: Sequence[str], numeric: Sequence[str]) -> AttributeTable:
        """Columns of ``frame`` (one row per item row, in row order); a categorical column holding
        lists becomes multi-valued."""
        table = cls()
        n = table._n = len(frame)
        for name in categorical:
            raw = frame[name].tolist()
            if any(_is_list(v) for v in raw):
                col = _Column("multi", n)
                for row, value in enumerate(raw):
                    col.set_multi(row, value)
            else:
                col = _Column("categorical", n)
                codes, uniques = pd.factorize(pd.Series([clean_text(v) for v in raw], dtype=object))
                col.names = [str(label) for label in uniques]
                col.vocab = {label: i for i, label in enumerate(col.names)}
                empty = col.vocab.pop("", None)
                codes = codes.astype(np.int32)
                if empty is not None:
                    codes[codes == empty] = -1  # "" (missing) got a code of its own
                col.values[:n] = codes
            table._cols[str(name)] = col
        for name in numeric:
            col = _Column("numeric", n)
            col.values[:n] = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
            table._cols[str(name)] = col
        return table

    def add_rows(self, count: int) -> None:
        """Append ``count`` rows with every attribute missing."""
        self._n += count
        for col in self._cols.values():
            col.grow(self._n)

    def prepare_row(self, values: Mapping[str, Any]) -> PreparedRow:
        """Check and convert one row's attributes against the table, changing nothing. A new name adds
        a column: numeric for a number, multi-valued for a list, else categorical.

        Raises:
            FilterError: an empty name, or a value that does not fit its column (field ``attributes.<name>``).
        """
        out: dict[str, Any] = {}
        new: dict[str, Literal["categorical", "numeric", "multi"]] = {}
        for name, value in values.items():
            if not isinstance(name, str) or not name.strip():
                raise FilterError("attributes", f"an attribute name must be a non-empty text, got {name!r}")
            col = self._cols.get(name)
            if col is None:
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    kind: Literal["categorical", "numeric", "multi"] = "numeric"
                else:
                    kind = "multi" if _is_list(value) else "categorical"
                col = _Column(kind, 0)
                new[name] = kind
            out[name] = col.convert(value, name)
        return PreparedRow(out, new)

    def apply_row(self, row: int, prepared: PreparedRow) -> None:
        """Store a row `prepare_row` checked; other columns of the row become missing. Cannot fail for
        a row prepared against this table with no column added in between (hold the writers' lock)."""
        if not 0 <= row < self._n:
            raise IndexError(f"row {row} out of range [0, {self._n})")
        for name, kind in prepared.new_columns.items():
            if name not in self._cols:
                col = _Column(kind, max(self._n, 1))
                col.grow(self._n)
                self._cols[name] = col
        for name, col in list(self._cols.items()):
            value = prepared.values.get(name)
            col.store(row, col.convert(None, name) if value is None else value)

    def set_row(self, row: int, values: Mapping[str, Any]) -> None:
        """`prepare_row` then `apply_row`: a value that does not fit raises before anything changes."""
        if not 0 <= row < self._n:
            raise IndexError(f"row {row} out of range [0, {self._n})")
        self.apply_row(row, self.prepare_row(values))

    def value(self, row: int, name: str) -> Any:
        """One attribute of one row (None when absent, or when there is no such attribute)."""
        col = self._cols.get(name)
        return None if col is None else col.get(row)

    def codes(self, name: str, rows: np.ndarray) -> np.ndarray | None:
        """(len(rows),) int codes of a single-valued text attribute (-1: absent; equal codes, equal
        values); None when ``name`` is not such an attribute (numeric, multi-valued or unknown)."""
        col = self._cols.get(name)
        if col is None or col.kind != "categorical":
            return None
        return col.values[np.asarray(rows, dtype=np.int64)]

    def row(self, row: int) -> dict[str, Any]:
        """One row's present attributes."""
        out = {name: col.get(row) for name, col in list(self._cols.items())}  # a PUT may add a column meanwhile
        return {name: value for name, value in out.items() if value is not None}

    # ------------------------------------------------------------------ filters
    def _col(self, op: str, name: str) -> _Column:
        col = self._cols.get(name)
        if col is None:
            raise FilterError(f"filters.{op}.{name}", f"unknown attribute {name!r}; known: {self.names}")
        return col

    def mask(self, spec: FilterSpec, n: int | None = None) -> np.ndarray:
        """(n,) bool: rows satisfying every filter of ``spec``.

        Raises:
            FilterError: an unknown attribute, a range on a categorical column, or a non-number for a
                numeric column; the message starts with the filter's path (``filters.range.price``).
        """
        n = self._n if n is None else n
        keep = np.ones(n, dtype=bool)
        for name, value in spec.equals.items():
            keep &= self._match(self._col("equals", name), "equals", name, [value], n)
        for name, values in spec.isin.items():
            keep &= self._match(self._col("in", name), "in", name, list(values), n)
        for name, (low, high) in spec.range.items():
            col = self._col("range", name)
            if col.kind != "numeric":
                raise FilterError(
                    f"filters.range.{name}", f"attribute {name!r} is {col.kind}; range needs a numeric one"
                )
            vals = col.values[:n]
            ok = ~np.isnan(vals)
            if low is not None:
                ok &= vals >= low
            if high is not None:
                ok &= vals <= high
            keep &= ok
        return keep

    def _match(self, col: _Column, op: str, name: str, values: list[Any], n: int) -> np.ndarray:
        if col.kind == "numeric":
            try:
                numbers = np.asarray([float(v) for v in values], dtype=np.float64)
            except (TypeError, ValueError):
                raise FilterError(f"filters.{op}.{name}", f"attribute {name!r} is numeric; got {values!r}") from None
            return np.isin(col.values[:n], numbers)
        codes = [col.vocab[t] for t in (clean_text(v) for v in values) if t in col.vocab]
        if col.kind == "categorical":
            return np.isin(col.values[:n], np.asarray(codes, dtype=np.int32))
        keep = np.zeros(n, dtype=bool)
        for code in codes:
            rows = np.asarray(col.rows_of.get(code, ()), dtype=np.int64)
            keep[rows[rows < n]] = True
        return keep
