"""Text and image into vectors, the same way at training and at serving time.

The backends' heavy libraries (torch, sentence-transformers, transformers, ONNX Runtime, open_clip,
peft) load only when an encoder is built or used; `TrainableTextEncoder` (a torch module) loads on
first access.

Typical use::

    encoder = make_text_encoder(None, backend="onnx-int8")         # packaged MiniLM, int8
    result = encode_catalog(dataset, encoder=encoder, cache_dir="~/.cache/lmrec/emb")
    result.vectors                                                # (n_items, 384) unit rows
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lmrec.encoders.base import ImageEncoder, TextEncoder
from lmrec.encoders.cache import CachedEncoder, CacheStats, EmbeddingCache
from lmrec.encoders.config import Backend, Kind, Pooling, TextEncoderConfig
from lmrec.encoders.encode import EncodedCatalog, encode_catalog, encode_texts
from lmrec.encoders.factory import check_backend, make_text_encoder, text_encoder_from_config
from lmrec.encoders.fake import HashingEncoder
from lmrec.encoders.hf import HFTextEncoder
from lmrec.encoders.image import ClipImageEncoder, OpenClipImageEncoder, PrecomputedVectors, make_image_encoder
from lmrec.encoders.onnx import OnnxTextEncoder, export_onnx
from lmrec.encoders.st import SentenceTransformerEncoder
from lmrec.encoders.templates import (
    DEFAULT_ITEM_TEMPLATE,
    render_item_texts,
    render_user_texts,
    truncate_to_tokens,
)

if TYPE_CHECKING:
    from lmrec.encoders.trainable import TrainableTextEncoder

__all__ = [
    "DEFAULT_ITEM_TEMPLATE",
    "Backend",
    "CacheStats",
    "CachedEncoder",
    "ClipImageEncoder",
    "EmbeddingCache",
    "EncodedCatalog",
    "HFTextEncoder",
    "HashingEncoder",
    "ImageEncoder",
    "Kind",
    "OnnxTextEncoder",
    "OpenClipImageEncoder",
    "Pooling",
    "PrecomputedVectors",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "TextEncoderConfig",
    "TrainableTextEncoder",
    "check_backend",
    "encode_catalog",
    "encode_texts",
    "export_onnx",
    "make_image_encoder",
    "make_text_encoder",
    "render_item_texts",
    "render_user_texts",
    "text_encoder_from_config",
    "truncate_to_tokens",
]

# TrainableTextEncoder imports torch at module level; importing it only on access keeps
# ``import lmrec.encoders`` free of torch.
_LAZY = {"TrainableTextEncoder": "lmrec.encoders.trainable"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lmrec.encoders' has no attribute {name!r}")
