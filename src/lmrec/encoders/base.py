"""The text-encoder contract shared by training and serving."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["TextEncoder", "ImageEncoder"]


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into L2-normalised float32 vectors.

    Attributes:
        name: model id plus revision or content hash; two encoders with the same name give the same
            vectors, so the name keys the embedding cache.
        dim: output width.
    """

    # Read-only properties so that wrappers exposing them as properties (`CachedEncoder`) satisfy the
    # protocol as well as encoders that set plain attributes.
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, kind: str = "passage", show_progress: bool = False
    ) -> np.ndarray:
        """Encode texts.

        Args:
            texts: n strings (empty strings are allowed and give a valid vector).
            batch_size: texts per forward pass.
            kind: ``"passage"`` for item/user text, ``"query"`` for search queries (models such as E5
                and BGE prepend different prefixes).
            show_progress: show a progress bar.

        Returns:
            (n, dim) float32, each row of unit L2 norm.
        """
        ...


@runtime_checkable
class ImageEncoder(Protocol):
    """Turns images (paths or PIL images) into L2-normalised float32 vectors of width ``dim``."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode_images(self, images: Sequence[object], batch_size: int = 32) -> np.ndarray:
        """(n, dim) float32 unit vectors."""
        ...


def check_encode_args(texts: Sequence[str], batch_size: int) -> None:
    """The argument checks every ``encode`` shares: a sequence of texts (not one string), batch >= 1."""
    if isinstance(texts, str):
        raise TypeError("encode takes a sequence of texts, not one string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
