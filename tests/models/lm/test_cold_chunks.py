"""`ColdStart.borrowed` computes its similarities in row chunks: chunking must not change the answer."""

from __future__ import annotations

import numpy as np
import pytest

import lmrec.models.lm.cold as cold
from lmrec.models.lm.cold import ColdStart, ColdState
from lmrec.models.lm.config import ColdStartConfig


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_borrowed_in_chunks_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    n, d, k = 40, 6, 5
    counts = np.where(np.arange(n) % 3 == 0, 0, 2)  # 14 cold items, 26 warm
    paths = ColdStart(
        ColdStartConfig(neighbours=4, tau=0.1),
        ColdState(1.0, 0.0, 1.0),
        rng.standard_normal((n, d)).astype(np.float32),
        _unit(rng.standard_normal((n, k))).astype(np.float32),
        counts,
        rng.standard_normal((n, 3)).astype(np.float32),
    )
    rows = paths.content[counts == 0]
    whole = paths.borrowed(rows)  # default chunk: every row in one block
    monkeypatch.setattr(cold, "_SIM_CHUNK", 26 * 3)  # 3 rows per chunk: 5 chunks, the last of 2 rows
    chunked = paths.borrowed(rows)
    assert chunked.shape == (14, d)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-7)
    # the first cold row by hand: softmax over its 4 most similar warm items
    warm = np.flatnonzero(counts > 0)
    sims = paths.content[warm] @ rows[0]
    top = np.argsort(-sims)[:4]
    w = np.exp((sims[top] - sims[top].max()) / 0.1)
    np.testing.assert_allclose(chunked[0], (w / w.sum()) @ paths.learned[warm[top]], rtol=1e-5, atol=1e-6)
