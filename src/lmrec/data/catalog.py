"""Side information: item text and attributes, user texts and attributes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lmrec.data.idmap import IdMap

# clean_text and join_sentences live in lmrec.data.text; they stay importable from here for older callers
from lmrec.data.text import clean_text, join_sentences, render_template

__all__ = ["ItemCatalog", "UserTexts"]


@dataclass(eq=False)
class ItemCatalog:
    """Item id -> text fields, categorical and numeric attributes, image path or precomputed vector.

    Attributes:
        frame: one row per item, indexed by the external item id (str).
        text_fields: columns holding free text (title, description, ...), in template order.
        categorical: columns holding categories or tokens (genre, brand, ...).
        numeric: columns holding numbers (price, year, ...).
        image_col: column holding an image path, if any.
        vector_col: column holding a precomputed vector (list of floats) per item, if any.
    """

    frame: pd.DataFrame
    text_fields: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    image_col: str | None = None
    vector_col: str | None = None

    def __post_init__(self) -> None:
        self.frame = self.frame.copy()
        self.frame.index = self.frame.index.astype(str)
        if self.frame.index.has_duplicates:
            dup = self.frame.index[self.frame.index.duplicated()][:5].tolist()
            raise ValueError(f"ItemCatalog has duplicate item ids, e.g. {dup}")
        for role in ("text_fields", "categorical", "numeric"):
            missing = [c for c in getattr(self, role) if c not in self.frame.columns]
            if missing:
                raise ValueError(f"ItemCatalog.{role} names columns not in the frame: {missing}")
        for col in (self.image_col, self.vector_col):
            if col is not None and col not in self.frame.columns:
                raise ValueError(f"ItemCatalog column {col!r} not in the frame")

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self.frame.index

    def aligned(self, item_map: IdMap) -> pd.DataFrame:
        """Rows in ``item_map`` index order; items absent from the catalogue get empty rows."""
        return self.frame.reindex(item_map.ids)

    def field_values(self, item_map: IdMap, column: str) -> list[str]:
        """One column as clean text per item in index order ("" where missing)."""
        return [clean_text(v) for v in self.aligned(item_map)[column].tolist()]

    def texts(self, item_map: IdMap, template: str | None = None, fields: list[str] | None = None) -> list[str]:
        """Item text per item in index order.

        Args:
            item_map: the order of the output.
            template: a format string over column names, such as ``"{title}. {brand}"``; parts whose
                field is empty are dropped together with their trailing punctuation.
            fields: columns joined with ". " when no template is given (default: ``text_fields``).
        """
        frame = self.aligned(item_map)
        if template is None:
            cols = fields or self.text_fields or list(self.categorical)
            rows = frame[cols].itertuples(index=False, name=None)
            return [join_sentences([clean_text(v) for v in row]) for row in rows]
        return [render_template(template, row) for row in frame.to_dict("records")]

    def upsert(self, item_id: str, values: dict[str, object]) -> None:
        """Add or replace one item's row."""
        unknown = [k for k in values if k not in self.frame.columns]
        if unknown:
            raise ValueError(f"unknown item fields {unknown}; known: {list(self.frame.columns)}")
        row = pd.DataFrame([values], index=[str(item_id)]).reindex(columns=self.frame.columns)
        self.frame = pd.concat([self.frame.drop(index=str(item_id), errors="ignore"), row])

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        frame = self.frame.copy()
        frame.index.name = "item_id"
        frame.reset_index().to_parquet(directory / "catalog.parquet", index=False)
        roles = {k: getattr(self, k) for k in ("text_fields", "categorical", "numeric", "image_col", "vector_col")}
        (directory / "catalog.json").write_text(json.dumps(roles))

    @classmethod
    def load(cls, directory: str | Path) -> ItemCatalog:
        directory = Path(directory)
        frame = pd.read_parquet(directory / "catalog.parquet").set_index("item_id")
        return cls(frame, **json.loads((directory / "catalog.json").read_text()))


@dataclass(eq=False)
class UserTexts:
    """User id -> texts (reviews, queries, profile sentences) and optional user attributes.

    Attributes:
        texts: frame with columns ``user_id``, ``kind`` ("review", "query", "profile", ...), ``text``
            and optionally ``timestamp``.
        attributes: optional frame of user attributes indexed by user id (age, gender, ...).
    """

    texts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["user_id", "kind", "text"]))
    attributes: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        missing = {"user_id", "kind", "text"} - set(self.texts.columns)
        if missing:
            raise ValueError(f"UserTexts.texts is missing columns {sorted(missing)}")
        self.texts = self.texts.copy()
        self.texts["user_id"] = self.texts["user_id"].astype(str)
        self.texts["text"] = [clean_text(t) for t in self.texts["text"]]
        self.texts = self.texts[self.texts["text"] != ""].reset_index(drop=True)
        if self.attributes is not None:
            self.attributes = self.attributes.copy()
            self.attributes.index = self.attributes.index.astype(str)

    def for_user(self, user_id: object, kinds: tuple[str, ...] | None = None) -> list[str]:
        """A user's texts, oldest first where timestamps exist."""
        rows = self.texts[self.texts["user_id"] == str(user_id)]
        if kinds is not None:
            rows = rows[rows["kind"].isin(kinds)]
        if "timestamp" in rows.columns:
            rows = rows.sort_values("timestamp", kind="stable")
        return rows["text"].tolist()

    def joined(self, user_map: IdMap, kinds: tuple[str, ...] | None = None, sep: str = " ") -> list[str]:
        """One text per user in index order (their texts joined; "" for users without text)."""
        rows = self.texts if kinds is None else self.texts[self.texts["kind"].isin(kinds)]
        if "timestamp" in rows.columns:
            rows = rows.sort_values("timestamp", kind="stable")
        grouped = rows.groupby("user_id", sort=False)["text"].agg(sep.join)
        return [grouped.get(uid, "") for uid in user_map.ids]

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.texts.to_parquet(directory / "user_texts.parquet", index=False)
        if self.attributes is not None:
            attrs = self.attributes.copy()
            attrs.index.name = "user_id"
            attrs.reset_index().to_parquet(directory / "user_attributes.parquet", index=False)

    @classmethod
    def load(cls, directory: str | Path) -> UserTexts:
        directory = Path(directory)
        attrs_path = directory / "user_attributes.parquet"
        attrs = pd.read_parquet(attrs_path).set_index("user_id") if attrs_path.exists() else None
        return cls(pd.read_parquet(directory / "user_texts.parquet"), attrs)
