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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmrec.encoders.base import TextEncoder
from lmrec.encoders.factory import make_text_encoder
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.lm.finetune import load_lora

__all__ = ["SavedState", "build_encoder", "pack", "unpack"]

log = logging.getLogger(__name__)

_HASHING = re.compile(r"^hashing-(\d+)-(\d+)$")


def build_encoder(
    spec: dict[str, Any] | None, model: str | None, backend: str, lora: dict[str, np.ndarray] | None = None
) -> TextEncoder:
    """The encoder a model was trained with: a `HashingEncoder` when that is what the spec names,
    the LoRA-tuned encoder when adapters were saved, else
    ``lmrec.encoders.make_text_encoder(model, backend)`` (the packaged MiniLM by default)."""
    if lora and spec and spec.get("lora"):
        return load_lora(model, spec["lora"], lora)
    name = (spec or {}).get("name") or ""
    match = _HASHING.match(name)
    if match or backend == "fake":
        return HashingEncoder(int(match.group(1)), int(match.group(2))) if match else HashingEncoder()
    return make_text_encoder(model=model, backend=backend)  # type: ignore[arg-type]


@dataclass
class SavedState:
    """The fitted state of an `LMRecommender` as plain data (what ``state.npz`` and the ``meta`` of
    ``config.json`` hold).

    Attributes:
        net: the network's ``state_dict`` as arrays (including the cached raw text vectors).
        hist_items / hist_times: each user's items and timestamps in time order.
        counts: (n_items,) training interactions per item.
        item_vectors: (n_items, d) the final item vectors.
        item_fields: field -> each item's text of that field.
        encoder: the encoder spec (name, dim, class, model, backend; ``lora`` with adapters).
        lora: the LoRA adapter arrays (``lora/<name>``), or None.
        event_classes: the event head's classes.
        train_history: the per-epoch history of ``fit``.
        fusion: the fusion spec, or None.
    """

    net: dict[str, np.ndarray]
    hist_items: list[np.ndarray]
    hist_times: list[np.ndarray]
    counts: np.ndarray
    item_vectors: np.ndarray | None
    item_fields: dict[str, list[str]]
    encoder: dict[str, Any] = field(default_factory=dict)
    lora: dict[str, np.ndarray] | None = None
    event_classes: list[str] = field(default_factory=list)
    train_history: list[dict[str, float]] = field(default_factory=list)
    fusion: dict[str, Any] | None = None


def pack(state: SavedState) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, meta)`` of a state, for ``state.npz`` and ``config.json``."""
    arrays: dict[str, Any] = {f"net/{k}": v for k, v in state.net.items()}
    lengths = np.array([len(h) for h in state.hist_items], dtype=np.int64)
    arrays["hist_indptr"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    arrays["hist_items"] = np.concatenate(state.hist_items or [np.zeros(0, np.int64)]).astype(np.int64)
    arrays["hist_times"] = np.concatenate(state.hist_times or [np.zeros(0)]).astype(np.float64)
    arrays["counts"] = np.asarray(state.counts, dtype=np.int64)
    arrays["item_vectors"] = state.item_vectors
    arrays["item_fields_json"] = np.frombuffer(json.dumps(state.item_fields).encode("utf-8"), dtype=np.uint8)
    arrays.update(state.lora or {})
    meta: dict[str, Any] = {
        "encoder": dict(state.encoder),
        "event_classes": list(state.event_classes),
        "train_history": list(state.train_history or []),
    }
    if state.fusion:
        meta["fusion"] = state.fusion
    return arrays, meta


def unpack(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> SavedState:
    """The state `pack` wrote (or the same layout written before it existed)."""
    indptr = arrays["hist_indptr"]
    return SavedState(
        net={k[4:]: v for k, v in arrays.items() if k.startswith("net/")},
        hist_items=[arrays["hist_items"][indptr[u] : indptr[u + 1]].copy() for u in range(len(indptr) - 1)],
        hist_times=[arrays["hist_times"][indptr[u] : indptr[u + 1]].copy() for u in range(len(indptr) - 1)],
        counts=arrays["counts"],
        item_vectors=arrays.get("item_vectors"),
        item_fields=json.loads(arrays["item_fields_json"].tobytes().decode("utf-8")),
        encoder=dict(meta.get("encoder", {})),
        lora={k: v for k, v in arrays.items() if k.startswith("lora/")} or None,
        event_classes=list(meta.get("event_classes", [])),
        train_history=meta.get("train_history", []),
        fusion=meta.get("fusion"),
    )
