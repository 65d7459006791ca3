"""Multimodal item vectors: text, image, categorical and numeric attributes fused into one vector.

Each modality m of item i gives a vector ``v_im`` of width ``d`` and a presence flag ``p_im``:

- ``text``: the item tower's text path ``adaptor(whiten(e_i))``; absent when the item's text is empty.
- ``image``: a linear map of an image vector, either precomputed (the catalogue's ``vector_col``) or
  encoded from the catalogue's ``image_col`` by a local image encoder (`lmrec.encoders.image`, e.g. a
  CLIP directory); absent for items without one. **No real images or image weights ship with lmrec:**
  the tests use generated coloured squares and a tiny randomly initialised CLIP vision tower, so
  the image path is tested for plumbing, not for what real product photos would add.
- ``cat:<column>``: one per categorical column, the mean of learned token embeddings over the
  item's tokens (a bag: a list value, or a comma-separated string such as Office's ``categories``);
  absent for items without a known token. Tokens seen on fewer than two items are dropped: a token
  that names one item is an item ID in disguise, and the ablation keeps IDs apart.
- ``numeric``: a linear map of the z-scored numeric columns and their presence flags (a missing
  value contributes 0 and flag 0); absent when every numeric value of the item is missing.

Fusion (``fusion=``): ``"mean"``: ``sum_m p_im v_im / sum_m p_im``; ``"gated"``: attention
``sum_m a_im v_im`` with ``a_i = softmax over present m of w^T tanh(W v_im)`` (missing modalities get
weight exactly 0); ``"concat"``: ``W [p_i1 v_i1, ..., p_iM v_iM, p_i1, ..., p_iM]`` (a missing slot is
zero but its flag tells the projection so). Missing modalities are never averaged in as zeros. An
item with no modality at all gets the zero vector (its ID part, where the model has one, remains).
Under ``"mean"`` an item with text only gets exactly its text-path vector, which is also the vector a
brand-new item or a query gets from `ItemTower.encode_text`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn

from lmrec.data.catalog import ItemCatalog, clean_text
from lmrec.data.idmap import IdMap
from lmrec.encoders.image import PrecomputedVectors, encode_catalog_images, make_image_encoder
from lmrec.models.lm.config import FusionConfig

__all__ = ["FusionInputs", "FusionKind", "ItemFusion", "build_fusion_inputs", "make_fusion", "tokens_of"]

log = logging.getLogger(__name__)

FusionKind = Literal["concat", "mean", "gated"]
_MIN_TOKEN_ITEMS = 2


def tokens_of(value: object) -> list[str]:
    """The tokens of a categorical value: list elements, or a string split on commas (stripped, non-empty)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [t for t in (clean_text(v) for v in value) if t]
    return [t for t in (s.strip() for s in clean_text(value).split(",")) if t]


@dataclass
class FusionInputs:
    """Raw per-item inputs of the modalities other than text, in item index order.

    Attributes:
        text_mask: (n_items,) bool, items with non-empty text.
        image: (n_items, D_img) float32 image vectors (zero rows where absent), or None.
        image_mask: (n_items,) bool, or None.
        categorical: column -> ``(offsets (n_items,) int64, tokens (nnz,) int64, vocab size)``; an
            item's tokens are ``tokens[offsets[i]:offsets[i + 1]]`` (EmbeddingBag layout).
        numeric: (n_items, k) float32 z-scores (0 where missing), or None.
        numeric_mask: (n_items, k) bool, or None.
        vocabularies: column -> tokens in index order (saved in config.json).
        numeric_columns: the k numeric column names.
    """

    text_mask: np.ndarray
    image: np.ndarray | None = None
    image_mask: np.ndarray | None = None
    categorical: dict[str, tuple[np.ndarray, np.ndarray, int]] = field(default_factory=dict)
    numeric: np.ndarray | None = None
    numeric_mask: np.ndarray | None = None
    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    numeric_columns: list[str] = field(default_factory=list)


def build_fusion_inputs(
    catalog: ItemCatalog,
    item_map: IdMap,
    texts: Sequence[str],
    *,
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    image: bool = False,
    image_encoder: Any = None,
    show_progress: bool = False,
) -> FusionInputs:
    """Read the modalities of every item in ``item_map`` order from the catalogue.

    Args:
        catalog: the item catalogue.
        item_map: row order.
        texts: n_items item texts ("" marks a missing text modality).
        categorical / numeric: catalogue columns to use.
        image: use images: the catalogue's ``vector_col`` if it has one, else its ``image_col``
            encoded by ``image_encoder``.
        image_encoder: an `lmrec.encoders.ImageEncoder` (needed for ``image_col``).

    Raises:
        ValueError: a named column is not in the catalogue, or images are asked for and the
            catalogue has neither a vector column nor an image column with an encoder.
    """
    frame = catalog.aligned(item_map)
    for col in [*categorical, *numeric]:
        if col not in catalog.frame.columns:
            raise ValueError(
                f"fusion column {col!r} is not in the item catalogue; columns: {list(catalog.frame.columns)}"
            )
    out = FusionInputs(text_mask=np.array([bool(t) for t in texts], dtype=bool))
    for col in categorical:
        bags = [tokens_of(v) for v in frame[col].tolist()]
        counts: dict[str, int] = {}
        for bag in bags:
            for tok in set(bag):
                counts[tok] = counts.get(tok, 0) + 1
        vocab = sorted(t for t, c in counts.items() if c >= _MIN_TOKEN_ITEMS)
        index = {t: j for j, t in enumerate(vocab)}
        ids = [[index[t] for t in dict.fromkeys(bag) if t in index] for bag in bags]
        lengths = np.array([len(b) for b in ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(ids) else np.zeros(0, np.int64)
        tokens = np.array([j for b in ids for j in b], dtype=np.int64)
        out.categorical[col] = (offsets, tokens, max(1, len(vocab)))
        out.vocabularies[col] = vocab
        log.info(
            "fusion: %s has %d tokens on >= %d items; %d of %d items have one",
            col,
            len(vocab),
            _MIN_TOKEN_ITEMS,
            int((lengths > 0).sum()),
            len(ids),
        )
    if numeric:
        raw = np.stack([frame[c].apply(_number).to_numpy(dtype=np.float64) for c in numeric], axis=1)
        present = np.isfinite(raw)
        mean = np.array([raw[present[:, j], j].mean() if present[:, j].any() else 0.0 for j in range(raw.shape[1])])
        std = np.array([raw[present[:, j], j].std() if present[:, j].sum() > 1 else 1.0 for j in range(raw.shape[1])])
        z = np.where(present, (raw - mean) / np.where(std > 0, std, 1.0), 0.0)
        out.numeric, out.numeric_mask = z.astype(np.float32), present
        out.numeric_columns = list(numeric)
    if image:
        if catalog.vector_col is not None:
            out.image, out.image_mask = PrecomputedVectors.from_catalog(catalog).aligned(item_map)
        elif catalog.image_col is not None and image_encoder is not None:
            out.image, out.image_mask = encode_catalog_images(
                catalog, item_map, image_encoder, show_progress=show_progress
            )
        else:
            raise ValueError(
                "fusion_image=True needs a catalogue vector_col (precomputed vectors) or an image_col "
                "and an image encoder (image_encoder= or image_model=)"
            )
    return out


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


class ItemFusion(nn.Module):
    """Fuses the text-path vectors with the other modalities of every item.

    Args:
        inputs: the raw per-item modality inputs.
        dim: model width ``d``.
        fusion: ``"concat"``, ``"mean"`` or ``"gated"``.
    """

    def __init__(self, inputs: FusionInputs, dim: int, fusion: FusionKind) -> None:
        super().__init__()
        if fusion not in get_args(FusionKind):
            raise ValueError(f"fusion must be one of {list(get_args(FusionKind))}, got {fusion!r}")
        self.fusion, self.dim = fusion, dim
        self.names = ["text"]
        self.register_buffer("text_mask", torch.as_tensor(inputs.text_mask, dtype=torch.bool))
        self.image: torch.Tensor
        self.image_mask: torch.Tensor
        self.numeric: torch.Tensor
        self.numeric_mask: torch.Tensor
        self.text_mask: torch.Tensor
        self.has_image = inputs.image is not None
        if self.has_image:
            self.register_buffer("image", torch.as_tensor(np.asarray(inputs.image, np.float32)))
            self.register_buffer("image_mask", torch.as_tensor(np.asarray(inputs.image_mask, bool)))
            self.image_proj = nn.Linear(self.image.shape[1], dim)
            self.names.append("image")
        self.cat_columns = list(inputs.categorical)
        self.cat_emb = nn.ModuleList()
        for j, col in enumerate(self.cat_columns):
            offsets, tokens, vocab = inputs.categorical[col]
            self.register_buffer(f"cat{j}_offsets", torch.as_tensor(offsets, dtype=torch.long))
            self.register_buffer(f"cat{j}_tokens", torch.as_tensor(tokens, dtype=torch.long))
            emb = nn.EmbeddingBag(vocab, dim, mode="mean")
            nn.init.normal_(emb.weight, std=0.02)
            self.cat_emb.append(emb)
            self.names.append(f"cat:{col}")
        self.has_numeric = inputs.numeric is not None
        if self.has_numeric:
            self.register_buffer("numeric", torch.as_tensor(np.asarray(inputs.numeric, np.float32)))
            self.register_buffer("numeric_mask", torch.as_tensor(np.asarray(inputs.numeric_mask, bool)))
            self.num_proj = nn.Linear(2 * self.numeric.shape[1], dim)
            self.names.append("numeric")
        n_mod = len(self.names)
        if fusion == "gated":
            self.gate = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
        elif fusion == "concat":
            self.proj = nn.Linear(n_mod * dim + n_mod, dim)

    @property
    def n_items(self) -> int:
        return int(self.text_mask.shape[0])

    def modalities(self, text_vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_items, d) text-path vectors -> ``(V, P)``: (n_items, M, d) modality vectors and (n_items, M) bool."""
        vecs, masks = [text_vectors], [self.text_mask]
        if self.has_image:
            vecs.append(self.image_proj(self.image))
            masks.append(self.image_mask)
        for j, emb in enumerate(self.cat_emb):
            offsets, tokens = getattr(self, f"cat{j}_offsets"), getattr(self, f"cat{j}_tokens")
            vecs.append(emb(tokens, offsets))  # empty bags give zero rows (masked below)
            ends = torch.cat([offsets[1:], offsets.new_tensor([len(tokens)])])
            masks.append(ends > offsets)
        if self.has_numeric:
            present = self.numeric_mask.to(self.numeric.dtype)
            vecs.append(self.num_proj(torch.cat([self.numeric * present, present], dim=1)))
            masks.append(self.numeric_mask.any(dim=1))
        return torch.stack(vecs, dim=1), torch.stack(masks, dim=1)  # (n, M, d), (n, M)

    def weights(self, values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(n, M) fusion weights: uniform over present modalities (mean) or attention (gated); 0 on missing."""
        p = present.to(values.dtype)
        if self.fusion == "gated":
            # a large finite fill, not -inf: a row with nothing present stays finite (and is zeroed by p)
            logits = self.gate(values).squeeze(-1).masked_fill(~present, -1e9)  # (n, M)
            return torch.softmax(logits, dim=-1) * p
        return p / p.sum(dim=1, keepdim=True).clamp(min=1.0)

    def forward(self, text_vectors: torch.Tensor) -> torch.Tensor:
        """(n_items, d) text-path vectors -> (n_items, d) fused item vectors."""
        values, present = self.modalities(text_vectors)
        if self.fusion == "concat":
            p = present.to(values.dtype)
            flat = (values * p.unsqueeze(-1)).flatten(1)  # (n, M * d)
            return self.proj(torch.cat([flat, p], dim=1))
        return (self.weights(values, present).unsqueeze(-1) * values).sum(dim=1)  # (n, d)

    @torch.no_grad()
    def grow(self, n_new: int) -> None:
        """Append ``n_new`` items known by their text alone (every other modality missing)."""
        self.text_mask = torch.cat([self.text_mask, torch.ones(n_new, dtype=torch.bool)])
        if self.has_image:
            self.image = torch.cat([self.image, self.image.new_zeros(n_new, self.image.shape[1])])
            self.image_mask = torch.cat([self.image_mask, torch.zeros(n_new, dtype=torch.bool)])
        for j in range(len(self.cat_emb)):
            tokens = getattr(self, f"cat{j}_tokens")
            offsets = getattr(self, f"cat{j}_offsets")
            setattr(self, f"cat{j}_offsets", torch.cat([offsets, offsets.new_full((n_new,), len(tokens))]))
        if self.has_numeric:
            self.numeric = torch.cat([self.numeric, self.numeric.new_zeros(n_new, self.numeric.shape[1])])
            self.numeric_mask = torch.cat(
                [self.numeric_mask, torch.zeros(n_new, self.numeric_mask.shape[1], dtype=torch.bool)]
            )

    def spec(self, inputs_vocab: dict[str, list[str]], numeric_columns: list[str]) -> dict[str, Any]:
        """What config.json needs to rebuild this module (the arrays are in the state dict)."""
        return {
            "fusion": self.fusion,
            "categorical": self.cat_columns,
            "vocabularies": inputs_vocab,
            "numeric": numeric_columns,
            "image": self.has_image,
        }

    @classmethod
    def from_state(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray], dim: int) -> ItemFusion:
        """Rebuild from `spec` and the ``item_tower.fusion.*`` arrays of a saved state dict."""

        def get(name: str) -> Any:
            return arrays.get(f"item_tower.fusion.{name}")

        inputs = FusionInputs(
            text_mask=get("text_mask").astype(bool),
            image=get("image"),
            image_mask=get("image_mask"),
            numeric=get("numeric"),
            numeric_mask=get("numeric_mask"),
            vocabularies=dict(spec.get("vocabularies", {})),
            numeric_columns=list(spec.get("numeric", [])),
        )
        for j, col in enumerate(spec.get("categorical", [])):
            inputs.categorical[col] = (
                get(f"cat{j}_offsets"),
                get(f"cat{j}_tokens"),
                int(arrays[f"item_tower.fusion.cat_emb.{j}.weight"].shape[0]),
            )
        return cls(inputs, dim, spec["fusion"])


# ---------------------------------------------------------------------------------------- building from a config
def make_fusion(
    config: FusionConfig,
    dataset: Any,
    texts: Sequence[str],
    dim: int,
    *,
    image_encoder: Any = None,
    show_progress: bool = False,
) -> tuple[ItemFusion | None, dict[str, Any] | None]:
    """The `ItemFusion` of a model about to be fit and its spec (for ``config.json``); ``(None, None)``
    when ``config.mode`` is ``"none"``.

    Args:
        config: the model's fusion settings.
        dataset: the training data set (its catalogue and item map).
        texts: every item's text in index order.
        dim: width of the model's space.
        image_encoder: an image encoder object (None: a local CLIP directory ``config.image_model``, if any).
        show_progress: progress bar while encoding images.
    """
    if config.mode == "none":
        return None, None
    encoder = image_encoder
    if config.image and encoder is None and config.image_model is not None:
        encoder = make_image_encoder(config.image_model)
    inputs = build_fusion_inputs(
        dataset.items,
        dataset.interactions.item_map,
        texts,
        categorical=list(config.categorical or []),
        numeric=list(config.numeric or []),
        image=bool(config.image),
        image_encoder=encoder,
        show_progress=show_progress,
    )
    module = ItemFusion(inputs, dim, config.mode)
    return module, module.spec(inputs.vocabularies, inputs.numeric_columns)
