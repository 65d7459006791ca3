"""Text and image into vectors, the same way at training and at serving time.

Backends are imported lazily (torch, sentence-transformers, ONNX Runtime, peft load only when used).

Typical use::

    encoder = make_text_encoder(None, backend="onnx-int8")         # packaged MiniLM, int8
    result = encode_catalog(dataset, encoder=encoder, cache_dir="~/.cache/lmrec/emb")
    result.vectors                                                # (n_items, 384) unit rows
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lmrec.encoders.base import ImageEncoder, TextEncoder
from lmrec.encoders.cache import CachedEncoder, CacheStats, EmbeddingCache
from lmrec.encoders.config import Backend, Kind, Pooling, TextEncoderConfig
from lmrec.encoders.factory import make_text_encoder, text_encoder_from_config
from lmrec.encoders.fake import HashingEncoder
from lmrec.encoders.pipeline import EncodedCatalog, encode_catalog
from lmrec.encoders.templates import (
    DEFAULT_ITEM_TEMPLATE,
    item_texts,
    truncate_to_tokens,
    user_texts,
)

if TYPE_CHECKING:
    from lmrec.encoders.hf import HFTextEncoder
    from lmrec.encoders.image import (
        ClipImageEncoder,
        OpenClipImageEncoder,
        PrecomputedVectors,
        make_image_encoder,
    )
    from lmrec.encoders.onnx import OnnxTextEncoder, export_onnx
    from lmrec.encoders.st import SentenceTransformerEncoder
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
    "encode_catalog",
    "export_onnx",
    "item_texts",
    "make_image_encoder",
    "make_text_encoder",
    "text_encoder_from_config",
    "truncate_to_tokens",
    "user_texts",
]

_LAZY = {
    "HFTextEncoder": "lmrec.encoders.hf",
    "OnnxTextEncoder": "lmrec.encoders.onnx",
    "export_onnx": "lmrec.encoders.onnx",
    "SentenceTransformerEncoder": "lmrec.encoders.st",
    "TrainableTextEncoder": "lmrec.encoders.trainable",
    "ClipImageEncoder": "lmrec.encoders.image",
    "OpenClipImageEncoder": "lmrec.encoders.image",
    "PrecomputedVectors": "lmrec.encoders.image",
    "make_image_encoder": "lmrec.encoders.image",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lmrec.encoders' has no attribute {name!r}")
