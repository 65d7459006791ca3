"""Fixtures of the encoder tests: tiny local models written to temporary directories."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from enc_helpers import write_st_layout, write_tiny_bert


@pytest.fixture(scope="session", autouse=True)
def _quiet_transformers():
    """Hide transformers' weight-loading progress bars while these tests run; restore them after."""
    from transformers.utils import logging as hf_logging

    level = logging.getLogger("transformers").level
    logging.getLogger("transformers").setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    yield
    hf_logging.enable_progress_bar()
    logging.getLogger("transformers").setLevel(level)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_st(tmp_path_factory, tiny_bert) -> Path:
    target = tmp_path_factory.mktemp("models") / "tiny-st"
    shutil.copytree(tiny_bert, target)
    return write_st_layout(target)


@pytest.fixture(scope="session")
def tiny_e5(tmp_path_factory, tiny_bert) -> Path:
    """The same weights under a multilingual E5 name: E5 prefixes are detected from the name."""
    target = tmp_path_factory.mktemp("models") / "multilingual-e5-tiny"
    shutil.copytree(tiny_bert, target)
    return target


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")
