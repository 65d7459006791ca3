"""Amazon Reviews 2023 (McAuley Lab) JSON Lines: reviews and item metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lmrec.data.catalog import UserTexts
from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.loaders.build import ColumnMap, ItemColumns, build_catalog, checked_interactions, make_interactions
from lmrec.data.loaders.common import RawTable, log_report, read_jsonl
from lmrec.data.text import clean_text

__all__ = ["load_amazon2023"]

_META_TEXT = ("title", "features", "description", "categories")
_META_CATEGORICAL = ("store", "main_category")
_REVIEW_KEYS = (
    "user_id",
    "parent_asin",
    "asin",
    "rating",
    "timestamp",
    "title",
    "text",
    "helpful_vote",
    "verified_purchase",
)
_META_KEYS = ("parent_asin", *_META_TEXT, *_META_CATEGORICAL, "price", "details")


def _price(value: object) -> float:
    """``12.99``, ``"$1,299.00"`` -> number; ``None``, ``"None"``, ``"—"`` -> NaN."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = clean_text(value).replace("$", "").replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        return float("nan")


def review_text(title: object, text: object) -> str:
    """``"<title>. <text>"``; no extra full stop after a title that already ends a sentence."""
    title_s, text_s = clean_text(title), clean_text(text)
    if not title_s or not text_s:
        return title_s or text_s
    return f"{title_s} {text_s}" if title_s[-1] in ".!?" else f"{title_s}. {text_s}"


def _details(value: object) -> str:
    """The ``details`` dict as ``"Brand: X; Color: Y"`` ("" when absent)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return clean_text(value)
    if not isinstance(value, dict):
        return ""
    return "; ".join(f"{k}: {clean_text(v)}" for k, v in value.items() if clean_text(v))


def load_amazon2023(
    reviews_path: str | Path,
    meta_path: str | Path | None = None,
    *,
    strict: bool = False,
    name: str | None = None,
    show_progress: bool = False,
) -> Dataset:
    """Load an Amazon Reviews 2023 category: ``<Category>.jsonl[.gz]`` and ``meta_<Category>.jsonl[.gz]``.

    Reviews (``user_id``, ``parent_asin``, ``rating``, ``timestamp`` in milliseconds, ``title``,
    ``text``, ...) become interactions on ``parent_asin`` (``asin`` where it is absent) with ratings
    and timestamps in seconds, and user texts of kind "review" (``"<title>. <text>"``, with
    ``timestamp``, ``item_id``, ``rating``, ``helpful_vote`` and ``verified_purchase`` columns).
    Meta rows become the catalogue: title, features, description and categories as text; store and
    main_category categorical; price numeric (``None``/unparseable -> NaN); ``details`` kept as a
    ``"key: value; ..."`` string column outside the text fields.

    Args:
        reviews_path: the reviews file (.jsonl or .jsonl.gz).
        meta_path: the metadata file, optional.
        strict: raise on the first bad line instead of counting it.
        name: data set name (default: the reviews file's stem).
        show_progress: progress bars while reading the files.

    Returns:
        `Dataset`; rejected lines (invalid JSON, missing ids, bad rating or timestamp, repeated
        parent_asin in the metadata) are counted in ``reports``.
    """
    reviews_path = Path(reviews_path)
    table = read_jsonl(reviews_path, keep=_REVIEW_KEYS, show_progress=show_progress)
    frame = table.frame
    if not len(frame):
        raise ValueError(f"{table.source} holds no review rows")
    for col in ("user_id", "rating", "timestamp"):
        if col not in frame.columns:
            raise ValueError(f"{table.source}: reviews need a {col!r} field; found {list(frame.columns)}")
    if "parent_asin" not in frame.columns:
        frame["parent_asin"] = frame["asin"] if "asin" in frame.columns else None
    elif "asin" in frame.columns:
        frame["parent_asin"] = frame["parent_asin"].where(frame["parent_asin"].notna(), frame["asin"])
    columns = ColumnMap(user="user_id", item="parent_asin", timestamp="timestamp", rating="rating")
    report = LoadReport(table.source)
    reports = [report]
    kept = checked_interactions(table, columns, report, strict=strict, timestamp_unit="ms")
    rows = frame.iloc[kept.index.to_numpy()]  # the review fields of the kept rows
    interactions = make_interactions([kept])
    texts = pd.DataFrame(
        {
            "user_id": kept["user_id"].to_numpy(),
            "kind": "review",
            "text": [review_text(t, x) for t, x in zip(_col(rows, "title"), _col(rows, "text"))],
            "timestamp": kept["timestamp"].to_numpy(),
            "item_id": kept["item_id"].to_numpy(),
            "rating": kept["rating"].to_numpy(),
            "helpful_vote": pd.to_numeric(
                pd.Series(_col(rows, "helpful_vote"), dtype=object), errors="coerce"
            ).to_numpy(),
            "verified_purchase": _col(rows, "verified_purchase"),
        }
    )
    users = UserTexts(texts)
    items = None
    if meta_path is not None:
        meta = read_jsonl(meta_path, keep=_META_KEYS, show_progress=show_progress)
        raw = meta.frame
        if len(raw) and "parent_asin" not in raw.columns:
            raise ValueError(f"{meta.source}: metadata needs a 'parent_asin' field; found {list(raw.columns)}")
        data = {"parent_asin": raw["parent_asin"].to_numpy(dtype=object) if len(raw) else np.array([], dtype=object)}
        for col in (*_META_TEXT, *_META_CATEGORICAL):
            data[col] = _col(raw, col)
        data["price"] = [_price(v) for v in _col(raw, "price")]
        data["details"] = [_details(v) for v in _col(raw, "details")]
        meta_frame = pd.DataFrame(data)
        meta_report = LoadReport(meta.source)
        spec = ItemColumns(id="parent_asin", text=_META_TEXT, categorical=_META_CATEGORICAL, numeric=("price",))
        items = build_catalog(
            RawTable(meta_frame, meta.lines, meta.source, meta.unit, meta.problems), spec, meta_report, strict=strict
        )
        reports.append(meta_report)
    for r in reports:
        log_report(r)
    stem = reviews_path.name.split(".")[0]
    return Dataset(interactions, items, users, name or stem, reports)


def _col(frame: pd.DataFrame, col: str) -> list[object]:
    return frame[col].tolist() if col in frame.columns else [None] * len(frame)
