"""Data-parallel training inside ``torch.distributed`` (what Ray Train's workers run in).

A model's ``fit`` calls `data_parallel` once: outside a process group it returns rank 0 of 1 and
nothing changes; inside one (`lmrec.train.ray_train` starts it with gloo on the CPU, nccl on GPUs)
the model takes its share of every global batch with `shard_batches` and averages the gradients:
with `wrap_ddp` (SASRec, whose loss goes through the network's ``forward``) or with
`average_gradients_` after each backward pass (the lm model, whose loss reads its towers
directly). ``W`` workers at ``batch_size / W`` rows each then make the optimiser steps of one
worker at ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["average_gradients_", "data_parallel", "shard_batches", "unwrap", "wrap_ddp"]


def data_parallel() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside a ``torch.distributed`` group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_batches(order: torch.Tensor, batch_size: int, rank: int, world: int) -> Iterator[torch.Tensor]:
    """This rank's rows of each global batch of ``order`` (every rank gets the same number of steps).

    Global batch ``b`` is ``order[b * batch_size : (b + 1) * batch_size]``, cut into ``world`` near-equal
    parts; rank ``r`` takes part ``r``. A last global batch with fewer rows than ranks is dropped
    (a rank without rows could not join the gradient average).

    Args:
        order: (n,) row indices in this epoch's order (the same on every rank).
        batch_size: rows of a global batch.
        rank / world: this process and the number of processes.
    """
    if world == 1:
        yield from order.split(batch_size)
        return
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        if len(rows) < world:
            break
        bounds = np.linspace(0, len(rows), world + 1).astype(int)
        yield rows[bounds[rank] : bounds[rank + 1]]


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` (already on ``device``) in `DistributedDataParallel`; as it is outside a group."""
    if data_parallel()[1] == 1:
        return module
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a `DistributedDataParallel` wrapper (``module`` itself otherwise)."""
    inner = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
    assert isinstance(inner, nn.Module)
    return inner


def average_gradients_(optimizer: torch.optim.Optimizer) -> None:
    """Average the gradients of ``optimizer``'s parameters over the ranks, in place (one all-reduce).

    A parameter without a gradient on this rank counts as a zero gradient, so every rank reduces
    the same flat layout even when a head had no rows in its share of the batch. Outside a process
    group this does nothing.
    """
    world = data_parallel()[1]
    if world == 1:
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])  # (total parameters,)
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        size = p.numel()
        p.grad = flat[offset : offset + size].view_as(p).clone()
        offset += size
