"""Hugging Face transformer encoders: tokenise, run the transformer, pool, normalise.

`TokenEncoder` holds what the PyTorch and ONNX backends share (prefixes, length-sorted batching,
pooling, naming), so the two differ only in how they compute the last hidden state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lmrec.encoders.base import check_encode_args
from lmrec.encoders.model_files import (
    ModelSource,
    PrefixPair,
    default_pooling,
    detect_prefixes,
    encoder_name,
    model_fingerprint,
    resolve_model,
)

# torch and transformers are imported where used: `import lmrec.encoders` must not load them.

__all__ = ["HFTextEncoder", "TokenEncoder", "model_max_length", "pool_numpy", "pool_torch"]

log = logging.getLogger(__name__)

_HARD_MAX_LENGTH = 512


def pool_numpy(hidden: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Pool token states into one L2-normalised vector per text.

    Args:
        hidden: (batch, seq_len, dim) last hidden state.
        mask: (batch, seq_len) attention mask, 1 for real tokens.
        pooling: ``"mean"`` over real tokens or ``"cls"`` (the first token).

    Returns:
        (batch, dim) float32 unit vectors.
    """
    if pooling == "mean":
        m = mask[..., None].astype(np.float32)  # (batch, seq_len, 1)
        vec = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    elif pooling == "cls":
        vec = hidden[:, 0]
    else:
        raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    vec = vec.astype(np.float32)
    return vec / np.clip(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12, None)


def pool_torch(hidden: Any, mask: Any, pooling: str) -> Any:
    """`pool_numpy` in torch (differentiable): (batch, seq_len, dim), (batch, seq_len) -> (batch, dim)."""
    import torch

    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq_len, 1)
        vec = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    elif pooling == "cls":
        vec = hidden[:, 0]
    else:
        raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    return torch.nn.functional.normalize(vec, p=2, dim=1, eps=1e-12)


def model_max_length(source: ModelSource, tokenizer: Any, config: Any = None) -> int:
    """The sequence limit: sentence-transformers' ``max_seq_length``, else the tokenizer's/model's, at most 512."""
    if source.st_max_seq_length:
        return int(source.st_max_seq_length)
    limit: int | None = getattr(tokenizer, "model_max_length", None)
    if not limit or limit > 100_000:
        limit = getattr(config, "max_position_embeddings", _HARD_MAX_LENGTH)
    return int(min(limit, _HARD_MAX_LENGTH))


class TokenEncoder:
    """Shared machinery of transformer text encoders; subclasses implement `_hidden`.

    Attributes:
        name: cache key (see `encoder_name`).
        dim: output width.
        tokenizer: the Hugging Face tokenizer (used also for token truncation of templates).
        pooling: ``"mean"`` or ``"cls"``.
        max_length: tokens per text, special tokens included; longer texts are cut.
        prefixes: query and passage prefixes.
    """

    name: str
    dim: int
    tokenizer: Any
    pooling: str
    max_length: int
    prefixes: PrefixPair

    def _hidden(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """(batch, seq_len, dim) last hidden state for a tokenised batch."""
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Pad to the longest text of the batch, cut at ``max_length``; int64 arrays (batch, seq_len)."""
        return dict(
            self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        )

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, kind: str = "passage", show_progress: bool = False
    ) -> np.ndarray:
        """Encode texts; see `lmrec.encoders.TextEncoder.encode`.

        Texts are sorted by length so that batches carry little padding; the output keeps input order.
        """
        check_encode_args(texts, batch_size)
        prefix = self.prefixes.for_kind(kind)
        prepared = [prefix + (t or "") for t in texts]
        out = np.zeros((len(prepared), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in prepared], kind="stable")
        starts = range(0, len(prepared), batch_size)
        if show_progress:
            starts = tqdm(starts, desc=f"encode {self.name}", unit="batch")
        for start in starts:
            idx = order[start : start + batch_size]
            batch = self.tokenize([prepared[i] for i in idx])
            hidden = self._hidden(batch)
            out[idx] = pool_numpy(hidden, batch["attention_mask"], self.pooling)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


class HFTextEncoder(TokenEncoder):
    """A Hugging Face ``AutoModel`` in PyTorch with mean or CLS pooling.

    Args:
        model: local directory or hub name (``None``: packaged all-MiniLM-L6-v2). A
            sentence-transformers directory is read for its transformer, pooling and length.
        pooling: ``"auto"`` (the model's own), ``"mean"`` or ``"cls"``.
        max_seq_length: tokens per text; default the model's limit.
        query_prefix, passage_prefix: override the family's prefixes (``""`` for none).
        device: torch device.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        pooling: str = "auto",
        max_seq_length: int | None = None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        device: str = "cpu",
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.source = resolve_model(model)
        self.source.check_plain_pooling()
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(self.source.hf_location)
        self.model = AutoModel.from_pretrained(self.source.hf_location).to(device).eval()
        self.pooling = default_pooling(self.source) if pooling == "auto" else pooling
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'auto', 'mean' or 'cls', got {pooling!r}")
        self.max_length = max_seq_length or model_max_length(self.source, self.tokenizer, self.model.config)
        self.prefixes = detect_prefixes(self.source.model_id, query_prefix, passage_prefix)
        self.dim = int(self.model.config.hidden_size)
        fingerprint = source_fingerprint(self.source)
        self.name = encoder_name(
            self.source.model_id,
            fingerprint,
            pooling=self.pooling,
            max_length=self.max_length,
            prefixes=self.prefixes,
            precision="fp32",
        )

    def _hidden(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
            return self.model(**inputs).last_hidden_state.float().cpu().numpy()


def source_fingerprint(source: ModelSource) -> str:
    """Content hash of a resolved model; a hub model must be in the local cache once loaded."""
    if source.local_dir is None:
        resolved = resolve_model(source.location)
        if resolved.local_dir is None:
            raise ValueError(f"cannot find the files of model {source.location!r} to fingerprint them")
        return model_fingerprint(resolved.local_dir)
    return model_fingerprint(source.local_dir)
