"""Generic tables (csv, tsv, parquet, jsonl) with optional item and user files: `load_table`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.loaders.build import (
    ColumnMap,
    ItemColumns,
    UserColumns,
    build_catalog,
    build_users,
    checked_interactions,
    make_interactions,
)
from lmrec.data.loaders.common import (
    RawTable,
    log_report,
    read_delimited,
    read_jsonl,
    read_parquet_table,
)

__all__ = ["TableFormat", "detect_format", "read_records", "load_table"]

TableFormat = Literal["csv", "tsv", "parquet", "jsonl", "auto"]

_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".inter": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def detect_format(path: str | Path) -> str:
    """The table format from a file name (a trailing ``.gz`` and parquet compression suffixes ignored)."""
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() not in (".gz", ".brotli", ".snappy", ".zst")]
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        valid = sorted(set(_SUFFIXES.values()))
        raise ValueError(f"cannot tell the format of {str(path)!r} from its name; pass format= one of {valid}")
    return fmt


def read_records(
    path: str | Path,
    format: TableFormat = "auto",
    *,
    encoding: str = "utf-8",
    quoting: Literal["minimal", "none"] | None = None,
    delimiter: str | None = None,
) -> RawTable:
    """Read one file into a `RawTable` (records with their line numbers).

    Args:
        quoting: CSV quoting (``"minimal"``) or none; default minimal for csv and none for tsv.
        delimiter: overrides the format's separator (``","`` for csv, tab for tsv).
    """
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "parquet":
        return read_parquet_table(path)
    if fmt == "jsonl":
        return read_jsonl(path, encoding=encoding)
    if fmt not in ("csv", "tsv"):
        raise ValueError(f"unknown format {fmt!r}; valid: csv, tsv, parquet, jsonl, auto")
    default_quoting: Literal["minimal", "none"] = "minimal" if fmt == "csv" else "none"
    return read_delimited(
        path,
        delimiter=delimiter or ("," if fmt == "csv" else "\t"),
        quoting=quoting or default_quoting,
        encoding=encoding,
    )


def _side_format(path: str | Path, format: TableFormat) -> TableFormat:
    """A side file's format: from its own suffix, else the interactions' format."""
    try:
        return detect_format(path)  # type: ignore[return-value]
    except ValueError:
        return format


def load_table(
    path_or_paths: str | Path | Sequence[str | Path],
    *,
    format: TableFormat = "auto",
    columns: ColumnMap | Mapping[str, Any] | None = None,
    items_path: str | Path | None = None,
    item_columns: ItemColumns | Mapping[str, Any] | None = None,
    users_path: str | Path | None = None,
    user_columns: UserColumns | Mapping[str, Any] | None = None,
    timestamp_unit: Literal["s", "ms", "us", "ns"] = "s",
    encoding: str = "utf-8",
    quoting: Literal["minimal", "none"] | None = None,
    delimiter: str | None = None,
    strict: bool = False,
    name: str | None = None,
) -> Dataset:
    """Load interactions from one or more tables, with an optional item file and user file.

    Args:
        path_or_paths: one file or several with the same columns (rows are concatenated in order).
        format: ``"csv"``, ``"tsv"`` (no quoting: quotes are text), ``"parquet"``, ``"jsonl"``, or
            ``"auto"`` from the file suffix (``.gz`` allowed for the text formats).
        columns: role -> column (`ColumnMap` or a dict with its field names); ``None`` guesses from
            common names (``user_id``/``userId``/..., ``item_id``/``movieId``/``parent_asin``/...).
            Without a timestamp column the row order (0, 1, 2, ... across files) is the time.
        items_path: item file for the `ItemCatalog` (any of the formats, told by its suffix;
            ``format`` when the suffix says nothing).
        item_columns: roles of the item columns (`ItemColumns` or dict); unset roles are inferred:
            numbers -> numeric, free text (about three words or more) -> text, other strings ->
            categorical, id-like columns left out.
        users_path: user file for `UserTexts` (attributes and a "profile" sentence).
        user_columns: roles of the user columns (`UserColumns` or dict).
        timestamp_unit: unit of numeric timestamps (converted to seconds).
        encoding: text encoding of the text formats.
        quoting, delimiter: see `read_records`.
        strict: raise on the first bad row instead of counting it.
        name: data set name (default: the first file's stem).

    Returns:
        `Dataset` with one `LoadReport` per file in ``reports``.

    Raises:
        ValueError: a mapped column is missing, a key of a dict is unknown, or (strict) a bad row.
    """
    paths = [Path(path_or_paths)] if isinstance(path_or_paths, (str, Path)) else [Path(p) for p in path_or_paths]
    if not paths:
        raise ValueError("load_table needs at least one path")
    reports: list[LoadReport] = []
    frames = []
    column_map: ColumnMap | None = None
    offset = 0
    for path in paths:
        table = read_records(path, format, encoding=encoding, quoting=quoting, delimiter=delimiter)
        column_map = column_map or ColumnMap.coerce(columns, list(table.frame.columns), table.source)
        report = LoadReport(table.source)
        frames.append(
            checked_interactions(
                table, column_map, report, strict=strict, timestamp_unit=timestamp_unit, order_start=offset
            )
        )
        offset += len(table.frame)
        reports.append(report)
    assert column_map is not None
    interactions = make_interactions(frames)
    interactions.meta["columns"] = column_map.roles()
    items = users = None
    if items_path is not None:
        table = read_records(items_path, _side_format(items_path, format), encoding=encoding)
        report = LoadReport(table.source)
        spec = ItemColumns.coerce(item_columns)
        items = build_catalog(table, spec, report, strict=strict, item_column=column_map.item)
        reports.append(report)
    if users_path is not None:
        table = read_records(users_path, _side_format(users_path, format), encoding=encoding)
        report = LoadReport(table.source)
        users = build_users(table, UserColumns.coerce(user_columns), report, strict=strict, user_column=column_map.user)
        reports.append(report)
    for report in reports:
        log_report(report)
    return Dataset(interactions, items, users, name or paths[0].name.split(".")[0], reports)
