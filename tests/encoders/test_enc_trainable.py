"""The fine-tuning hook: full and LoRA training, names that follow the weights, save/load round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmrec.encoders import TextEncoder, make_text_encoder
from lmrec.encoders.hf import HFTextEncoder
from lmrec.encoders.trainable import TrainableTextEncoder

TEXTS = ["red pen", "black ink printer", "a desk lamp for the office", "我想买一支红色的钢笔"]


def _step(encoder: TrainableTextEncoder, lr: float = 0.5) -> float:
    """One SGD step pulling "red pen" towards "black ink printer"; returns the loss."""
    torch.manual_seed(0)  # dropout is active in train mode
    opt = torch.optim.SGD(encoder.trainable_parameters(), lr=lr)
    a = encoder(**encoder.tokenize(["red pen"]))
    b = encoder(**encoder.tokenize(["black ink printer"]))
    loss = 1.0 - (a * b).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def test_untrained_encoder_equals_the_hf_backend(tiny_bert):
    enc = TrainableTextEncoder(tiny_bert)
    assert isinstance(enc, TextEncoder)
    hf = HFTextEncoder(tiny_bert)
    assert enc.name == hf.name
    np.testing.assert_allclose(enc.encode(TEXTS, batch_size=3), hf.encode(TEXTS), atol=1e-5)


def test_full_fine_tuning_changes_vectors_and_name_and_round_trips(tiny_bert, tmp_path):
    enc = TrainableTextEncoder(tiny_bert).train_mode(lora=False)
    assert enc.training and enc.mode_ == "full"
    out = enc(**enc.tokenize(["red pen"]))
    assert out.requires_grad and out.shape == (1, 32)
    before, name_before = enc.encode(TEXTS), enc.name
    assert enc.training  # encode() restores train mode

    def distance() -> float:
        return 1.0 - float((enc.encode(["red pen"]) @ enc.encode(["black ink printer"]).T)[0, 0])

    distance_before = distance()
    _step(enc)
    assert distance() < distance_before
    after = enc.encode(TEXTS)
    assert np.abs(after - before).max() > 1e-3
    assert enc.name != name_before and "/full-" in enc.name
    enc.save(tmp_path / "enc")
    assert (tmp_path / "enc" / "model" / "model.safetensors").exists()
    loaded = TrainableTextEncoder.load(tmp_path / "enc")
    assert loaded.name == enc.name
    np.testing.assert_allclose(loaded.encode(TEXTS), after, atol=1e-6)


def test_lora_trains_only_adapters_saves_only_them_and_round_trips(tiny_bert, tmp_path):
    base = TrainableTextEncoder(tiny_bert)
    base_vectors = base.encode(TEXTS)
    enc = TrainableTextEncoder(tiny_bert).train_mode(lora=True, r=4, alpha=8, target_modules=["query", "value"])
    trainable = enc.trainable_parameters()
    # 2 layers x (query, value) x (A: 4x32, B: 32x4) = 4 modules x 256 = 1024 parameters
    assert sum(p.numel() for p in trainable) == 1024
    assert all("lora_" in n for n, p in enc.named_parameters() if p.requires_grad)
    # LoRA's B starts at zero: before a step the encoder is the base model, under a new name
    np.testing.assert_allclose(enc.encode(TEXTS), base_vectors, atol=1e-6)
    frozen_before = {n: p.detach().clone() for n, p in enc.named_parameters() if not p.requires_grad}
    _step(enc)
    assert all(torch.equal(frozen_before[n], p) for n, p in enc.named_parameters() if not p.requires_grad)
    tuned = enc.encode(TEXTS)
    assert np.abs(tuned - base_vectors).max() > 1e-4
    assert enc.name.startswith(base.name + "/lora-")
    enc.save(tmp_path / "lora")
    files = {p.name for p in (tmp_path / "lora").iterdir()}
    assert files == {"config.json", "adapter.safetensors"}
    assert (tmp_path / "lora" / "adapter.safetensors").stat().st_size < 20_000
    loaded = TrainableTextEncoder.load(tmp_path / "lora")
    assert loaded.mode_ == "lora" and loaded.name == enc.name
    np.testing.assert_allclose(loaded.encode(TEXTS), tuned, atol=1e-6)


def test_lora_load_refuses_a_different_base_model(tiny_bert, tmp_path):
    from enc_helpers import write_tiny_bert

    enc = TrainableTextEncoder(tiny_bert).train_mode(lora=True, r=2)
    enc.save(tmp_path / "lora")
    other = write_tiny_bert(tmp_path / "other-bert", seed=1)
    with pytest.raises(ValueError, match="has content hash .* but the adapter was trained on"):
        TrainableTextEncoder.load(tmp_path / "lora", base_model=other)


def test_train_mode_misuse_is_explained(tiny_bert, tmp_path):
    enc = TrainableTextEncoder(tiny_bert).train_mode(lora=True, r=2)
    with pytest.raises(ValueError, match="already attached"):
        enc.train_mode(lora=True)
    with pytest.raises(ValueError, match="full fine-tuning needs a fresh encoder"):
        enc.train_mode(lora=False)
    with pytest.raises(ValueError, match="holds no saved text encoder"):
        TrainableTextEncoder.load(tmp_path)


def test_merged_export_serves_the_tuned_vectors_on_every_backend(tiny_bert, tmp_path):
    enc = TrainableTextEncoder(tiny_bert).train_mode(lora=True, r=4)
    _step(enc)
    tuned = enc.encode(TEXTS)
    out = enc.export_merged(tmp_path / "merged")
    for backend in ("torch", "onnx"):
        served = make_text_encoder(str(out), backend, export_dir=tmp_path / "onnx")
        np.testing.assert_allclose(served.encode(TEXTS), tuned, atol=1e-4)
