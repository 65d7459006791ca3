"""Real semantics with the packaged all-MiniLM-L6-v2 (offline; no hub access)."""

from __future__ import annotations

import numpy as np
import pytest

from lmrec.encoders import make_text_encoder

pytestmark = pytest.mark.integration

MOVIES = ["Star Wars (1977)", "Sense and Sensibility (1995)"]
QUERIES = ["a science-fiction movie about space battles", "sci-fi adventure in outer space", "science fiction"]


@pytest.fixture(scope="module", autouse=True)
def _offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def minilm(_offline):
    return make_text_encoder()  # None -> the packaged model directory


def test_default_model_is_the_packaged_minilm(minilm):
    assert minilm.name.startswith("sentence-transformers/all-MiniLM-L6-v2@")
    assert minilm.name.endswith("/mean/L256/fp32")
    assert minilm.dim == 384


def test_science_fiction_queries_are_closer_to_star_wars(minilm):
    movies = minilm.encode(MOVIES)
    queries = minilm.encode(QUERIES, kind="query")
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    sims = queries @ movies.T  # (3 queries, 2 movies)
    assert (sims[:, 0] > sims[:, 1]).all(), sims
    # romance goes the other way
    romance = minilm.encode(["a romantic period drama about two sisters and marriage"], kind="query")
    assert float(romance[0] @ movies[1]) > float(romance[0] @ movies[0])


@pytest.mark.slow
def test_onnx_int8_minilm_stays_close_to_fp32(minilm, tmp_path):
    texts = MOVIES + QUERIES + ["Uni-ball Jetstream retractable pen, black ink, bold point, dozen"]
    int8 = make_text_encoder(None, "onnx-int8", export_dir=tmp_path)
    assert int8.name != minilm.name and int8.name.endswith("/onnx-int8-keep-down-proj")
    cos = (int8.encode(texts) * minilm.encode(texts)).sum(axis=1)
    assert cos.min() >= 0.98, cos
