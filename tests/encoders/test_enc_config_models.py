"""Config validation, prefix families, content hashes and names."""

from __future__ import annotations

import dataclasses
import os

import pytest

from lmrec.encoders import TextEncoderConfig
from lmrec.encoders.model_files import (
    PACKAGED_MODEL_ID,
    PrefixPair,
    default_pooling,
    detect_prefixes,
    encoder_name,
    model_fingerprint,
    resolve_model,
)


def test_config_rejects_unknown_key_naming_it_and_valid_ones():
    with pytest.raises(ValueError, match=r"unknown text encoder setting\(s\) \['modle'\]; valid: \['model', 'backend'"):
        TextEncoderConfig.from_dict({"modle": "x"})


def test_config_rejects_bad_values_naming_them():
    with pytest.raises(ValueError, match=r"backend must be one of .*'onnx-int8'.*got 'onnx-int4'"):
        TextEncoderConfig(backend="onnx-int4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pooling must be one of .* got 'max'"):
        TextEncoderConfig(pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tokens must be >= 1 or None, got 0"):
        TextEncoderConfig(max_tokens=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        TextEncoderConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"int8_recipe must be one of \['keep-down-proj', 'all'\], got 'int4'"):
        TextEncoderConfig(int8_recipe="int4")  # type: ignore[arg-type]


def test_config_round_trips_and_is_frozen():
    cfg = TextEncoderConfig(model="m", backend="onnx-int8", max_tokens=128, query_prefix="")
    assert TextEncoderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("model_id", "query", "passage"),
    [
        ("intfloat/e5-base-v2", "query: ", "passage: "),
        ("intfloat/multilingual-e5-small", "query: ", "passage: "),
        ("/models/multilingual-e5-tiny", "query: ", "passage: "),
        ("BAAI/bge-small-en-v1.5", "Represent this sentence for searching relevant passages: ", ""),
        ("BAAI/bge-small-zh-v1.5", "为这个句子生成表示以用于检索相关文章：", ""),
        ("BAAI/bge-m3", "", ""),
        ("sentence-transformers/all-MiniLM-L6-v2", "", ""),
        ("shibing624/text2vec-base-chinese", "", ""),
        ("my-e5x-model", "", ""),  # "e5" only counts as a whole name part
    ],
)
def test_prefix_families(model_id, query, passage):
    assert detect_prefixes(model_id) == PrefixPair(query, passage)


def test_explicit_prefixes_win_even_when_empty():
    assert detect_prefixes("intfloat/e5-base-v2", query="", passage=None) == PrefixPair("", "passage: ")
    assert detect_prefixes("plain", query="q: ", passage="p: ") == PrefixPair("q: ", "p: ")
    with pytest.raises(ValueError, match="kind must be 'passage' or 'query', got 'document'"):
        PrefixPair().for_kind("document")


def test_encoder_name_changes_with_everything_that_changes_vectors():
    base = dict(pooling="mean", max_length=256, prefixes=PrefixPair(), precision="fp32")
    name = encoder_name("m", "abc", **base)
    assert name == "m@abc/mean/L256/fp32"
    variants = [
        encoder_name("m", "abd", **base),
        encoder_name("m", "abc", **{**base, "pooling": "cls"}),
        encoder_name("m", "abc", **{**base, "max_length": 128}),
        encoder_name("m", "abc", **{**base, "prefixes": PrefixPair("query: ", "")}),
        encoder_name("m", "abc", **{**base, "prefixes": PrefixPair("", "query: ")}),
        encoder_name("m", "abc", **{**base, "precision": "onnx-int8"}),
    ]
    assert len({name, *variants}) == 7


def test_fingerprint_is_stable_and_follows_file_bytes(tmp_path):
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    (tmp_path / "README.md").write_text("docs do not count")
    first = model_fingerprint(tmp_path)
    assert len(first) == 12 and first == model_fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("changed docs")
    assert model_fingerprint(tmp_path) == first
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 63 + b"\x01")
    stat = (tmp_path / "model.safetensors").stat()
    os.utime(tmp_path / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert model_fingerprint(tmp_path) != first


def test_fingerprint_of_empty_directory_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no model files found under"):
        model_fingerprint(tmp_path)


def test_resolve_packaged_model_reads_its_sentence_transformers_settings():
    source = resolve_model(None)
    assert source.model_id == PACKAGED_MODEL_ID
    assert source.is_sentence_transformer
    assert source.st_pooling == "mean" and source.st_max_seq_length == 256
    assert default_pooling(source) == "mean"
    assert resolve_model(source.location).model_id == PACKAGED_MODEL_ID  # same directory, same id


def test_resolve_errors_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="model directory '/no/such/model' does not exist"):
        resolve_model("/no/such/model")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file; give the model directory"):
        resolve_model(tmp_path / "weights.bin")


def test_bge_defaults_to_cls_pooling(tmp_path, tiny_bert):
    source = resolve_model(tiny_bert)
    assert default_pooling(source) == "mean"
    bge = dataclasses.replace(source, model_id="BAAI/bge-small-en-v1.5")
    assert default_pooling(bge) == "cls"


def test_unsupported_sentence_transformers_modules_are_refused_by_plain_backends(tmp_path, tiny_st):
    import json
    import shutil

    target = tmp_path / "with-dense"
    shutil.copytree(tiny_st, target)
    modules = json.loads((target / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (target / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match=r"modules \['sentence_transformers.models.Dense'\] .* use backend='torch'"):
        resolve_model(target).check_plain_pooling()
