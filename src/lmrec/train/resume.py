"""Epoch checkpoints that let a training run resume where it stopped (Ray Train's restarts).

`fit_loop` consults the store made active with `resuming`: before its first epoch it loads the last
saved state of the same loop (the network's and the optimiser's state, the scheduler, the epoch
reached, the history and the state of callbacks that have one, such as `EarlyStopping`'s best
weights) and goes on from the next epoch; after every epoch it saves that state. Outside `resuming`
nothing is saved and nothing changes.

A model's ``fit`` may run several loops (a pre-training stage, then the main one): they are numbered
in the order they run inside one `resuming` block. The state to resume from is read once, when the
block starts, and is loaded only into the loop with its number: earlier loops run again (they are
deterministic from the model's seed) without saving, so the checkpoint to resume from stays the
newest, and the interrupted loop continues. A resumed loop draws its later batches from a fresh random stream, so its
result equals an uninterrupted run's in quality, not bit for bit.

`lmrec.train.ray_train` activates a store backed by Ray Train's checkpoints: every rank reports
each epoch, rank 0 with the state, and a restarted worker group starts from the last one.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
from collections.abc import Iterator
from typing import Any, Protocol

import torch

__all__ = [
    "EpochStore",
    "MemoryEpochStore",
    "active_store",
    "from_bytes",
    "next_loop",
    "resume_target",
    "resuming",
    "to_bytes",
]


class EpochStore(Protocol):
    """Where `fit_loop` keeps its epoch states while a store is active."""

    def load(self) -> dict[str, Any] | None:
        """The last saved state (None: start from the beginning)."""
        ...

    def save(self, state: dict[str, Any], metrics: dict[str, float]) -> None:
        """Keep ``state`` (the loop's, after an epoch) with that epoch's loss and validation metrics."""
        ...


class MemoryEpochStore:
    """An `EpochStore` in memory (tests, and a run that retries in the same process).

    Attributes:
        saved: every state saved, oldest first.
    """

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self.saved: list[dict[str, Any]] = [] if initial is None else [initial]

    def load(self) -> dict[str, Any] | None:
        return self.saved[-1] if self.saved else None

    def save(self, state: dict[str, Any], metrics: dict[str, float]) -> None:
        self.saved.append(from_bytes(to_bytes(state)))  # a copy, as a file would keep it


_STORE: contextvars.ContextVar[EpochStore | None] = contextvars.ContextVar("lmrec_epoch_store", default=None)
_TARGET: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("lmrec_epoch_target", default=None)
_LOOPS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("lmrec_epoch_loops", default=None)


@contextlib.contextmanager
def resuming(store: EpochStore) -> Iterator[EpochStore]:
    """Make ``store`` the one every `fit_loop` inside the block saves to and resumes from (its last
    saved state, read now)."""
    tokens = (_STORE.set(store), _TARGET.set(store.load()), _LOOPS.set([0]))
    try:
        yield store
    finally:
        _STORE.reset(tokens[0])
        _TARGET.reset(tokens[1])
        _LOOPS.reset(tokens[2])


def active_store() -> EpochStore | None:
    """The store of the enclosing `resuming` block (None outside one)."""
    return _STORE.get()


def resume_target() -> dict[str, Any] | None:
    """The state the enclosing `resuming` block goes on from (None: none, or outside a block)."""
    return _TARGET.get()


def next_loop() -> int:
    """Number the next training loop of the enclosing `resuming` block (0, 1, ...; 0 outside one)."""
    counter = _LOOPS.get()
    if counter is None:
        return 0
    counter[0] += 1
    return counter[0] - 1


def to_bytes(state: dict[str, Any]) -> bytes:
    """``state`` (tensors, numbers, strings, lists and dicts of them) in torch's safe format."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> dict[str, Any]:
    """What `to_bytes` wrote (weights-only loading: no code runs)."""
    out = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(out, dict):
        raise ValueError(f"an epoch checkpoint holds a {type(out).__name__}, expected a dict")
    return out
