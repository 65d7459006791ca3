"""RecBole atomic files: ``<name>.inter`` / ``.item`` / ``.user`` and predefined benchmark splits.

Atomic files are tab-separated with a ``name:type`` header (types ``token``, ``token_seq``, ``float``,
``float_seq``) and no quoting: a quote is text, a record is one line. Nothing here depends on a
particular data set; the columns' roles come from RecBole's conventional field names and the types.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.interactions import Interactions
from lmrec.data.loaders.build import (
    ColumnMap,
    ItemColumns,
    UserColumns,
    build_catalog,
    build_users,
    checked_interactions,
    is_free_text,
    is_id_like,
    make_interactions,
)
from lmrec.data.loaders.common import RawTable, log_report, missing_mask, read_delimited
from lmrec.data.loaders.kg import find_recbole_kg
from lmrec.data.splits import Split
from lmrec.data.text import clean_text

logger = logging.getLogger("lmrec.data")

__all__ = ["read_atomic", "load_recbole", "load_recbole_benchmark", "write_recbole", "RECBOLE_TYPES"]

RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
_PARTS = ("train", "valid", "test")
_ITEM_HINTS = (
    "item",
    "business",
    "product",
    "movie",
    "artist",
    "track",
    "song",
    "book",
    "news",
    "article",
    "video",
    "game",
    "anime",
    "recipe",
    "poi",
    "venue",
    "course",
)


def read_atomic(path: str | Path, *, encoding: str = "utf-8") -> tuple[RawTable, dict[str, str]]:
    """Read one atomic file.

    Returns:
        ``(table, types)``: records with bare column names (``user_id``, not ``user_id:token``) and
        each column's RecBole type.

    Raises:
        ValueError: a header field without ``:type`` or with an unknown type (naming the column).
    """
    table = read_delimited(path, delimiter="\t", quoting="none", encoding=encoding)
    types: dict[str, str] = {}
    for raw in table.frame.columns:
        bare, sep, kind = str(raw).rpartition(":")
        if not sep or not bare:
            raise ValueError(f"{table.source}, line 1, column {raw!r}: header field is not 'name:type'")
        if kind not in RECBOLE_TYPES:
            raise ValueError(
                f"{table.source}, line 1, column {raw!r}: unknown type {kind!r}; valid: {list(RECBOLE_TYPES)}"
            )
        if bare in types:
            raise ValueError(f"{table.source}, line 1, column {raw!r}: the header repeats the field {bare!r}")
        types[bare] = kind
    table.frame.columns = list(types)
    return table, types


def _resolve(path: str | Path, name: str | None) -> tuple[Path, str]:
    """``(directory, name)`` from a directory, a prefix (``dir/Office``) or an atomic file path."""
    p = Path(path)
    if p.is_dir():
        if name is not None:
            return p, name
        if (p / f"{p.name}.inter").exists():
            return p, p.name
        stems = sorted({f.name[: -len(".inter")] for f in p.glob("*.inter")})
        whole = [s for s in stems if s.rpartition(".")[2] not in _PARTS]
        candidates = whole or sorted({s.rpartition(".")[0] for s in stems})
        if len(candidates) == 1:
            return p, candidates[0]
        if not candidates:
            raise ValueError(f"{p} holds no RecBole .inter file")
        raise ValueError(f"{p} holds several RecBole data sets {candidates}; pass name=")
    if p.suffix in (".inter", ".item", ".user"):
        return p.parent, name or p.stem
    return p.parent, name or p.name


def _pick(
    types: Mapping[str, str],
    explicit: str | None,
    role: str,
    conventional: tuple[str, ...],
    hints: tuple[str, ...],
    kinds: tuple[str, ...],
    source: str,
) -> str | None:
    """The field for a role: an explicit name, RecBole's conventional one, or a field named like it."""
    if explicit is not None:
        if explicit not in types:
            raise ValueError(f"{source}: {role} field {explicit!r} not found; fields: {list(types)}")
        return explicit
    for name in conventional:
        if name in types:
            return name
    for hint in hints:
        for name, kind in types.items():
            if hint in name.lower() and kind in kinds:
                return name
    return None


def _fields(
    directory: Path,
    name: str,
    types: Mapping[str, str],
    source: str,
    overrides: Mapping[str, str | None],
    encoding: str,
) -> dict[str, str | None]:
    def first_field(suffix: str) -> tuple[str, ...]:
        path = directory / f"{name}.{suffix}"
        if not path.exists():
            return ()
        with path.open(encoding="utf-8-sig" if encoding.lower().startswith("utf") else encoding) as fh:
            return (fh.readline().split("\t")[0].rpartition(":")[0],)

    user = _pick(
        types, overrides.get("user"), "user", ("user_id", *first_field("user")), ("user", "session"), ("token",), source
    )
    others = {k: v for k, v in types.items() if k != user}
    item = _pick(
        others if overrides.get("item") is None else types,
        overrides.get("item"),
        "item",
        ("item_id", *first_field("item")),
        _ITEM_HINTS,
        ("token",),
        source,
    )
    if user is None or item is None:
        role = "user" if user is None else "item"
        raise ValueError(f"{source}: no {role} id field found among {list(types)}; pass {role}_field=")
    rating = _pick(
        types, overrides.get("rating"), "rating", ("rating", "label"), ("rating", "stars", "score"), ("float",), source
    )
    time = _pick(
        types,
        overrides.get("timestamp"),
        "timestamp",
        ("timestamp",),
        ("timestamp", "time", "date"),
        ("float",),
        source,
    )
    return {"user": user, "item": item, "rating": rating, "timestamp": time}


def _item_catalog(
    table: RawTable, types: Mapping[str, str], item_field: str, report: LoadReport, strict: bool
) -> ItemCatalog:
    """Roles from types: token_seq -> text, free-text token -> text, other token -> categorical
    (id-like tokens left out), float -> numeric, one fixed-length float_seq -> vector."""
    id_col = item_field if item_field in types else next(iter(types))
    text: list[str] = []
    categorical: list[str] = []
    numeric: list[str] = []
    vectors: list[str] = []
    token_lists: list[str] = []
    frame = table.frame
    for col, kind in types.items():
        if col == id_col:
            continue
        values = frame[col]
        if kind == "token_seq":
            text.append(col)
            tokens = values[~missing_mask(values)].astype(str).str.split()
            vocab = {t for row in tokens for t in row}
            n_tokens = int(tokens.str.len().sum())
            if len(tokens) and n_tokens <= 6 * len(tokens) and len(vocab) <= 0.1 * n_tokens:
                categorical.append(col)  # a few short tokens from a small closed set (genres, tags): also categories
                token_lists.append(col)
        elif kind == "token":
            if is_free_text(values):
                text.append(col)
            elif not is_id_like(values):
                categorical.append(col)
        elif kind == "float":
            numeric.append(col)
        else:
            vectors.append(col)
    for col in vectors:
        frame[col] = [
            [float(x) for x in v.split()] if isinstance(v, str) and v.strip() else None for v in frame[col].tolist()
        ]
    lengths = {len(v) for col in vectors[:1] for v in frame[col] if v}
    vector = vectors[0] if len(vectors) == 1 and len(lengths) == 1 and lengths.pop() > 1 else None
    spec = ItemColumns(
        id=id_col, text=tuple(text), categorical=tuple(categorical), numeric=tuple(numeric), vector=vector
    )
    catalog = build_catalog(table, spec, report, strict=strict)
    for col in token_lists:
        catalog.frame[col] = [v.split() if isinstance(v, str) else [] for v in catalog.frame[col].tolist()]
    return catalog


def _side_files(
    directory: Path, name: str, fields: Mapping[str, str | None], encoding: str, strict: bool, reports: list[LoadReport]
) -> tuple[ItemCatalog | None, UserTexts | None]:
    items = users = None
    item_path, user_path = directory / f"{name}.item", directory / f"{name}.user"
    if item_path.exists():
        table, types = read_atomic(item_path, encoding=encoding)
        report = LoadReport(table.source)
        items = _item_catalog(table, types, str(fields["item"]), report, strict)
        reports.append(report)
    if user_path.exists():
        table, types = read_atomic(user_path, encoding=encoding)
        report = LoadReport(table.source)
        user_id = str(fields["user"]) if fields["user"] in types else next(iter(types))
        users = build_users(table, UserColumns(id=user_id), report, strict=strict)
        reports.append(report)
    return items, users


def load_recbole(
    directory_or_prefix: str | Path,
    *,
    name: str | None = None,
    user_field: str | None = None,
    item_field: str | None = None,
    rating_field: str | None = None,
    time_field: str | None = None,
    weight: str | None = None,
    event: str | None = None,
    scenario: str | None = None,
    encoding: str = "utf-8",
    strict: bool = False,
) -> Dataset:
    """Load ``<name>.inter`` with the optional ``<name>.item`` and ``<name>.user``.

    Args:
        directory_or_prefix: a directory (the data set is the one ``.inter`` file in it, or the one
            named like the directory), a prefix such as ``data/Office``, or the ``.inter`` file.
        name: the atomic files' stem when the directory holds several.
        user_field, item_field, rating_field, time_field: override RecBole's conventional names
            (``user_id``, ``item_id``, ``rating`` or ``label``, ``timestamp``). Unset, the first column
            of the .user / .item file, then a field named like the role, is tried.
        weight, event, scenario: other .inter fields to keep as weights / event types / scenarios
            (a float field named ``weight`` is taken as the weights unless told otherwise).
            Every field and type is listed in ``interactions.meta["recbole_types"]``; `read_atomic`
            gives all columns.
        encoding: text encoding of the files.
        strict: raise on the first bad row instead of counting it.

    Returns:
        `Dataset` whose catalogue has token_seq and free-text token columns as text, other tokens as
        categorical, floats as numeric; the .user file gives attributes and a profile sentence.
        A ``<name>.kg`` file (with ``<name>.link``, or linked through an item column) becomes
        ``dataset.kg`` (`lmrec.data.loaders.kg`).
    """
    directory, name = _resolve(directory_or_prefix, name)
    inter_path = directory / f"{name}.inter"
    table, types = read_atomic(inter_path, encoding=encoding)
    overrides = {"user": user_field, "item": item_field, "rating": rating_field, "timestamp": time_field}
    fields = _fields(directory, name, types, table.source, overrides, encoding)
    for extra in (weight, event, scenario):
        if extra is not None and extra not in types:
            raise ValueError(f"{table.source}: field {extra!r} not found; fields: {list(types)}")
    if weight is None and types.get("weight") == "float":
        weight = "weight"
    columns = ColumnMap(
        user=str(fields["user"]),
        item=str(fields["item"]),
        timestamp=fields["timestamp"],
        rating=fields["rating"],
        weight=weight,
        event=event,
        scenario=scenario,
    )
    report = LoadReport(table.source)
    interactions = make_interactions([checked_interactions(table, columns, report, strict=strict)])
    interactions.meta.update(recbole_types=dict(types), columns=columns.roles())
    reports = [report]
    items, users = _side_files(directory, name, fields, encoding, strict, reports)
    for r in reports:
        log_report(r)
    logger.info("RecBole %s: fields %s", name, columns.roles())
    return find_recbole_kg(Dataset(interactions, items, users, name, reports), directory, name, encoding=encoding)


def load_recbole_benchmark(
    directory: str | Path,
    name: str,
    *,
    weight: str | None = None,
    event: str | None = None,
    scenario: str | None = None,
    encoding: str = "utf-8",
    strict: bool = False,
) -> tuple[Dataset, Split]:
    """Load predefined splits ``<name>.train.inter``, ``.valid.inter`` and ``.test.inter``.

    Returns:
        ``(dataset, split)``: the dataset holds every row (train, then valid, then test) and the
        split's three parts share one pair of id maps (the dataset's).

    Raises:
        ValueError: a part is missing or the parts' headers differ.
    """
    directory = Path(directory)
    frames: list[pd.DataFrame] = []
    reports: list[LoadReport] = []
    first_types: dict[str, str] | None = None
    columns: ColumnMap | None = None
    fields: dict[str, str | None] = {}
    offset = 0
    for part in _PARTS:
        path = directory / f"{name}.{part}.inter"
        if not path.exists():
            raise ValueError(f"{path} does not exist; a benchmark needs {name}.train/.valid/.test.inter")
        table, types = read_atomic(path, encoding=encoding)
        if first_types is None:
            first_types = types
            fields = _fields(directory, name, types, table.source, {}, encoding)
            if weight is None and types.get("weight") == "float":
                weight = "weight"
            columns = ColumnMap(
                user=str(fields["user"]),
                item=str(fields["item"]),
                timestamp=fields["timestamp"],
                rating=fields["rating"],
                weight=weight,
                event=event,
                scenario=scenario,
            )
        elif types != first_types:
            raise ValueError(f"{table.source}: header {types} differs from the train file's {first_types}")
        assert columns is not None
        report = LoadReport(table.source)
        frames.append(checked_interactions(table, columns, report, strict=strict, order_start=offset))
        offset += len(table.frame)
        reports.append(report)
    assert columns is not None and first_types is not None
    everything = make_interactions(frames)
    everything.meta.update(recbole_types=dict(first_types), columns=columns.roles())
    bounds = np.cumsum([0, *(len(f) for f in frames)])
    parts = [everything.subset(np.arange(bounds[k], bounds[k + 1])) for k in range(3)]
    split = Split(parts[0], parts[1], parts[2], name="recbole-benchmark")
    items, users = _side_files(directory, name, fields, encoding, strict, reports)
    for r in reports:
        log_report(r)
    dataset = find_recbole_kg(Dataset(everything, items, users, name, reports), directory, name, encoding=encoding)
    return dataset, split


# ---------------------------------------------------------------------------------------- writing
def _token(value: object) -> str:
    text = value if isinstance(value, str) else clean_text(value)
    return " ".join(text.split()) if any(c in text for c in "\t\r\n") else text


def _float(value: object) -> str:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(x):
        return ""
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def _field_name(name: str) -> str:
    return "_".join(str(name).replace(":", "_").split())


def _write(path: Path, columns: list[tuple[str, str, list[str]]]) -> None:
    header = "\t".join(f"{_field_name(n)}:{t}" for n, t, _ in columns)
    rows = ("\t".join(fields) for fields in zip(*(values for _, _, values in columns)))
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(header + "\n")
        for row in rows:
            fh.write(row + "\n")


def _inter_columns(inter: Interactions) -> list[tuple[str, str, list[str]]]:
    cols = [
        ("user_id", "token", [_token(u) for u in inter.user_map.to_ids(inter.users)]),
        ("item_id", "token", [_token(i) for i in inter.item_map.to_ids(inter.items)]),
    ]
    if inter.ratings is not None:
        cols.append(("rating", "float", [_float(x) for x in inter.ratings]))
    cols.append(("timestamp", "float", [_float(x) for x in inter.timestamps]))
    if inter.weights is not None:
        cols.append(("weight", "float", [_float(x) for x in inter.weights]))
    if inter.events is not None:
        cols.append(("event", "token", [_token(x) for x in inter.events]))
    if inter.scenarios is not None:
        cols.append(("scenario", "token", [_token(x) for x in inter.scenarios]))
    return cols


def _frame_columns(
    frame: pd.DataFrame, id_name: str, numeric: set[str], token_lists: set[str]
) -> list[tuple[str, str, list[str]]]:
    cols = [(id_name, "token", [_token(i) for i in frame.index])]
    for col in frame.columns:
        values = frame[col].tolist()
        if col in numeric or pd.api.types.is_numeric_dtype(frame[col].dtype):
            cols.append((col, "float", [_float(v) for v in values]))
        elif col in token_lists:
            tokens = [
                ["_".join(str(t).split()) for t in v]
                if isinstance(v, (list, tuple, np.ndarray))
                else str(v).split()
                if isinstance(v, str)
                else []
                for v in values
            ]
            cols.append((col, "token_seq", [" ".join(t) for t in tokens]))
        elif any(isinstance(v, dict) for v in values):
            cols.append(
                (
                    col,
                    "token",
                    [_token(json.dumps(v, ensure_ascii=False)) if isinstance(v, dict) else _token(v) for v in values],
                )
            )
        else:
            kind = "token_seq" if any(isinstance(v, (list, tuple, np.ndarray)) for v in values) else "token"
            cols.append((col, kind, [_token(v) for v in values]))
    return cols


def _catalog_columns(items: ItemCatalog) -> list[tuple[str, str, list[str]]]:
    frame = items.frame
    lists = {c for c in items.categorical if any(isinstance(v, (list, tuple, np.ndarray)) for v in frame[c])}
    cols = _frame_columns(frame, "item_id", set(items.numeric), lists)
    # text fields are RecBole token_seq (free text); categorical scalars stay tokens
    return [(n, "token_seq" if n in items.text_fields and n not in lists else t, v) for n, t, v in cols]


def write_recbole(
    data: Dataset | Split | Interactions,
    directory: str | Path,
    name: str,
    *,
    items: ItemCatalog | None = None,
    users: UserTexts | None = None,
) -> list[Path]:
    """Write atomic files that RecBole (and `load_recbole` / `load_recbole_benchmark`) read.

    A `Dataset` or `Interactions` gives ``<name>.inter``; a `Split` gives ``<name>.train.inter``,
    ``.valid.inter`` and ``.test.inter`` (RecBole's ``benchmark_filename``). Ids are the raw
    external ids. The catalogue (the dataset's, or ``items``) gives ``<name>.item``: text fields as
    token_seq, categorical lists as token_seq (spaces inside a token become ``_``), other
    categoricals as token, numbers as float. User attributes give ``<name>.user``. Tabs and line
    breaks inside values become spaces, since atomic files are unquoted.

    Returns:
        the files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if isinstance(data, Dataset):
        items = items if items is not None else data.items
        users = users if users is not None else data.users
    if isinstance(data, Split):
        for part in _PARTS:
            path = directory / f"{name}.{part}.inter"
            _write(path, _inter_columns(getattr(data, part)))
            written.append(path)
    else:
        inter = data.interactions if isinstance(data, Dataset) else data
        path = directory / f"{name}.inter"
        _write(path, _inter_columns(inter))
        written.append(path)
    if items is not None:
        path = directory / f"{name}.item"
        _write(path, _catalog_columns(items))
        written.append(path)
    if users is not None and users.attributes is not None:
        path = directory / f"{name}.user"
        _write(path, _frame_columns(users.attributes, "user_id", set(), set()))
        written.append(path)
    return written
