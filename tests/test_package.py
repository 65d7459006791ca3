from __future__ import annotations

import subprocess
import sys

import pytest

import lmrec


def test_every_exported_name_resolves():
    for name in lmrec.__all__:
        assert getattr(lmrec, name) is not None, name
    from lmrec.data.loaders import load

    assert lmrec.load_dataset is load


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lmrec.nope  # noqa: B018


def test_import_does_not_pull_torch():
    code = "import sys, lmrec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
