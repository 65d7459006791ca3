"""Device names, mixed precision and batch moves (`lmrec.encoders.device`), and `fit_loop` on them.

The machine running the suite may have no GPU: CUDA's presence is mocked where a test needs it.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from lmrec.encoders.device import (
    amp_dtype,
    available_devices,
    check_device,
    check_precision,
    grad_scaler,
    resolve_device,
    to_device,
)
from lmrec.train import fit_loop


def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def two_gpus(monkeypatch: pytest.MonkeyPatch, bf16: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


# ---------------------------------------------------------------------- names
def test_auto_is_the_cpu_without_a_gpu_and_cuda_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    no_gpu(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    assert available_devices() == ["cpu"]
    two_gpus(monkeypatch)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("CUDA:1") == torch.device("cuda:1")
    assert available_devices() == ["cpu", "cuda:0", "cuda:1"]


def test_cuda_without_a_gpu_names_the_device_and_what_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    no_gpu(monkeypatch)
    message = "device 'cuda' asked for, but CUDA is not available on this machine; available: cpu"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match=re.escape("device 'cuda:0' asked for, but CUDA is not available")):
        resolve_device("cuda:0")


def test_a_gpu_index_past_the_last_one_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    two_gpus(monkeypatch)
    message = "device 'cuda:2' asked for, but this machine has 2 CUDA device(s); available: cpu, cuda:0, cuda:1"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        resolve_device("cuda:2")


def test_mps_without_mps_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    no_gpu(monkeypatch)
    with pytest.raises(ValueError, match=r"^device 'mps' asked for, but MPS is not available on this machine"):
        resolve_device("mps")


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "", 0, None])
def test_a_malformed_name_lists_the_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=re.escape("X.device must be one of ['auto', 'cpu', 'cuda', 'cuda:N', 'mps']")):
        check_device(bad, "X.device")


def test_precision_names_are_checked() -> None:
    assert check_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match=re.escape("p must be one of ['auto', 'fp32', 'bf16', 'fp16'], got 'half'")):
        check_precision("half", "p")


# ---------------------------------------------------------------------- precision
def test_auto_precision_is_fp32_on_the_cpu_and_bf16_or_fp16_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda:0")
    assert amp_dtype(cpu, "auto") is None
    assert amp_dtype(cpu, "bf16") is torch.bfloat16  # CPU autocast when asked for by name
    two_gpus(monkeypatch, bf16=True)
    assert amp_dtype(gpu, "auto") is torch.bfloat16
    assert amp_dtype(gpu, "fp32") is None
    two_gpus(monkeypatch, bf16=False)
    assert amp_dtype(gpu, "auto") is torch.float16
    with pytest.raises(ValueError, match=r"^precision 'bf16' asked for, but cuda:0 does not support bf16"):
        amp_dtype(gpu, "bf16")


def test_a_scaler_only_for_fp16_on_cuda() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert grad_scaler(cpu, torch.float16) is None
    assert grad_scaler(gpu, torch.bfloat16) is None
    assert grad_scaler(gpu, None) is None
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else _nothing():
        assert isinstance(grad_scaler(gpu, torch.float16), torch.amp.GradScaler)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# ---------------------------------------------------------------------- moving batches
def test_to_device_moves_nested_batches_and_keeps_their_shape() -> None:
    x, y = torch.arange(3), torch.ones(2)
    batch = {"a": x, "b": (y, [x]), "n": 5}
    assert to_device(batch, None) is batch
    moved = to_device(batch, torch.device("cpu"))
    assert moved["a"] is x and moved["b"][0] is y and moved["b"][1][0] is x and moved["n"] == 5
    assert isinstance(moved["b"], tuple) and isinstance(moved["b"][1], list)


# ---------------------------------------------------------------------- the loop on a device
def _problem() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    return x, x @ torch.tensor([[2.0], [-1.0], [0.5]])


def _batches(x: torch.Tensor, y: torch.Tensor):
    def batches(epoch: int):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(x), 16):
            yield x[order[start : start + 16]], y[order[start : start + 16]]

    return batches


def _mse(module: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return ((module(x).float() - y) ** 2).mean()


def test_fit_loop_on_an_explicit_device_equals_the_default_run() -> None:
    x, y = _problem()
    nets = []
    for device in (None, torch.device("cpu")):
        torch.manual_seed(0)
        net = nn.Linear(3, 1, bias=False)
        fit_loop(net, _batches(x, y), _mse, torch.optim.SGD(net.parameters(), lr=0.1), epochs=5, device=device)
        nets.append(net.weight.detach())
    torch.testing.assert_close(nets[0], nets[1], atol=0, rtol=0)


def test_fit_loop_under_bf16_autocast_keeps_fp32_weights_and_learns() -> None:
    x, y = _problem()
    torch.manual_seed(0)
    net = nn.Linear(3, 1, bias=False)
    seen: list[torch.dtype] = []

    def loss(module: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        seen.append(module(batch[0]).dtype)
        return _mse(module, batch)

    fit_loop(net, _batches(x, y), loss, torch.optim.SGD(net.parameters(), lr=0.1), epochs=40, amp_dtype=torch.bfloat16)
    assert seen[0] is torch.bfloat16 and net.weight.dtype is torch.float32
    # bf16 keeps 8 bits of mantissa: the map is learned to about 1e-2
    torch.testing.assert_close(net.weight.detach(), torch.tensor([[2.0, -1.0, 0.5]]), atol=3e-2, rtol=0)


def test_the_gradient_scaler_path_scales_unscales_and_learns(monkeypatch: pytest.MonkeyPatch) -> None:
    # the fp16-on-CUDA path, exercised on the CPU with a CPU scaler: scale -> unscale -> clip -> step
    import lmrec.train.loop as loop

    scalers: list[torch.amp.GradScaler] = []

    def cpu_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
        scalers.append(torch.amp.GradScaler("cpu", init_scale=2.0**10))
        return scalers[-1]

    monkeypatch.setattr(loop, "grad_scaler", cpu_scaler)
    x, y = _problem()
    torch.manual_seed(0)
    net = nn.Linear(3, 1, bias=False)
    fit_loop(net, _batches(x, y), _mse, torch.optim.SGD(net.parameters(), lr=0.1), epochs=40, grad_clip=100.0)
    assert len(scalers) == 1 and scalers[0].get_scale() >= 2.0**10  # no overflow: the scale never dropped
    torch.testing.assert_close(net.weight.detach(), torch.tensor([[2.0, -1.0, 0.5]]), atol=1e-3, rtol=0)
