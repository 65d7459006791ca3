"""``lmrec train / evaluate / encode --device``: a missing GPU is a clear error (exit 2), and the
device reaches the torch models' parameters (and only theirs)."""

from __future__ import annotations

import json
import re

import pytest
import torch
from typer.testing import CliRunner

from lmrec.cli import app

MESSAGE = "device 'cuda' asked for, but CUDA is not available on this machine; available: cpu"


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def synth_dir(tmp_path):
    out = tmp_path / "synth"
    result = _invoke(
        "data", "synth", "--out", str(out), "--users", "40", "--items", "30", "--events", "400", "--seed", "1"
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--data", "ml-100k", "--model", "sasrec", "--out", "unused", "--device", "cuda"],
        ["evaluate", "--data", "ml-100k", "--models", "pop,sasrec", "--device", "cuda"],
        ["encode", "--data", "ml-100k", "--out", "unused.npy", "--backend", "fake", "--device", "cuda"],
    ],
)
def test_device_cuda_without_a_gpu_exits_2_naming_the_device(no_gpu: None, args: list[str]) -> None:
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert MESSAGE in re.sub(r"\s+", " ", result.output)


def test_train_writes_the_device_into_the_torch_models_config(no_gpu: None, synth_dir, tmp_path) -> None:
    out = tmp_path / "model"
    result = _invoke(
        "train", "--data", str(synth_dir), "--model", "sasrec", "--out", str(out), "--device", "cpu",
        "--param", "sasrec.epochs=1", "--param", "sasrec.hidden=8", "--param", "sasrec.n_heads=1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert '"device": "cpu"' in json.dumps(config)  # the model's parameters, as saved


def test_the_device_is_left_out_for_models_without_one() -> None:
    from lmrec.cli import _with_device
    from lmrec.config import ModelConfig

    assert _with_device(ModelConfig("pop"), "cpu") == ModelConfig("pop")
    assert _with_device(ModelConfig("sasrec", {"epochs": 1}), "cpu").params == {"epochs": 1, "device": "cpu"}
    assert _with_device(ModelConfig("lm"), "cpu").params == {"optim.device": "cpu"}


def test_progress_is_on_for_models_that_have_it_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from lmrec.cli import _with_progress
    from lmrec.config import ModelConfig

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert _with_progress(ModelConfig("sasrec")) == ModelConfig("sasrec")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert _with_progress(ModelConfig("sasrec")).params == {"show_progress": True}
    assert _with_progress(ModelConfig("lm")).params == {"show_progress": True}
    assert _with_progress(ModelConfig("pop")) == ModelConfig("pop")  # no such setting
    assert _with_progress(ModelConfig("sasrec", {"show_progress": False})).params == {"show_progress": False}
