"""Shared machinery of the loaders: reading records with their line numbers, checking them row by row.

Every loader reads its files into a `RawTable` (records plus the 1-based line each record starts on),
flags unusable rows with a `RowChecker`, and keeps the rest. Rejected rows are counted per reason in
a `LoadReport` and logged as a warning; with ``strict=True`` the first bad row (by line) raises a
``ValueError`` naming the file, the line and the column instead.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lmrec.data.dataset import LoadReport

logger = logging.getLogger("lmrec.data")

__all__ = [
    "RawTable",
    "RowChecker",
    "read_delimited",
    "read_jsonl",
    "read_parquet_table",
    "parse_numbers",
    "parse_timestamps",
    "missing_mask",
    "clean_ids",
    "log_report",
]

_EXAMPLES_PER_REASON = 3


@dataclass
class RawTable:
    """Records read from one file, before any checking.

    Attributes:
        frame: one row per record, columns named as in the source (values as read: str for text files).
        lines: int64 ``(n,)``, where each record starts: 1-based line of a text file (the header is
            line 1) or 1-based row of a parquet file.
        source: the file, as named in messages.
        unit: ``"line"`` or ``"row"``.
        problems: records already dropped while reading, as ``(line, reason, message)``.
    """

    frame: pd.DataFrame
    lines: np.ndarray
    source: str
    unit: str = "line"
    problems: list[tuple[int, str, str]] = field(default_factory=list)

    def where(self, i: int, column: str | None = None) -> str:
        """``"<file>, line 12, column 'rating'"`` for record ``i``."""
        text = f"{self.source}, {self.unit} {int(self.lines[i])}"
        return text if column is None else f"{text}, column {column!r}"


class RowChecker:
    """Collects per-row problems of a `RawTable`, then keeps the good rows and accounts for the bad.

    Each row is counted once, under the first check that flagged it, so the reasons add up to the
    rows dropped. In strict mode `finish` raises for the bad row with the smallest line number.
    """

    def __init__(self, table: RawTable, report: LoadReport, *, strict: bool = False) -> None:
        self.table = table
        self.report = report
        self.strict = strict
        self._checks: list[tuple[np.ndarray, str, Callable[[int], str]]] = []

    def flag(self, mask: np.ndarray, reason: str, message: Callable[[int], str]) -> None:
        """Mark rows ``mask`` (bool ``(n,)``) as unusable; ``message(i)`` explains row ``i``."""
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self._checks.append((mask, reason, message))

    def flag_column(self, mask: np.ndarray, reason: str, column: str, problem: Callable[[int], str]) -> None:
        """`flag` with the standard ``"<file>, line N, column 'c': <problem>"`` message."""
        self.flag(mask, reason, lambda i: f"{self.table.where(i, column)}: {problem(i)}")

    def finish(self) -> np.ndarray:
        """Bool ``(n,)`` mask of rows to keep; updates the report (or raises in strict mode)."""
        table, n = self.table, len(self.table.frame)
        first = np.full(n, -1, dtype=np.int64)
        for k, (mask, _, _) in enumerate(self._checks):
            first[(first < 0) & mask] = k
        bad = first >= 0
        if self.strict and (bad.any() or table.problems):
            candidates = [(line, msg) for line, _, msg in table.problems]
            if bad.any():
                i = int(np.flatnonzero(bad)[np.argmin(table.lines[bad])])
                candidates.append((int(table.lines[i]), self._checks[first[i]][2](i)))
            raise ValueError(min(candidates, key=lambda c: c[0])[1])
        report = self.report
        report.rows_read += n + len(table.problems)
        seen: dict[str, int] = {}
        for _, reason, msg in table.problems:
            seen[reason] = seen.get(reason, 0) + 1
            report.reject(reason, msg if seen[reason] <= _EXAMPLES_PER_REASON else None)
        for k, (_, reason, message) in enumerate(self._checks):
            rows = np.flatnonzero(first == k)
            shown = rows[:_EXAMPLES_PER_REASON]
            for i in shown:
                report.reject(reason, message(int(i)))
            if len(rows) > len(shown):
                report.reject(reason, None, count=len(rows) - len(shown))
        report.rows_kept += int(n - bad.sum())
        return ~bad


def log_report(report: LoadReport) -> None:
    """Log a report's summary: a warning when rows were rejected, debug otherwise."""
    if report.n_rejected:
        examples = "; ".join((report.examples or [])[:3])
        logger.warning("%s. Examples: %s", report.summary(), examples)
    else:
        logger.debug(report.summary())


# ---------------------------------------------------------------------------------------- values
def missing_mask(values: pd.Series) -> np.ndarray:
    """True where a value is absent: None, NaN or a blank string."""
    miss = values.isna().to_numpy(dtype=bool, copy=True)
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        text = values.astype(str).str.strip()
        miss |= (text == "").to_numpy(dtype=bool)
    return miss


def clean_ids(values: pd.Series) -> pd.Series:
    """Ids as stripped strings; integral floats (``12.0`` from a JSON or parquet column) become ``"12"``."""
    if pd.api.types.is_float_dtype(values.dtype):
        as_int = values.fillna(0)
        if (as_int == np.round(as_int)).all():
            values = values.astype("Int64")
    return values.astype(str).str.strip()


def parse_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a column of numbers.

    Returns:
        ``(numbers, missing, bad)``: float64 ``(n,)`` with NaN where unusable, and bool masks of
        absent values and of present values that are not finite numbers.
    """
    missing = missing_mask(values)
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype(np.float64)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~missing & ~np.isfinite(numbers)
    return numbers, missing, bad


def parse_timestamps(
    values: pd.Series, unit: Literal["s", "ms", "us", "ns"] = "s"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse timestamps given as numbers (in ``unit``) or ISO 8601 date strings, to seconds.

    Returns:
        ``(seconds, missing, bad)`` as in `parse_numbers`.
    """
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = pd.to_datetime(values, utc=True)
        seconds = ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(np.float64, na_value=np.nan)
        missing = np.isnan(seconds)
        return seconds, missing, np.zeros(len(values), dtype=bool)
    numbers, missing, bad = parse_numbers(values)
    seconds = numbers * scale
    if bad.any():
        stamps = pd.to_datetime(values[bad], format="ISO8601", utc=True, errors="coerce")
        dates = ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(np.float64, na_value=np.nan)
        seconds[bad] = dates
        bad = bad & np.isnan(seconds)
    return seconds, missing, bad


# ---------------------------------------------------------------------------------------- reading
def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def _decode(data: bytes, encoding: str, source: str) -> str:
    """Decode a whole file; a UTF-8 byte-order mark is dropped; bad bytes raise naming the line."""
    if encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig"):
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{source}, line {line}: bytes that are not valid {err.encoding} ({err.reason}); "
            f"pass the file's encoding, e.g. encoding='latin-1'"
        ) from None


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one at a time (``str.split`` would hold every line of a large file at once)."""
    start, n = 0, len(text)
    while start < n:
        end = text.find("\n", start)
        if end < 0:
            end = n
        yield text[start:end]
        start = end + 1


#: distinct values of a column `read_delimited` shares between records (ids, types, ratings); a column
#: with more (timestamps, free text) keeps one string per record past this many
_SHARED_MAX = 1 << 20


def _text_rows(text: str, delimiter: str, quoting: Literal["minimal", "none"]) -> Iterator[tuple[int, list[str]]]:
    """``(start line, fields)`` per non-blank record."""
    if quoting == "none":
        for number, line in enumerate(_lines(text), start=1):
            line = line.rstrip("\r")
            if line.strip():
                yield number, line.split(delimiter)
        return
    if len(delimiter) != 1:
        raise ValueError(f"a quoted (csv) file needs a one-character delimiter, got {delimiter!r}")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, strict=False)
    end = 0
    for fields in reader:
        start, end = end + 1, reader.line_num
        if fields and any(f.strip() for f in fields):
            yield start, fields


def read_delimited(
    path: str | Path,
    *,
    delimiter: str = ",",
    quoting: Literal["minimal", "none"] = "minimal",
    encoding: str = "utf-8",
    names: list[str] | None = None,
) -> RawTable:
    """Read a delimited text file (optionally .gz) into a `RawTable` of strings.

    Args:
        path: the file.
        delimiter: field separator (several characters allowed with ``quoting="none"``, e.g. ``"::"``).
        quoting: ``"minimal"`` for CSV quoting rules, ``"none"`` to take every character literally
            (quotes are text; a record is one line), as RecBole and MovieLens files need.
        encoding: text encoding; a UTF-8 byte-order mark is dropped.
        names: column names for a file without a header; by default the first record is the header.

    Records with the wrong number of fields, and repeats of the header line, are left out and listed
    in ``problems``. Blank lines are skipped (they hold no record).

    Raises:
        ValueError: undecodable bytes (naming the line), or a header with a repeated or empty name.
    """
    path = Path(path)
    source = str(path)
    rows = _text_rows(_decode(_read_bytes(path), encoding, source), delimiter, quoting)
    header_line = 0
    if names is None:
        first = next(rows, None)
        if first is None:
            raise ValueError(f"{source} is empty: no header line")
        header_line, names = first[0], [n.strip() for n in first[1]]
        seen: set[str] = set()
        for col, name in enumerate(names, start=1):
            if not name:
                raise ValueError(f"{source}, line {header_line}, column {col}: empty column name in the header")
            if name in seen:
                raise ValueError(f"{source}, line {header_line}, column {name!r}: the header repeats this name")
            seen.add(name)
    width = len(names)
    lines: list[int] = []
    # one list per column, each value shared with its earlier copies (a 16M-row file of 100,000 ids holds
    # 100,000 id strings, not 16M); a table of per-record lists would hold every field as its own string
    columns: list[list[str]] = [[] for _ in names]
    shared: list[dict[str, str] | None] = [{} for _ in names]
    problems: list[tuple[int, str, str]] = []
    for number, fields in rows:
        if len(fields) != width:
            msg = f"{source}, line {number}: expected {width} fields, found {len(fields)}"
            problems.append((number, "wrong number of fields", msg))
            continue
        if header_line and fields[0].strip() == names[0] and [f.strip() for f in fields] == names:
            problems.append((number, "repeated header row", f"{source}, line {number}: the header line repeats"))
            continue
        lines.append(number)
        for j, value in enumerate(fields):
            cache = shared[j]
            if cache is not None:
                value = cache.setdefault(value, value)
                if len(cache) > _SHARED_MAX:
                    shared[j] = None
            columns[j].append(value)
    frame = pd.DataFrame({name: pd.Series(col, dtype=object) for name, col in zip(names, columns)})
    del columns
    return RawTable(frame, np.asarray(lines, dtype=np.int64), source, "line", problems)


def read_jsonl(
    path: str | Path,
    *,
    encoding: str = "utf-8",
    keep: Collection[str] | None = None,
    show_progress: bool = False,
) -> RawTable:
    """Read JSON Lines (optionally .gz) line by line: one JSON object per line.

    Args:
        path: the file.
        encoding: text encoding; a UTF-8 byte-order mark is dropped.
        keep: keys to keep from each object (default all), to save memory on large files.
        show_progress: a progress bar over the lines read.

    Lines that are not JSON objects go to ``problems``; blank lines are skipped.

    Raises:
        ValueError: undecodable bytes, naming the line.
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig"):
        encoding = "utf-8-sig"
    keys = set(keep) if keep is not None else None
    records: list[dict] = []
    lines: list[int] = []
    problems: list[tuple[int, str, str]] = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for number, raw in enumerate(tqdm(fh, desc=path.name, unit=" lines", disable=not show_progress), start=1):
            try:
                line = raw.decode(encoding if number == 1 else encoding.replace("-sig", ""))
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{source}, line {number}: bytes that are not valid {err.encoding} ({err.reason}); "
                    f"pass the file's encoding"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                problems.append((number, "invalid JSON", f"{source}, line {number}: invalid JSON ({err.msg})"))
                continue
            if not isinstance(record, dict):
                problems.append((number, "not a JSON object", f"{source}, line {number}: not a JSON object"))
                continue
            records.append(record if keys is None else {k: v for k, v in record.items() if k in keys})
            lines.append(number)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    frame = frame.astype(object) if len(frame.columns) else frame
    return RawTable(frame, np.asarray(lines, dtype=np.int64), source, "line", problems)


def read_parquet_table(path: str | Path) -> RawTable:
    """Read a parquet file; records are numbered by 1-based row."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    frame = pd.read_parquet(path)
    return RawTable(frame, np.arange(1, len(frame) + 1, dtype=np.int64), str(path), "row")
