"""sentence-transformers backend: the model's own pipeline (transformer, pooling, dense layers)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmrec.encoders.base import check_encode_args
from lmrec.encoders.hf import source_fingerprint
from lmrec.encoders.model_files import (
    default_pooling,
    detect_prefixes,
    encoder_name,
    resolve_model,
)

# sentence_transformers (which loads torch) is imported when the model is loaded, not with lmrec.encoders.

__all__ = ["SentenceTransformerEncoder"]

log = logging.getLogger(__name__)


class SentenceTransformerEncoder:
    """A ``SentenceTransformer`` model in PyTorch.

    Its name matches `HFTextEncoder`'s for the same model, pooling and length: both compute the same
    fp32 vectors, so they share cache entries.

    Args:
        model: sentence-transformers directory or hub name (``None``: packaged all-MiniLM-L6-v2).
        max_seq_length: tokens per text; default the model's ``max_seq_length``.
        query_prefix, passage_prefix: override the family's prefixes (``""`` for none).
        device: torch device.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        max_seq_length: int | None = None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        device: str = "cpu",
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.source = resolve_model(model)
        self.model = SentenceTransformer(self.source.location, device=device)
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length
        max_length = self.model.max_seq_length
        if max_length is None:
            raise ValueError(
                f"sentence-transformers model {self.source.model_id!r} defines no max_seq_length; pass max_seq_length"
            )
        self.max_length = int(max_length)
        self.pooling = default_pooling(self.source)
        self.prefixes = detect_prefixes(self.source.model_id, query_prefix, passage_prefix)
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"sentence-transformers model {self.source.model_id!r} does not state its output width")
        self.dim = int(dim)
        # Dense layers after pooling make this pipeline differ from plain pooling: mark the name.
        extra = [m.rsplit(".", 1)[-1] for m in self.source.st_modules]
        extra = [m for m in extra if m not in ("Transformer", "Pooling", "Normalize")]
        precision = "fp32" if not extra else "st-" + "-".join(extra).lower() + "/fp32"
        self.name = encoder_name(
            self.source.model_id,
            source_fingerprint(self.source),
            pooling=self.pooling,
            max_length=self.max_length,
            prefixes=self.prefixes,
            precision=precision,
        )

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, kind: str = "passage", show_progress: bool = False
    ) -> np.ndarray:
        """Encode texts; see `lmrec.encoders.TextEncoder.encode`."""
        check_encode_args(texts, batch_size)
        prefix = self.prefixes.for_kind(kind)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(
            [prefix + (t or "") for t in texts],
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(out, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder(name={self.name!r}, dim={self.dim})"
