"""Loaders for every supported input format; each returns a `Dataset` with its `LoadReport`s.

Formats: generic tables (`load_table`: csv, tsv, parquet, jsonl), RecBole atomic files
(`load_recbole`, `load_recbole_benchmark`, `write_recbole`), MovieLens 100K / 1M / latest
(`load_movielens`), Amazon Reviews 2023 JSONL (`load_amazon2023`) and the Women's clothing reviews
(`load_clothing_reviews`). `load` takes a bundled or downloadable name, a directory, a file or a YAML
data config and picks the loader.

Bad input is never dropped silently: unusable rows (missing id, unparseable number, wrong number of
fields, repeated header, ...) are counted per reason in ``dataset.reports`` and logged as a warning;
with ``strict=True`` the first bad row raises a ``ValueError`` naming the file, the line (1-based, the
header is line 1) and the column.

Modules: ``common`` (reading records, checking rows), ``build`` (column roles, building interactions,
catalogue and user texts), one module per format, ``bundled`` / ``remote`` (where named data sets
come from) and ``sources`` (`load`, `load_from_config`).
"""

from lmrec.data.loaders.amazon import load_amazon2023
from lmrec.data.loaders.build import ColumnMap, ItemColumns, UserColumns
from lmrec.data.loaders.clothing import load_clothing_reviews
from lmrec.data.loaders.movielens import load_movielens
from lmrec.data.loaders.recbole import load_recbole, load_recbole_benchmark, read_atomic, write_recbole
from lmrec.data.loaders.remote import default_cache_dir, download
from lmrec.data.loaders.sources import available, load, load_from_config, set_text_fields
from lmrec.data.loaders.table import TableFormat, detect_format, load_table, read_records

__all__ = [
    "ColumnMap",
    "ItemColumns",
    "TableFormat",
    "UserColumns",
    "available",
    "default_cache_dir",
    "detect_format",
    "download",
    "load",
    "load_amazon2023",
    "load_clothing_reviews",
    "load_from_config",
    "load_movielens",
    "load_recbole",
    "load_recbole_benchmark",
    "load_table",
    "read_atomic",
    "read_records",
    "set_text_fields",
    "write_recbole",
]
