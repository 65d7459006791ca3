"""Data model, loaders and splits."""

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.data.loaders import (
    ColumnMap,
    ItemColumns,
    UserColumns,
    load,
    load_amazon2023,
    load_movielens,
    load_recbole,
    load_recbole_benchmark,
    load_table,
    write_recbole,
)
from lmrec.data.splits import (
    Split,
    cold_item_split,
    holdout_rows,
    kcore_filter,
    last_row_split,
    leave_one_out,
    ratio_split,
    stream_windows,
    temporal_split,
)

__all__ = [
    "ColumnMap",
    "Dataset",
    "IdMap",
    "Interactions",
    "ItemCatalog",
    "ItemColumns",
    "LoadReport",
    "Split",
    "UserColumns",
    "UserTexts",
    "cold_item_split",
    "holdout_rows",
    "kcore_filter",
    "last_row_split",
    "leave_one_out",
    "load",
    "load_amazon2023",
    "load_movielens",
    "load_recbole",
    "load_recbole_benchmark",
    "load_table",
    "ratio_split",
    "stream_windows",
    "temporal_split",
    "write_recbole",
]
