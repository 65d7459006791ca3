"""From checked records to `Interactions`, `ItemCatalog` and `UserTexts`: column maps and role inference."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import LoadReport
from lmrec.data.interactions import Interactions
from lmrec.data.loaders.common import (
    RawTable,
    RowChecker,
    clean_ids,
    missing_mask,
    parse_numbers,
    parse_timestamps,
)
from lmrec.data.text import clean_text, profile_sentence

logger = logging.getLogger("lmrec.data")

__all__ = [
    "ColumnMap",
    "ItemColumns",
    "UserColumns",
    "checked_interactions",
    "make_interactions",
    "build_catalog",
    "build_users",
    "infer_item_roles",
]

_T = TypeVar("_T")


def _from_mapping(cls: type[_T], data: Mapping[str, Any], what: str) -> _T:
    """Build a frozen config dataclass from a dict; an unknown key is an error naming the valid ones."""
    valid = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in valid:
            raise ValueError(f"unknown {what} key {key!r}; valid keys: {valid}")
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    return cls(**values)


@dataclass(frozen=True)
class ColumnMap:
    """Which source column plays which role in the interactions.

    Attributes:
        user: user id column.
        item: item id column.
        timestamp: seconds (numbers) or ISO 8601 strings; ``None`` uses the row order.
        rating: explicit rating column, or ``None``.
        weight: confidence weight column, or ``None``.
        event: event type column ("click", "buy", ...), or ``None``.
        scenario: scenario / domain column, or ``None``.
    """

    user: str = "user_id"
    item: str = "item_id"
    timestamp: str | None = None
    rating: str | None = None
    weight: str | None = None
    event: str | None = None
    scenario: str | None = None

    _GUESSES = {
        "user": ("user_id", "userid", "user", "uid", "customer_id", "reviewerid", "visitorid", "session_id"),
        "item": (
            "item_id",
            "itemid",
            "item",
            "iid",
            "movie_id",
            "movieid",
            "product_id",
            "productid",
            "parent_asin",
            "asin",
            "business_id",
            "article_id",
        ),
        "timestamp": ("timestamp", "time", "ts", "datetime", "date", "unixreviewtime", "event_time", "created_at"),
        "rating": ("rating", "ratings", "score", "stars", "overall"),
        "weight": ("weight",),
        "event": ("event", "event_type", "behavior", "behaviour", "action"),
        "scenario": ("scenario", "domain"),
    }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnMap:
        return _from_mapping(cls, data, "column map")

    @classmethod
    def infer(cls, columns: list[str], source: str = "the table") -> ColumnMap:
        """Guess the roles from common column names (case-insensitive)."""
        lower = {c.lower(): c for c in reversed(columns)}
        found = {role: next((lower[g] for g in names if g in lower), None) for role, names in cls._GUESSES.items()}
        for role in ("user", "item"):
            if found[role] is None:
                raise ValueError(
                    f"{source}: cannot tell which column holds the {role} ids among {columns}; "
                    f"pass columns=ColumnMap({role}=...)"
                )
        return cls(**found)  # type: ignore[arg-type]

    @classmethod
    def coerce(cls, value: ColumnMap | Mapping[str, Any] | None, columns: list[str], source: str) -> ColumnMap:
        if value is None:
            return cls.infer(columns, source)
        return value if isinstance(value, ColumnMap) else cls.from_dict(value)

    def roles(self) -> dict[str, str]:
        """Role -> column for every role that is set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class ItemColumns:
    """Roles of the columns of an item file; ``None`` roles are inferred from the values.

    Attributes:
        id: item id column (default: the interactions' item column if present, else ``item_id``,
            else the first column).
        text: free-text columns, in template order.
        categorical: category or token columns.
        numeric: number columns.
        list_sep: split string values of categorical columns into lists on this separator (``"|"``).
        image: image path column.
        vector: precomputed vector column.
    """

    id: str | None = None
    text: tuple[str, ...] | None = None
    categorical: tuple[str, ...] | None = None
    numeric: tuple[str, ...] | None = None
    list_sep: str | None = None
    image: str | None = None
    vector: str | None = None

    @classmethod
    def coerce(cls, value: ItemColumns | Mapping[str, Any] | None) -> ItemColumns:
        if value is None:
            return cls()
        return value if isinstance(value, ItemColumns) else _from_mapping(cls, value, "item columns")


@dataclass(frozen=True)
class UserColumns:
    """Roles of the columns of a user file.

    Attributes:
        id: user id column (default as for `ItemColumns.id`).
        text: free-text columns; each becomes a `UserTexts` kind named after the column.
        attributes: attribute columns (default: every other column).
        profile: add a "profile" text per user built from the attributes with `profile_sentence`.
    """

    id: str | None = None
    text: tuple[str, ...] = ()
    attributes: tuple[str, ...] | None = None
    profile: bool = True

    @classmethod
    def coerce(cls, value: UserColumns | Mapping[str, Any] | None) -> UserColumns:
        if value is None:
            return cls()
        return value if isinstance(value, UserColumns) else _from_mapping(cls, value, "user columns")


# ---------------------------------------------------------------------------------------- interactions
def _bad_value(frame: pd.DataFrame, column: str, problem: str) -> Callable[[int], str]:
    """The message for row ``i`` whose value in ``column`` cannot be parsed: ``"'x' <problem>"``."""
    return lambda i: f"{frame[column].iloc[i]!r} {problem}"


def checked_interactions(
    table: RawTable,
    columns: ColumnMap,
    report: LoadReport,
    *,
    strict: bool = False,
    timestamp_unit: Literal["s", "ms", "us", "ns"] = "s",
    order_start: int = 0,
) -> pd.DataFrame:
    """Check interaction records and return the usable ones with standard column names.

    Returns:
        frame indexed by the kept records' positions in ``table.frame``, with ``user_id``,
        ``item_id`` (str), ``timestamp`` (float seconds; row order counted from ``order_start``
        when ``columns.timestamp`` is None) and ``rating`` / ``weight`` /
        ``event`` / ``scenario`` for the roles that are set.
    """
    frame = table.frame
    for role, col in columns.roles().items():
        if col not in frame.columns:
            raise ValueError(
                f"{table.source}: column {col!r} (the {role} column) not found; the file has {list(frame.columns)}"
            )
    check = RowChecker(table, report, strict=strict)
    n = len(frame)
    out: dict[str, Any] = {}
    for role in ("user", "item"):
        col = getattr(columns, role)
        miss = missing_mask(frame[col])
        check.flag_column(miss, f"missing {role} id", col, lambda i: "empty value")
        out[f"{role}_id"] = clean_ids(frame[col]).to_numpy(dtype=object)
    if columns.timestamp is not None:
        col = columns.timestamp
        seconds, miss, bad = parse_timestamps(frame[col], timestamp_unit)
        check.flag_column(miss, "missing timestamp", col, lambda i: "empty value")
        check.flag_column(
            bad,
            "unparseable timestamp",
            col,
            _bad_value(frame, col, "is neither a number nor an ISO 8601 date"),
        )
        out["timestamp"] = seconds
    else:
        out["timestamp"] = np.arange(order_start, order_start + n, dtype=np.float64)
    for role in ("rating", "weight"):
        col = getattr(columns, role)
        if col is None:
            continue
        numbers, miss, bad = parse_numbers(frame[col])
        check.flag_column(miss, f"missing {role}", col, lambda i: "empty value")
        check.flag_column(bad, f"unparseable {role}", col, _bad_value(frame, col, "is not a number"))
        out[role] = numbers
    for role in ("event", "scenario"):
        col = getattr(columns, role)
        if col is not None:
            out[role] = np.asarray([clean_text(v) for v in frame[col].tolist()], dtype=object)
    keep = check.finish()
    return pd.DataFrame(out)[keep]


def make_interactions(frames: list[pd.DataFrame]) -> Interactions:
    """One `Interactions` over the checked frames (in order)."""
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return Interactions.from_frame(
        frame,
        rating_col="rating" if "rating" in frame.columns else None,
        weight_col="weight" if "weight" in frame.columns else None,
        event_col="event" if "event" in frame.columns else None,
        scenario_col="scenario" if "scenario" in frame.columns else None,
    )


# ---------------------------------------------------------------------------------------- role inference
_ID_SUFFIXES = ("id", "_id", "code", "zip", "zip_code", "zipcode", "asin", "url", "uri")


def _is_list(value: object) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _id_like_name(name: str) -> bool:
    return name.lower().endswith(_ID_SUFFIXES)


def is_free_text(values: pd.Series) -> bool:
    """Whether strings read as free text (titles, descriptions) rather than categories.

    Free text: on average at least three words, or mostly distinct values of at least two words.
    """
    text = values[~missing_mask(values)].astype(str)
    if text.empty:
        return False
    words = text.str.split().str.len().mean()
    distinct = text.nunique() / len(text)
    return bool(words >= 3 or (distinct > 0.5 and words >= 2))


def is_id_like(values: pd.Series) -> bool:
    """Mostly distinct single tokens (another id, such as an ASIN or a URL); needs 20 values to tell."""
    text = values[~missing_mask(values)].astype(str)
    if len(text) < 20:
        return False
    return bool(text.nunique() / len(text) >= 0.95 and text.str.split().str.len().max() <= 1)


def infer_item_roles(
    frame: pd.DataFrame, exclude: set[str], list_sep: str | None = None
) -> tuple[list[str], list[str], list[str]]:
    """``(text, categorical, numeric)`` columns of an item frame, guessed from the values.

    A string column holding ``list_sep`` in some value is a categorical list.
    """
    text: list[str] = []
    categorical: list[str] = []
    numeric: list[str] = []
    for col in frame.columns:
        if col in exclude:
            continue
        values = frame[col]
        present = values[~missing_mask(values)]
        if present.empty:
            continue
        sample = present.iloc[0]
        if isinstance(sample, dict):
            continue
        if _is_list(sample):
            words = [len(str(e).split()) for v in present if _is_list(v) for e in v]
            (categorical if words and np.mean(words) <= 3 else text).append(col)
        elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
            (categorical if _id_like_name(col) else numeric).append(col)
        elif (
            pd.api.types.is_bool_dtype(values.dtype)
            or list_sep is not None
            and present.astype(str).str.contains(list_sep, regex=False).any()
        ):
            categorical.append(col)
        else:
            numbers, miss, bad = parse_numbers(values)
            if not _id_like_name(col) and (~miss).sum() and bad.sum() <= 0.05 * (~miss).sum():
                numeric.append(col)
            elif is_free_text(values):
                text.append(col)
            elif not is_id_like(values):
                categorical.append(col)
    return text, categorical, numeric


# ---------------------------------------------------------------------------------------- catalog and users
def _default_id(frame: pd.DataFrame, preferred: str | None, fallback: str) -> str:
    for name in (preferred, fallback):
        if name is not None and name in frame.columns:
            return name
    return str(frame.columns[0])


def _checked_keyed(table: RawTable, id_col: str, what: str, report: LoadReport, strict: bool) -> pd.DataFrame:
    """Rows with a present, first-seen id, indexed by the id (str)."""
    frame = table.frame
    if id_col not in frame.columns:
        raise ValueError(f"{table.source}: {what} id column {id_col!r} not found; the file has {list(frame.columns)}")
    check = RowChecker(table, report, strict=strict)
    ids = clean_ids(frame[id_col])
    miss = missing_mask(frame[id_col])
    check.flag_column(miss, f"missing {what} id", id_col, lambda i: "empty value")
    dup = ids.duplicated().to_numpy() & ~miss
    first_line = dict(zip(ids[~miss].tolist()[::-1], table.lines[~miss][::-1]))
    check.flag_column(
        dup,
        f"duplicate {what} id",
        id_col,
        lambda i: f"{what} id {ids.iloc[i]!r} already on {table.unit} {first_line[ids.iloc[i]]}",
    )
    keep = check.finish()
    kept = frame[keep].drop(columns=[id_col])
    kept.index = pd.Index(ids[keep].tolist(), name=None)
    return kept


def build_catalog(
    table: RawTable,
    spec: ItemColumns,
    report: LoadReport,
    *,
    strict: bool = False,
    item_column: str | None = None,
) -> ItemCatalog:
    """An `ItemCatalog` from an item file; missing or repeated ids are rejected (the first row wins)."""
    id_col = spec.id or _default_id(table.frame, item_column, "item_id")
    frame = _checked_keyed(table, id_col, "item", report, strict)
    for role in ("text", "categorical", "numeric"):
        for col in getattr(spec, role) or ():
            if col not in frame.columns:
                raise ValueError(f"{table.source}: {role} column {col!r} not found; the file has {list(frame.columns)}")
    assigned = {c for role in ("text", "categorical", "numeric") for c in (getattr(spec, role) or ())}
    assigned |= {c for c in (spec.image, spec.vector) if c}
    guessed = infer_item_roles(frame, assigned, spec.list_sep)
    text = list(spec.text) if spec.text is not None else guessed[0]
    categorical = list(spec.categorical) if spec.categorical is not None else guessed[1]
    numeric = list(spec.numeric) if spec.numeric is not None else guessed[2]
    for col in numeric:
        numbers, _, bad = parse_numbers(frame[col])
        if bad.any():
            logger.warning("%s: %d values of column %r are not numbers; set missing", table.source, bad.sum(), col)
        frame[col] = numbers
    if spec.list_sep is not None:
        for col in categorical:
            frame[col] = [
                [p.strip() for p in v.split(spec.list_sep) if p.strip()] if isinstance(v, str) else v
                for v in frame[col].tolist()
            ]
    for col in text:
        if frame[col].dtype != object and not pd.api.types.is_string_dtype(frame[col].dtype):
            frame[col] = frame[col].astype(object)
    return ItemCatalog(frame, text, categorical, numeric, image_col=spec.image, vector_col=spec.vector)


def build_users(
    table: RawTable,
    spec: UserColumns,
    report: LoadReport,
    *,
    strict: bool = False,
    user_column: str | None = None,
    profile_columns: tuple[str, ...] | None = None,
) -> UserTexts:
    """`UserTexts` from a user file: attributes, a text per text column, and a profile sentence.

    Args:
        profile_columns: attributes used in the profile sentence (default: all attributes); only
            those present in the file are used.
    """
    id_col = spec.id or _default_id(table.frame, user_column, "user_id")
    frame = _checked_keyed(table, id_col, "user", report, strict)
    for col in (*spec.text, *(spec.attributes or ())):
        if col not in frame.columns:
            raise ValueError(f"{table.source}: user column {col!r} not found; the file has {list(frame.columns)}")
    others = [c for c in frame.columns if c not in spec.text]
    attributes = list(spec.attributes) if spec.attributes is not None else others
    attrs = frame[attributes].copy()
    texts = [pd.DataFrame({"user_id": frame.index, "kind": col, "text": frame[col].tolist()}) for col in spec.text]
    if spec.profile and attributes:
        cols = [c for c in (profile_columns or attributes) if c in attrs.columns]
        profiles = [profile_sentence(dict(zip(cols, row))) for row in attrs[cols].itertuples(index=False, name=None)]
        texts.append(pd.DataFrame({"user_id": attrs.index, "kind": "profile", "text": profiles}))
    frame_texts = pd.concat(texts, ignore_index=True) if texts else pd.DataFrame(columns=["user_id", "kind", "text"])
    return UserTexts(frame_texts, attrs if attributes else None)
