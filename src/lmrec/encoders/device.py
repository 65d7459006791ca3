"""Where torch work runs: device names, mixed precision and moving batches.

Every torch model of lmrec takes a ``device`` string and a ``precision``; this module turns them
into a `torch.device` and an autocast dtype once, at the start of ``fit``, so that the models
share one set of rules and one set of error messages:

- ``device``: ``"auto"`` (the first CUDA GPU when there is one, else the CPU; MPS only when asked
  for by name, because some ops lmrec trains with are missing there), ``"cpu"``, ``"cuda"``,
  ``"cuda:N"`` or ``"mps"``. Asking for a device the machine lacks is a `ValueError` that names the
  device and lists the ones that are available, never a silent fall-back to the CPU.
- ``precision``: ``"auto"`` (bf16 autocast on a GPU that supports it, else fp16 autocast with a
  gradient scaler; fp32 on the CPU and MPS), ``"fp32"``, ``"bf16"`` or ``"fp16"``. The weights and
  the optimiser state stay fp32 in every case (autocast only lowers the matmuls).

Batches are built on the host and moved with `to_device` once per step (pinned memory and
``non_blocking`` on CUDA), so the training loop never copies back and forth inside a step.

The module lives in ``encoders`` (the lowest layer that runs torch) so that the encoders, the
training loop and the models share it without an upward import.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import torch

__all__ = [
    "DEVICE_CHOICES",
    "Precision",
    "amp_dtype",
    "autocast",
    "available_devices",
    "check_device",
    "check_precision",
    "grad_scaler",
    "resolve_device",
    "to_device",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
#: the forms a device name can take (``cuda:N`` for any N)
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N", "mps")
_CUDA_N = re.compile(r"^cuda:(\d+)$")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """The device names this machine can run on, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def check_device(value: object, owner: str = "device") -> str:
    """Validate the form of a device name without looking at the hardware (configs call this).

    Args:
        value: the name to check.
        owner: how the message names the setting, e.g. ``"OptimConfig.device"``.

    Returns:
        ``value`` lower-cased.

    Raises:
        ValueError: not a string of one of the `DEVICE_CHOICES` forms.
    """
    if isinstance(value, torch.device):
        value = str(value)
    ok = isinstance(value, str) and (value.lower() in ("auto", "cpu", "cuda", "mps") or _CUDA_N.match(value.lower()))
    if not ok:
        raise ValueError(f"{owner} must be one of {list(DEVICE_CHOICES)}, got {value!r}")
    assert isinstance(value, str)  # checked above
    return value.lower()


def check_precision(value: object, owner: str = "precision") -> str:
    """Validate a precision name; returns it. Raises a `ValueError` naming ``owner`` otherwise."""
    if value not in PRECISIONS:
        raise ValueError(f"{owner} must be one of {list(PRECISIONS)}, got {value!r}")
    return str(value)


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The `torch.device` a device name means on this machine.

    Args:
        spec: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a `torch.device`.

    Returns:
        The device (``"auto"`` and ``"cuda"`` give ``cuda``, torch's current CUDA device).

    Raises:
        ValueError: a malformed name, or a device this machine does not have (the message names
            the device asked for and the available ones).
    """
    name = check_device(spec)
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    have = ", ".join(available_devices())
    if name == "mps":
        if not _mps_available():
            raise ValueError(f"device 'mps' asked for, but MPS is not available on this machine; available: {have}")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available on this machine; available: {have}")
    match = _CUDA_N.match(name)
    if match is not None and int(match.group(1)) >= torch.cuda.device_count():
        raise ValueError(
            f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s); "
            f"available: {have}"
        )
    return torch.device(name)


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32.

    ``"auto"`` is bf16 on a CUDA device that supports it, fp16 on an older GPU, and fp32 on the CPU
    and MPS. An explicit ``"bf16"`` / ``"fp16"`` on the CPU runs CPU autocast in that dtype.

    Raises:
        ValueError: an unknown precision, or ``"bf16"`` on a GPU without bf16 support.
    """
    check_precision(precision)
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"precision 'bf16' asked for, but {device} does not support bf16; use 'fp16' or 'auto'")
        return torch.bfloat16
    return torch.float16


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device`` inside the block (``dtype`` None: do nothing)."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> Any:
    """A `torch.amp.GradScaler` for fp16 on CUDA (small gradients underflow in fp16), else None."""
    if dtype is torch.float16 and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def to_device(batch: Any, device: torch.device | None) -> Any:
    """Move every tensor of ``batch`` (a tensor, or tuples / lists / dicts of them) to ``device``.

    On CUDA the copy is ``non_blocking`` from pinned memory, so the host builds the next batch while
    the GPU works. ``device`` None or a batch already there returns the batch as it is.
    """
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        if batch.device == device or (device.index is None and batch.device.type == device.type):
            return batch
        if device.type == "cuda" and batch.device.type == "cpu":
            return batch.pin_memory().to(device, non_blocking=True)
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(to_device(v, device) for v in batch)
    if isinstance(batch, list):
        return [to_device(v, device) for v in batch]
    return batch
