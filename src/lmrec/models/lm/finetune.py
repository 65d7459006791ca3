"""Optional LoRA fine-tuning of the language model inside the interest model's training.

With ``finetune_lm="lora"`` the text encoder is a `lmrec.encoders.TrainableTextEncoder` with LoRA
adapters (peft). Each training step re-encodes, with gradients, the text of up to
``items_per_step`` of the batch's target items and puts those vectors in place of their cached
ones, so the next-item loss reaches the adapters; after each epoch every item text is re-encoded
without gradients to refresh the cache. The whitening fitted on the initial vectors is kept.

This costs one LM forward and backward pass per step plus one catalogue encode per epoch, which is
why it is off by default: on a CPU it multiplies training time many times over. User-text vectors
stay those of the initial encoder (the gate was trained on them).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from lmrec.encoders.trainable import TrainableTextEncoder
from lmrec.train.callbacks import Callback, TrainState

__all__ = ["LoraTuner", "load_lora", "lora_arrays", "make_lora_encoder"]

log = logging.getLogger(__name__)


def make_lora_encoder(model: str | None, rank: int) -> Any:
    """A `TrainableTextEncoder` for ``model`` (None: packaged MiniLM) with LoRA adapters of rank ``rank``."""
    return TrainableTextEncoder(model).train_mode(lora=True, r=rank, alpha=2 * rank)


class LoraTuner(Callback):
    """Keeps the item-text cache in step with a LoRA-tuned encoder and keeps the best adapters.

    Args:
        encoder: the trainable encoder (LoRA attached).
        texts: every item's text in index order.
        text_buffer: the item tower's (n_items, D) text-vector buffer, refreshed in place.
        items_per_step: targets re-encoded with gradients per step.
        generator: picks which targets are re-encoded.
        monitor: the validation key whose best epoch's adapters are kept (as `EarlyStopping` does).
    """

    def __init__(
        self,
        encoder: Any,
        texts: list[str],
        text_buffer: torch.Tensor,
        items_per_step: int,
        generator: torch.Generator,
        monitor: str = "ndcg@10",
    ) -> None:
        self.encoder, self.texts, self.buffer = encoder, texts, text_buffer
        self.items_per_step, self.generator, self.monitor = items_per_step, generator, monitor
        self.best: float | None = None
        self._best_state: dict[str, torch.Tensor] | None = None

    def fresh_text(self, targets: torch.Tensor) -> torch.Tensor:
        """(n_items, D) text vectors: cached rows, with up to ``items_per_step`` targets re-encoded
        with gradients."""
        unique = torch.unique(targets)
        order = torch.randperm(len(unique), generator=self.generator, device=unique.device)
        pick = unique[order[: self.items_per_step]]
        self.encoder.train()
        fresh = self.encoder(**self.encoder.tokenize([self.texts[i] for i in pick.tolist()]))  # (k, D)
        return self.buffer.detach().index_put((pick,), fresh.to(self.buffer.dtype))

    @torch.no_grad()
    def refresh(self) -> None:
        vecs = self.encoder.encode(self.texts, batch_size=64)
        self.buffer.copy_(torch.from_numpy(np.asarray(vecs, dtype=np.float32)))

    def on_epoch_end(self, state: TrainState, module: nn.Module) -> None:
        self.refresh()
        value = state.value(self.monitor)
        if value is None or math.isnan(value):
            return
        if self.best is None or value > self.best:
            self.best = value
            self._best_state = lora_state(self.encoder)

    def on_train_end(self, state: TrainState, module: nn.Module) -> None:
        # runs after EarlyStopping restored the best network (whose buffer holds that epoch's vectors)
        if self._best_state is not None:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.encoder.model, self._best_state)
        self.encoder.eval()


def lora_state(encoder: Any) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(encoder.model).items()}


def lora_arrays(encoder: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The adapter weights as ``lora/<name>`` arrays, and the settings to rebuild them."""
    arrays = {f"lora/{k}": v.cpu().numpy() for k, v in lora_state(encoder).items()}
    return arrays, dict(encoder.lora_settings_)


def load_lora(model: str | None, settings: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """Rebuild a LoRA-tuned encoder from `lora_arrays` output."""
    from peft import set_peft_model_state_dict

    encoder = TrainableTextEncoder(model).train_mode(
        lora=True,
        r=settings["r"],
        alpha=settings["alpha"],
        dropout=settings["dropout"],
        target_modules=settings["target_modules"],
    )
    set_peft_model_state_dict(encoder.model, {k[5:]: torch.from_numpy(v) for k, v in arrays.items()})
    return encoder.eval()
