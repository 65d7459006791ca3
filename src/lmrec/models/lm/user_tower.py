"""User tower: a causal transformer over recent item vectors, gated with the user's own text.

Sequences are right-padded; a learned BOS token opens every sequence, so the output at BOS is the
vector of a user with no history (popularity-like, learned), and a user with text but no history gets
that vector fused with their text. Positions count back from the newest item (0 = newest), so the
vector read out for recommendation always sits at position 0, as in training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["UserTower", "time_buckets"]


def time_buckets(timestamps: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucketed log time gap before each item of one time-ordered sequence.

    Bucket 0 is "no previous item" (and BOS/padding); gaps map to
    ``1 + clip(floor(log2(1 + gap_minutes)), 0, n_buckets - 2)``: a few minutes, an hour (~6), a day
    (~11), a month (~16), a year (~19).

    Args:
        timestamps: (n,) seconds, non-decreasing.
        n_buckets: number of buckets (>= 2).

    Returns:
        (n,) int64 bucket ids.
    """
    out = np.zeros(len(timestamps), dtype=np.int64)
    if len(timestamps) > 1:
        gaps = np.maximum(np.diff(np.asarray(timestamps, dtype=np.float64)), 0.0) / 60.0
        out[1:] = 1 + np.clip(np.floor(np.log2(1.0 + gaps)), 0, n_buckets - 2).astype(np.int64)
    return out


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


class UserTower(nn.Module):
    """Causal transformer + text gate.

    Args:
        dim: model width ``d``.
        max_len: longest history read (plus one BOS token).
        n_layers / n_heads / dropout: transformer shape.
        n_time_buckets: size of the time-gap embedding (0 disables it).
        text_dim: width of the (whitened) user-text vectors, or 0 for no user text.
    """

    def __init__(
        self,
        dim: int,
        max_len: int,
        *,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.2,
        n_time_buckets: int = 20,
        text_dim: int = 0,
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.bos = nn.Parameter(torch.randn(dim) * 0.02)
        self.pos = nn.Embedding(max_len + 1, dim)
        self.time = nn.Embedding(n_time_buckets, dim) if n_time_buckets > 0 else None
        self.input_dropout = nn.Dropout(dropout)
        self.input_norm = nn.LayerNorm(dim)
        layer = nn.TransformerEncoderLayer(
            dim, n_heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(dim)
        self.text_dim = text_dim
        if text_dim > 0:
            self.text_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(text_dim, dim))
            self.gate = nn.Linear(2 * dim, dim)
        # small normal init everywhere (as SASRec): with torch's N(0, 1) default, position and
        # time embeddings would drown the item vectors they are added to
        self.apply(_init_weights)
        if text_dim > 0:
            nn.init.constant_(self.gate.bias, 1.0)  # start leaning on the sequence state

    def forward(
        self,
        item_vecs: torch.Tensor,
        tokens: torch.Tensor,
        lengths: torch.Tensor,
        buckets: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        has_text: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """User states at every position.

        Args:
            item_vecs: (n_items, d) item-tower outputs.
            tokens: (B, L) item indices; -1 is BOS, -2 padding (right-padded, BOS first).
            lengths: (B,) tokens per row including BOS (>= 1).
            buckets: (B, L) time-gap bucket ids, or None.
            text: (B, text_dim) whitened user-text vectors, or None.
            has_text: (B,) bool, users whose text vector is real.

        Returns:
            (B, L, d) user vectors (position p has read tokens 0..p), not normalised.
        """
        bsz, length = tokens.shape
        x = item_vecs[tokens.clamp(min=0)]  # (B, L, d)
        x = torch.where((tokens == -1).unsqueeze(-1), self.bos.expand_as(x), x)
        x = x * (tokens != -2).unsqueeze(-1)
        ar = torch.arange(length, device=tokens.device)
        recency = (lengths.unsqueeze(1) - 1 - ar).clamp(min=0, max=self.max_len)  # (B, L), 0 = newest
        x = x + self.pos(recency)
        if self.time is not None and buckets is not None:
            x = x + self.time(buckets)
        x = self.input_dropout(self.input_norm(x))
        causal = torch.triu(torch.full((length, length), float("-inf"), device=tokens.device), diagonal=1)
        h = self.out_norm(self.encoder(x, mask=causal))  # (B, L, d)
        if self.text_dim == 0 or text is None:
            return h
        t = self.text_proj(text).unsqueeze(1).expand_as(h)  # (B, L, d)
        g = torch.sigmoid(self.gate(torch.cat([h, t], dim=-1)))
        fused = g * h + (1 - g) * t
        if has_text is None:
            return fused
        return torch.where(has_text.view(bsz, 1, 1), fused, h)
