"""Saving and loading the language-model interest model, and rebuilding its text encoder.

The directory is the one every lmrec model writes (``config.json``, ``state.npz``, id maps); the
npz holds the network weights (``net/<name>``, including the cached raw text vectors of every
item and user), the histories, the item field texts (UTF-8 JSON bytes, for explanations) and the
final item vectors. ``config.json`` holds the encoder spec, so a loaded model rebuilds the same
encoder for queries and new items without touching the item vectors, and, for a model with
multimodal fusion, the fusion spec (kind, columns, vocabularies; the per-item modality inputs are
buffers in the npz).
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from lmrec.encoders.base import TextEncoder
    from lmrec.models.lm.model import LMRecommender

__all__ = ["build_encoder", "model_state", "set_model_state"]

log = logging.getLogger(__name__)

_HASHING = re.compile(r"^hashing-(\d+)-(\d+)$")


def build_encoder(
    spec: dict[str, Any] | None, model: str | None, backend: str, lora: dict[str, np.ndarray] | None = None
) -> TextEncoder:
    """The encoder a model was trained with: a `HashingEncoder` when that is what the spec names,
    the LoRA-tuned encoder when adapters were saved, else
    ``lmrec.encoders.make_text_encoder(model, backend)`` (the packaged MiniLM by default)."""
    if lora and (spec or {}).get("lora"):
        from lmrec.models.lm.finetune import load_lora

        return load_lora(model, spec["lora"], lora)
    name = (spec or {}).get("name") or ""
    match = _HASHING.match(name)
    if match or backend == "fake":
        from lmrec.encoders.fake import HashingEncoder

        return HashingEncoder(int(match.group(1)), int(match.group(2))) if match else HashingEncoder()
    try:
        from lmrec.encoders import make_text_encoder  # type: ignore[attr-defined]
    except ImportError as err:
        raise ImportError(
            "LMRecommender needs lmrec.encoders.make_text_encoder to build its text encoder; "
            "pass encoder=... explicitly"
        ) from err
    return make_text_encoder(model=model, backend=backend)


def model_state(model: LMRecommender) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = {f"net/{k}": v.detach().cpu().numpy() for k, v in model.net_.state_dict().items()}
    lengths = np.array([len(h) for h in model.hist_items_], dtype=np.int64)
    arrays["hist_indptr"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    arrays["hist_items"] = np.concatenate(model.hist_items_ or [np.zeros(0, np.int64)]).astype(np.int64)
    arrays["hist_times"] = np.concatenate(model.hist_times_ or [np.zeros(0)]).astype(np.float64)
    arrays["counts"] = np.asarray(model.counts_, dtype=np.int64)
    arrays["item_vectors"] = model.item_vectors_
    arrays["item_fields_json"] = np.frombuffer(json.dumps(model.item_fields_).encode("utf-8"), dtype=np.uint8)
    spec = dict(getattr(model, "encoder_spec_", {}) or {})
    if model.finetune_lm == "lora":
        from lmrec.models.lm.finetune import lora_arrays

        adapter, spec["lora"] = lora_arrays(model._get_encoder())
        arrays.update(adapter)
    meta = {
        "encoder": spec,
        "event_classes": list(model.event_classes_),
        "train_history": list(getattr(model, "train_history_", []) or []),
    }
    if getattr(model, "fusion_spec_", None):
        meta["fusion"] = model.fusion_spec_
    return arrays, meta


def set_model_state(model: LMRecommender, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    net = {k[4:]: v for k, v in arrays.items() if k.startswith("net/")}
    text = net.get("item_tower.text")
    whitening = (net["item_tower.white_mean"], net["item_tower.white_proj"]) if text is not None else None
    user_text = net.get("user_text")
    user_white = (net["ut_mean"], net["ut_proj"]) if user_text is not None else None
    model.encoder_spec_ = dict(meta.get("encoder", {}))
    model._lora_arrays = {k: v for k, v in arrays.items() if k.startswith("lora/")} or None
    model.net_ = model._build_net(
        text, net["item_tower.id_mask"] > 0, whitening, user_text, net.get("has_text"), user_white,
        meta.get("event_classes", []),
    )
    model.fusion_spec_ = meta.get("fusion")
    if model.fusion_spec_:
        from lmrec.models.lm.fusion import ItemFusion

        model.net_.item_tower.fusion = ItemFusion.from_state(model.fusion_spec_, net, model.dim)
    model.net_.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in net.items()})
    model.net_.eval()
    indptr = arrays["hist_indptr"]
    model.hist_items_ = [arrays["hist_items"][indptr[u] : indptr[u + 1]].copy() for u in range(len(indptr) - 1)]
    model.hist_times_ = [arrays["hist_times"][indptr[u] : indptr[u + 1]].copy() for u in range(len(indptr) - 1)]
    model.counts_ = arrays["counts"]
    model.item_fields_ = json.loads(arrays["item_fields_json"].tobytes().decode("utf-8"))
    model.train_history_ = meta.get("train_history", [])
    model._refresh()
