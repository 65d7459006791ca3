"""Callbacks for `lmrec.train.fit_loop`: early stopping, checkpoints, progress and logging.

A callback subclasses `Callback` and overrides the hooks it needs. Each hook receives the
`TrainState` (epoch, step, losses, the last validation metrics, the history) and the module.
Setting ``state.stop = True`` ends training after the current epoch.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["Callback", "TrainState", "EarlyStopping", "Checkpoint", "ProgressBar", "LogMetrics"]

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """What the loop knows, shared with callbacks.

    Attributes:
        epochs: the number of epochs asked for.
        epoch: the current epoch, 0-based.
        step: optimiser steps taken so far.
        batch_loss: loss of the last batch.
        epoch_loss: mean training loss of the current (or last finished) epoch.
        metrics: the last validation result (empty before the first validation).
        history: one dict per finished epoch: ``epoch``, ``loss`` and the validation metrics.
        stop: set by a callback to stop after this epoch.
        resumed_from: the last epoch of a saved state this run went on from (`lmrec.train.resume`);
            None for a run from the start.
    """

    epochs: int
    epoch: int = 0
    step: int = 0
    batch_loss: float = math.nan
    epoch_loss: float = math.nan
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
    resumed_from: int | None = None

    def value(self, monitor: str) -> float | None:
        """The monitored quantity this epoch: a validation metric, or ``"loss"`` for the train loss."""
        if monitor == "loss":
            return self.epoch_loss
        return self.metrics.get(monitor)


class Callback:
    """Base class; every hook is a no-op."""

    def on_train_begin(self, state: TrainState, module: nn.Module) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, state: TrainState, module: nn.Module) -> None:
        """Before each epoch's first batch."""

    def on_batch_end(self, state: TrainState, module: nn.Module) -> None:
        """After each optimiser step (``state.batch_loss`` is set)."""

    def on_epoch_end(self, state: TrainState, module: nn.Module) -> None:
        """After each epoch and its validation (``state.metrics`` holds this epoch's result)."""

    def on_train_end(self, state: TrainState, module: nn.Module) -> None:
        """After the last epoch, or after a callback stopped training."""


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class EarlyStopping(Callback):
    """Stop when the monitored value has not improved for ``patience`` validations; restore the best.

    Epochs without the monitored value (no validation that epoch) are not counted.

    Args:
        monitor: a key of the validation dict (``"ndcg@10"``) or ``"loss"`` for the training loss.
        mode: ``"max"`` when higher is better, ``"min"`` otherwise.
        patience: validations without improvement before stopping.
        min_delta: how much better counts as an improvement.
        restore_best: load the best weights back into the module when training ends.

    Attributes:
        best: the best monitored value seen (None before the first).
        best_epoch: the epoch it was seen at (0-based, -1 before).
    """

    def __init__(
        self,
        monitor: str = "ndcg@10",
        mode: Literal["max", "min"] = "max",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best: float | None = None
        self.best_epoch = -1
        self._bad = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def on_train_begin(self, state: TrainState, module: nn.Module) -> None:
        self.best, self.best_epoch, self._bad, self._best_state = None, -1, 0, None

    def on_epoch_end(self, state: TrainState, module: nn.Module) -> None:
        value = state.value(self.monitor)
        if value is None or math.isnan(value):
            return
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self._bad = value, state.epoch, 0
            if self.restore_best:
                self._best_state = _snapshot(module)
        else:
            self._bad += 1
            if self._bad >= self.patience:
                log.info(
                    "early stopping at epoch %d; best %s %.5f at epoch %d",
                    state.epoch,
                    self.monitor,
                    self.best,
                    self.best_epoch,
                )
                state.stop = True

    def on_train_end(self, state: TrainState, module: nn.Module) -> None:
        if self.restore_best and self._best_state is not None:
            module.load_state_dict(self._best_state)

    def state_dict(self) -> dict[str, Any]:
        """What an epoch checkpoint keeps of this callback (`lmrec.train.resume`)."""
        return {"best": self.best, "best_epoch": self.best_epoch, "bad": self._bad, "best_state": self._best_state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Go on from a `state_dict` (after ``on_train_begin``)."""
        self.best, self.best_epoch, self._bad = saved["best"], int(saved["best_epoch"]), int(saved["bad"])
        self._best_state = saved["best_state"]


class Checkpoint(Callback):
    """Write the module's weights as safetensors (``directory/filename``) plus ``checkpoint.json``.

    Args:
        directory: where to write.
        monitor: save only when this value improves; None saves after every epoch.
        mode: ``"max"`` or ``"min"`` for ``monitor``.
        filename: the weights file name.
    """

    def __init__(
        self,
        directory: str | Path,
        monitor: str | None = None,
        mode: Literal["max", "min"] = "max",
        filename: str = "model.safetensors",
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.directory, self.monitor, self.mode, self.filename = Path(directory), monitor, mode, filename
        self.best: float | None = None

    @property
    def path(self) -> Path:
        return self.directory / self.filename

    def on_epoch_end(self, state: TrainState, module: nn.Module) -> None:
        if self.monitor is not None:
            value = state.value(self.monitor)
            if value is None or not _improved(value, self.best, self.mode, 0.0):
                return
            self.best = value
        self.save(module, {"epoch": state.epoch, "loss": state.epoch_loss, **state.metrics})

    def save(self, module: nn.Module, info: dict[str, float]) -> None:
        from safetensors.torch import save_file

        self.directory.mkdir(parents=True, exist_ok=True)
        # clone so tied weights become separate tensors (safetensors refuses shared storage)
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
        save_file(tensors, str(self.path))
        (self.directory / "checkpoint.json").write_text(json.dumps(info, default=float))

    @staticmethod
    def load_into(module: nn.Module, path: str | Path) -> nn.Module:
        """Load a checkpoint written by `Checkpoint` into ``module`` (strict)."""
        from safetensors.torch import load_file

        device = next(module.parameters()).device
        module.load_state_dict(load_file(str(path), device=str(device)))
        return module


def _fmt(state: TrainState) -> dict[str, str]:
    out = {"loss": f"{state.epoch_loss:.4f}"}
    out.update({k: f"{v:.4f}" for k, v in state.metrics.items()})
    return out


class ProgressBar(Callback):
    """A tqdm bar over epochs with the training loss and validation metrics in its postfix."""

    def __init__(self, desc: str = "train") -> None:
        self.desc = desc
        self._bar = None

    def on_train_begin(self, state: TrainState, module: nn.Module) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=state.epochs, desc=self.desc, unit="epoch")

    def on_batch_end(self, state: TrainState, module: nn.Module) -> None:
        if self._bar is not None and state.step % 20 == 0:
            self._bar.set_postfix(batch_loss=f"{state.batch_loss:.4f}", refresh=False)

    def on_epoch_end(self, state: TrainState, module: nn.Module) -> None:
        if self._bar is not None:
            self._bar.set_postfix(_fmt(state), refresh=False)
            self._bar.update(1)

    def on_train_end(self, state: TrainState, module: nn.Module) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class LogMetrics(Callback):
    """Log the epoch's loss and validation metrics at INFO level."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log

    def on_epoch_end(self, state: TrainState, module: nn.Module) -> None:
        parts = " ".join(f"{k}={v}" for k, v in _fmt(state).items())
        self.logger.info("epoch %d/%d %s", state.epoch + 1, state.epochs, parts)
