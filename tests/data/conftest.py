"""Shared fixtures for the data tests: the bundled MovieLens 100K and the Office benchmark path."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmrec.data import Dataset
from lmrec.data.loaders import available, load
from lmrec.data.loaders.bundled import bundled_files

OFFICE_DIR = Path("/work/shared/datasets/amazon-office")


@pytest.fixture(scope="session")
def ml100k() -> Dataset:
    if "ml-100k" not in available() or bundled_files("ml-100k") is None:
        pytest.skip("the bundled MovieLens 100K parquet files are not installed")
    return load("ml-100k")


@pytest.fixture(scope="session")
def office_dir() -> Path:
    if not (OFFICE_DIR / "Office.inter").exists():
        pytest.skip("the Office benchmark files are not available")
    return OFFICE_DIR
