"""Data model, loaders and splits."""

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.data.splits import (
    Split,
    cold_item_split,
    kcore_filter,
    leave_one_out,
    ratio_split,
    temporal_split,
)

__all__ = [
    "Dataset",
    "IdMap",
    "Interactions",
    "ItemCatalog",
    "LoadReport",
    "Split",
    "UserTexts",
    "cold_item_split",
    "kcore_filter",
    "leave_one_out",
    "ratio_split",
    "temporal_split",
]
