"""Item tower: frozen language-model text vectors -> whitening -> learned adaptor (+ item-ID part).

An item vector is ``adaptor(whiten(e_i)) + m_i * id_i`` where ``e_i`` is the frozen text embedding,
``id_i`` a learned ID embedding and ``m_i`` is 1 for items seen in training (0 for cold items, so they
are scored from text alone by construction). During training the ID part of a random share of items
is dropped each step, so the text part alone must carry the signal for rare and unseen items.

With a `lmrec.models.lm.fusion.ItemFusion` attached (``fusion``), the text part of catalogue items is
fused with their image, categorical and numeric modalities before the ID part is added; the text
path (`ItemTower.encode_text`, used for new items and queries) stays text-only.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ItemTower", "MoEAdaptor", "fit_whitening", "make_adaptor"]

ItemRepr = Literal["hybrid", "text", "id"]
AdaptorKind = Literal["moe", "mlp", "linear"]


def fit_whitening(x: np.ndarray, *, eps: float = 0.1, max_dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Regularised PCA whitening fitted on catalogue vectors.

    ``white(x) = (x - mean) @ proj`` with ``proj = U diag(1 / sqrt(lambda + eps * mean(lambda)))``: the
    ``eps`` term keeps near-empty directions (a small catalogue, or text vectors' anisotropy) from being
    blown up into noise.

    Args:
        x: (n, D) float vectors, one per catalogue item.
        eps: ridge on the eigenvalues, relative to their mean.
        max_dim: keep at most this many leading components (default: all with a positive eigenvalue).

    Returns:
        ``(mean, proj)``: (D,) and (D, k) float32 arrays.
    """
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"fit_whitening needs a non-empty (n, D) array, got shape {x.shape}")
    x = x.astype(np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / max(1, len(x))
    lam, vecs = np.linalg.eigh(cov)
    order = np.argsort(lam)[::-1]
    lam, vecs = np.clip(lam[order], 0.0, None), vecs[:, order]
    keep = lam > lam[0] * 1e-6 if lam[0] > 0 else np.zeros_like(lam, dtype=bool)
    keep[0] = True  # at least one direction, even for a single item
    if max_dim is not None:
        keep[max_dim:] = False
    lam, vecs = lam[keep], vecs[:, keep]
    ridge = eps * float(lam.mean()) if lam.mean() > 0 else 1.0
    proj = vecs / np.sqrt(lam + ridge)
    return mean.astype(np.float32), proj.astype(np.float32)


class MoEAdaptor(nn.Module):
    """Mixture of linear experts (as in UniSRec): ``sum_k softmax(g(x))_k * W_k x``.

    Args:
        in_dim: input width (whitened text width).
        out_dim: model width ``d``.
        n_experts: number of experts; 1 is a plain linear map.
        dropout: dropout on the input.
    """

    def __init__(self, in_dim: int, out_dim: int, n_experts: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.experts = nn.Linear(in_dim, out_dim * n_experts)
        self.gate = nn.Linear(in_dim, n_experts, bias=False) if n_experts > 1 else None
        self.dropout = nn.Dropout(dropout)
        self.n_experts, self.out_dim = n_experts, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        out = self.experts(x).view(*x.shape[:-1], self.n_experts, self.out_dim)  # (..., k, d)
        if self.gate is None:
            return out[..., 0, :]
        weights = torch.softmax(self.gate(x), dim=-1).unsqueeze(-1)  # (..., k, 1)
        return (weights * out).sum(dim=-2)


def make_adaptor(kind: AdaptorKind, in_dim: int, out_dim: int, n_experts: int, dropout: float) -> nn.Module:
    """A freshly initialised text adaptor of the given kind, ``in_dim`` -> ``out_dim``."""
    if kind == "moe":
        return MoEAdaptor(in_dim, out_dim, n_experts, dropout)
    if kind == "linear":
        return MoEAdaptor(in_dim, out_dim, 1, dropout)
    if kind == "mlp":
        return nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_dim, 2 * out_dim), nn.GELU(), nn.Linear(2 * out_dim, out_dim)
        )
    raise ValueError(f"adaptor must be 'moe', 'mlp' or 'linear', got {kind!r}")


class ItemTower(nn.Module):
    """Maps item indices (and raw text vectors of new items) to model vectors.

    Args:
        text_vectors: (n_items, D) frozen text embeddings, or None for ``item_repr="id"``.
        id_mask: (n_items,) bool, True for items whose ID embedding is used (seen in training).
        dim: output width ``d``.
        item_repr: ``"hybrid"`` (text + ID), ``"text"`` or ``"id"``.
        adaptor: adaptor kind over the whitened text vector.
        n_experts: experts of the MoE adaptor.
        dropout: input dropout of the adaptor.
        id_dropout: probability that an item's ID part is dropped in a training step.
        whitening: ``(mean, proj)`` from ``fit_whitening``; None leaves text vectors as they are.
        fusion: an `ItemFusion` over the catalogue items' other modalities (None: text only); it
            can also be attached later as the ``fusion`` attribute.
    """

    # buffers (declared for type checkers; the text ones exist only with a text path)
    id_mask: torch.Tensor
    text: torch.Tensor
    white_mean: torch.Tensor
    white_proj: torch.Tensor
    fusion: Any

    def __init__(
        self,
        text_vectors: np.ndarray | None,
        id_mask: np.ndarray,
        dim: int,
        *,
        item_repr: ItemRepr = "hybrid",
        adaptor: AdaptorKind = "moe",
        n_experts: int = 4,
        dropout: float = 0.1,
        id_dropout: float = 0.3,
        whitening: tuple[np.ndarray, np.ndarray] | None = None,
        fusion: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.fusion = fusion
        if item_repr not in ("hybrid", "text", "id"):
            raise ValueError(f"item_repr must be 'hybrid', 'text' or 'id', got {item_repr!r}")
        self.item_repr, self.id_dropout = item_repr, id_dropout
        n_items = len(id_mask)
        self.register_buffer("id_mask", torch.as_tensor(np.asarray(id_mask, dtype=np.float32)))
        self.uses_text = item_repr in ("hybrid", "text")
        if self.uses_text:
            if text_vectors is None or len(text_vectors) != n_items:
                raise ValueError(f"item_repr={item_repr!r} needs text vectors for all {n_items} items")
            tv = np.asarray(text_vectors, dtype=np.float32)
            if whitening is None:
                whitening = np.zeros(tv.shape[1], np.float32), np.eye(tv.shape[1], dtype=np.float32)
            mean, proj = (np.asarray(a, dtype=np.float32) for a in whitening)
            self.register_buffer("text", torch.as_tensor(tv))
            self.register_buffer("white_mean", torch.as_tensor(mean))
            self.register_buffer("white_proj", torch.as_tensor(proj))
            self.adaptor = make_adaptor(adaptor, proj.shape[1], dim, n_experts, dropout)
        if item_repr in ("hybrid", "id"):
            self.id_emb = nn.Embedding(n_items, dim)
            nn.init.normal_(self.id_emb.weight, std=0.02)

    def encode_text(self, text_vectors: torch.Tensor) -> torch.Tensor:
        """(n, D) raw text vectors -> (n, d) text-only item vectors (not normalised)."""
        if not self.uses_text:
            raise ValueError("this model was fit with item_repr='id': it has no text path for new items or queries")
        return self.adaptor(self.whiten(text_vectors))

    def whiten(self, text_vectors: torch.Tensor) -> torch.Tensor:
        """(n, D) raw text vectors -> (n, k) whitened (the identity when the model was fit unwhitened)."""
        return (text_vectors - self.white_mean) @ self.white_proj

    def content(self, text_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """(n, k) unit, whitened, frozen text vectors: the content channel (no learned part).

        Args:
            text_vectors: (n, D) raw text vectors (None: the catalogue's cached ones).
        """
        if not self.uses_text:
            raise ValueError("this model was fit with item_repr='id': it has no text to build a content channel from")
        return F.normalize(self.whiten(self.text if text_vectors is None else text_vectors), dim=-1)

    def forward(self, generator: torch.Generator | None = None, text: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors of all items, (n_items, d), not normalised; ID dropout applies in training mode.

        Args:
            generator: RNG of the ID dropout.
            text: (n_items, D) text vectors to use instead of the cached ones (LoRA fine-tuning).
        """
        out = self.encode_text(self.text if text is None else text) if self.uses_text else None
        if out is not None and self.fusion is not None:
            out = self.fusion(out)  # (n_items, d): text fused with the other modalities
        if self.item_repr == "text":
            assert out is not None  # a text model has a text path
            return out
        mask = self.id_mask
        if self.training and self.item_repr == "hybrid" and self.id_dropout > 0:
            keep = torch.rand(mask.shape, generator=generator, device=mask.device) >= self.id_dropout
            mask = mask * keep.to(mask.dtype)
        ids = self.id_emb.weight * mask.unsqueeze(1)  # (n_items, d)
        return ids if out is None else out + ids

    @torch.no_grad()
    def grow(self, text_vectors: np.ndarray | None, n_new: int) -> None:
        """Append ``n_new`` items known by their text alone (ID part off; zero ID rows keep shapes)."""
        if self.uses_text:
            if text_vectors is None or len(text_vectors) != n_new:
                raise ValueError(f"grow: need text vectors for the {n_new} new items")
            self.text = torch.cat([self.text, torch.as_tensor(np.asarray(text_vectors, dtype=np.float32))])
        self.id_mask = torch.cat([self.id_mask, torch.zeros(n_new)])
        if self.fusion is not None:
            self.fusion.grow(n_new)
        if hasattr(self, "id_emb"):
            weight = torch.cat([self.id_emb.weight, torch.zeros(n_new, self.id_emb.embedding_dim)])
            self.id_emb = nn.Embedding.from_pretrained(weight, freeze=False)
