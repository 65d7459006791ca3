"""The causal transformer behind `lmrec.models.sasrec.SASRec` (Kang & McAuley 2018), pre-LayerNorm.

Token 0 is padding; item ``i`` is token ``i + 1``. Sequences are left-padded, so the newest item
is always at the last position and positions count back from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SASRecNet"]


class _Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, hidden: int, n_heads: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.ln1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden), nn.Dropout(dropout))
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        # (B, L, d) -> (B, heads, L, d / heads)
        q, k, v = (t.view(b, length, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        att = att.transpose(1, 2).reshape(b, length, d)  # (B, L, d)
        x = x + self.resid_drop(self.proj(att))
        return x + self.mlp(self.ln2(x))


class SASRecNet(nn.Module):
    """Item and position embeddings, ``n_layers`` causal blocks, a final LayerNorm.

    Args:
        n_items: catalogue size (tokens are ``1..n_items``; 0 pads).
        max_len: the longest input sequence.
        hidden: embedding width; must divide by ``n_heads``.
        n_layers: transformer blocks.
        n_heads: attention heads.
        dropout: dropout on embeddings, attention and residual branches.
        inner: width of the feed-forward layer (default ``4 * hidden``).
    """

    def __init__(
        self,
        n_items: int,
        max_len: int = 50,
        hidden: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.2,
        inner: int | None = None,
    ) -> None:
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by n_heads ({n_heads})")
        self.n_items, self.max_len = n_items, max_len
        self.item_emb = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.emb_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(hidden, n_heads, inner or 4 * hidden, dropout) for _ in range(n_layers))
        self.final_ln = nn.LayerNorm(hidden)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    def item_weights(self) -> torch.Tensor:
        """(n_items, hidden) output embeddings, tied with the input ones (padding row dropped)."""
        return self.item_emb.weight[1:]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden state after every position.

        Args:
            tokens: (B, L) int64, left-padded with 0, ``L <= max_len``.

        Returns:
            (B, L, hidden); position ``t`` has seen tokens ``0..t`` only.
        """
        b, length = tokens.shape
        positions = torch.arange(self.max_len - length, self.max_len, device=tokens.device)
        x = self.emb_drop(self.item_emb(tokens) + self.pos_emb(positions)[None])  # (B, L, d)
        valid = tokens != 0
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        # a padded query may attend to itself, so no row of the mask is empty (that gives NaN)
        mask = (causal[None] & valid[:, None, :]) | torch.eye(length, dtype=torch.bool, device=tokens.device)[None]
        mask = mask[:, None]  # (B, 1, L, L), broadcast over heads
        for block in self.blocks:
            x = block(x, mask)
        return self.final_ln(x)
