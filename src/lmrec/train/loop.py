"""One generic training loop for every torch model in lmrec.

The loop knows nothing about recommenders: the caller supplies

- ``batches(epoch) -> Iterable[Batch]``: a fresh iterable per epoch (shuffle with a seed derived
  from ``epoch`` for reproducibility); a batch is whatever ``loss_fn`` understands;
- ``loss_fn(module, batch) -> scalar tensor``: the forward pass plus a loss from
  `lmrec.train.losses`;
- ``validate() -> dict[str, float]``: optional, run under ``torch.no_grad`` in eval mode after
  every ``validate_every`` epochs; callbacks such as `EarlyStopping` read its keys.

Example::

    state = fit_loop(net, batches, lambda m, b: ce(m(b.x), b.y), torch.optim.Adam(net.parameters()),
                     epochs=50, validate=lambda: {"ndcg@10": evaluate(net)},
                     callbacks=[EarlyStopping("ndcg@10", patience=5)])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmrec.encoders.device import autocast, grad_scaler, to_device
from lmrec.train.callbacks import Callback, ProgressBar, TrainState
from lmrec.train.distributed import average_gradients_
from lmrec.train.resume import active_store, next_loop, resume_target

__all__ = ["fit_loop"]

log = logging.getLogger(__name__)

Batch = Any


def fit_loop(
    module: nn.Module,
    batches: Callable[[int], Iterable[Batch]],
    loss_fn: Callable[[Any, Batch], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    callbacks: Sequence[Callback] = (),
    validate: Callable[[], dict[str, float]] | None = None,
    validate_every: int = 1,
    grad_clip: float | None = None,
    scheduler: Any | None = None,
    show_progress: bool = False,
    device: torch.device | None = None,
    amp_dtype: torch.dtype | None = None,
    average_gradients: bool = False,
) -> TrainState:
    """Train ``module`` for up to ``epochs`` epochs.

    Args:
        module: the network; put in train mode for batches and eval mode for validation.
        batches: ``epoch -> iterable of batches``.
        loss_fn: ``(module, batch) -> scalar loss``.
        optimizer: steps once per batch.
        epochs: the maximum number of epochs.
        callbacks: hooks run in order (see `lmrec.train.callbacks`).
        validate: returns metrics such as ``{"ndcg@10": 0.31}``; None for no validation.
        validate_every: validate after every this many epochs (and after the last).
        grad_clip: clip the global gradient norm to this value when given.
        scheduler: an LR scheduler stepped once per epoch, when given.
        show_progress: add a `ProgressBar` when ``callbacks`` has none.
        device: move ``module`` there and each batch there once per step (`lmrec.encoders.device`);
            None leaves both where they are.
        amp_dtype: run ``loss_fn`` under autocast to this dtype (`lmrec.encoders.device.amp_dtype`);
            fp16 on CUDA adds a gradient scaler. None: fp32.
        average_gradients: inside ``torch.distributed``, average every optimised parameter's gradient
            over the ranks after each backward pass (data parallelism for a ``loss_fn`` that does not
            go through one ``forward``, where DDP cannot hook in; see `lmrec.train.distributed`).

    Returns:
        The final `TrainState` (``history`` holds the loss and metrics of every epoch).

    Raises:
        ValueError: ``epochs`` or ``validate_every`` below 1.
        FloatingPointError: the loss became NaN or infinite.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if validate_every < 1:
        raise ValueError(f"validate_every must be >= 1, got {validate_every}")
    callbacks = list(callbacks)
    if show_progress and not any(isinstance(c, ProgressBar) for c in callbacks):
        callbacks.append(ProgressBar())
    if device is not None:
        module.to(device)
    run_on = device if device is not None else _device_of(module)
    scaler = grad_scaler(run_on, amp_dtype)
    state = TrainState(epochs=epochs)
    for cb in callbacks:
        cb.on_train_begin(state, module)
    store, loop_id, target = active_store(), next_loop(), resume_target()
    parts = _Resumable(module, optimizer, scheduler, scaler, callbacks)
    start = parts.resume(target, loop_id, state)
    if target is not None and int(target["loop"]) > loop_id:
        store = None  # a loop before the one to resume: run it again, keep the newer checkpoint
    try:
        for epoch in range(start, epochs):
            state.epoch, state.metrics = epoch, {}
            for cb in callbacks:
                cb.on_epoch_begin(state, module)
            module.train()
            total, count = 0.0, 0
            for batch in batches(epoch):
                batch = to_device(batch, device)
                optimizer.zero_grad(set_to_none=True)
                with autocast(run_on, amp_dtype):
                    loss = loss_fn(module, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {state.step}")
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)  # clip the true gradients
                else:
                    loss.backward()
                if average_gradients:
                    average_gradients_(optimizer)
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                state.step += 1
                state.batch_loss = float(loss.detach())
                total, count = total + state.batch_loss, count + 1
                for cb in callbacks:
                    cb.on_batch_end(state, module)
            state.epoch_loss = total / count if count else math.nan
            if scheduler is not None:
                scheduler.step()
            if validate is not None and ((epoch + 1) % validate_every == 0 or epoch + 1 == epochs):
                module.eval()
                with torch.no_grad():
                    state.metrics = {k: float(v) for k, v in validate().items()}
                module.train()
            state.history.append({"epoch": float(epoch), "loss": state.epoch_loss, **state.metrics})
            for cb in callbacks:
                cb.on_epoch_end(state, module)
            if store is not None:
                store.save(
                    parts.state(loop_id, state),
                    {"loss": state.epoch_loss, **state.metrics},
                )
            if state.stop:
                break
    finally:
        for cb in callbacks:
            cb.on_train_end(state, module)
        module.eval()
    return state


@dataclass(frozen=True)
class _Resumable:
    """What an epoch checkpoint holds the state of, besides the `TrainState`."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any | None
    scaler: Any | None
    callbacks: Sequence[Callback]

    def state(self, loop_id: int, state: TrainState) -> dict[str, Any]:
        """What `lmrec.train.resume` keeps after an epoch: enough to go on from the next one."""
        return {
            "loop": loop_id,
            "epoch": state.epoch,
            "step": state.step,
            "stop": state.stop,
            "history": state.history,
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "callbacks": {str(i): cb.state_dict() for i, cb in enumerate(self.callbacks) if hasattr(cb, "state_dict")},
        }

    def resume(self, saved: dict[str, Any] | None, loop_id: int, state: TrainState) -> int:
        """Load ``saved`` (`lmrec.train.resume.resume_target`) when it is this loop's; the first epoch to run."""
        if saved is None or saved.get("loop") != loop_id:
            return 0
        self.module.load_state_dict(saved["module"])
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved.get("scheduler") is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler is not None and saved.get("scaler") is not None:
            self.scaler.load_state_dict(saved["scaler"])
        for i, cb in enumerate(self.callbacks):
            kept = saved["callbacks"].get(str(i))
            if kept is not None and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(kept)
        state.step, state.history = int(saved["step"]), list(saved["history"])
        state.epoch = state.resumed_from = int(saved["epoch"])
        log.info("resuming training loop %d after epoch %d of %d", loop_id, state.epoch, state.epochs)
        # a saved state that had stopped (early stopping) has nothing left to run
        return state.epochs if saved.get("stop") else state.epoch + 1


def _device_of(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (the CPU for a module without parameters)."""
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
