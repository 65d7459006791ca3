"""The network of the language-model interest model: item tower, user tower, multi-task heads.

Interest is the similarity of user and item vectors: by default the cosine over a temperature,
``I(u, i) = cos(v_u, v_i) / tau``, which keeps every vector that enters the space (items, users,
queries, new items) on one scale, so a query vector and a user vector can be blended directly; or the
raw inner product, where vector norms can carry popularity and confidence.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmrec.models.lm.item_tower import ItemTower
from lmrec.models.lm.user_tower import UserTower

__all__ = ["LMNet"]


class LMNet(nn.Module):
    """Both towers plus optional heads.

    Args:
        item_tower: the `ItemTower`.
        user_tower: the `UserTower`.
        user_text: (n_users, D) raw user-text vectors, or None.
        has_text: (n_users,) bool, users with text.
        user_whitening: ``(mean, proj)`` for user-text vectors (None: identity).
        similarity: ``"cosine"`` (unit vectors, logits over a temperature) or ``"dot"`` (raw inner
            products, temperature 1, as ID-only SASRec scores).
        temperature: initial temperature of the cosine logits.
        learn_temperature: make the temperature a parameter (clamped to [0.01, 1]).
        rating_head: add a head regressing log(1 + rating) of the next item.
        n_event_classes: classes of the event head (0: none).
    """

    item_tower: ItemTower
    user_tower: UserTower
    # buffers (declared for type checkers; user-text ones exist only with user text)
    fixed_log_tau: torch.Tensor
    user_text: torch.Tensor
    has_text: torch.Tensor
    ut_mean: torch.Tensor
    ut_proj: torch.Tensor
    #: per-scenario adapters, attached by the multi-scenario model (`lmrec.models.lm.adapters.ScenarioAdapters`)
    scenario: Any

    def __init__(
        self,
        item_tower: ItemTower,
        user_tower: UserTower,
        *,
        user_text: np.ndarray | None = None,
        has_text: np.ndarray | None = None,
        user_whitening: tuple[np.ndarray, np.ndarray] | None = None,
        similarity: str = "cosine",
        temperature: float = 0.07,
        learn_temperature: bool = False,
        rating_head: bool = False,
        n_event_classes: int = 0,
    ) -> None:
        super().__init__()
        self.similarity = similarity
        self.item_tower, self.user_tower = item_tower, user_tower
        log_tau = torch.tensor(math.log(temperature))
        self.log_tau = nn.Parameter(log_tau) if learn_temperature else None
        self.register_buffer("fixed_log_tau", log_tau)
        if user_text is not None:
            ut = torch.as_tensor(np.asarray(user_text, dtype=np.float32))
            if user_whitening is None:
                user_whitening = np.zeros(ut.shape[1], np.float32), np.eye(ut.shape[1], dtype=np.float32)
            self.register_buffer("user_text", ut)
            self.register_buffer("has_text", torch.as_tensor(np.asarray(has_text, dtype=bool)))
            self.register_buffer("ut_mean", torch.as_tensor(np.asarray(user_whitening[0], np.float32)))
            self.register_buffer("ut_proj", torch.as_tensor(np.asarray(user_whitening[1], np.float32)))
        d = item_tower_dim(user_tower)
        self.rating_head = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, 1)) if rating_head else None
        self.event_head = nn.Linear(3 * d, n_event_classes) if n_event_classes > 0 else None

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Vectors as they enter the score: unit length for cosine, as they are for dot."""
        return F.normalize(x, dim=-1) if self.similarity == "cosine" else x

    @property
    def temperature(self) -> torch.Tensor:
        if self.similarity == "dot":
            return self.fixed_log_tau.new_ones(())
        log_tau = self.log_tau if self.log_tau is not None else self.fixed_log_tau
        return log_tau.clamp(math.log(0.01), 0.0).exp()

    def whiten_user_text(self, raw: torch.Tensor) -> torch.Tensor:
        """(n, D) raw user-text vectors -> (n, k) whitened."""
        return (raw - self.ut_mean) @ self.ut_proj

    def user_text_of(self, users: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Whitened text and has-text flags of known users (None when the model has no user text)."""
        if not hasattr(self, "user_text"):
            return None, None
        return self.whiten_user_text(self.user_text[users]), self.has_text[users]

    def pair_features(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(N, 3d) features of normalised user and item vectors for the heads."""
        return torch.cat([u, v, u * v], dim=-1)


def item_tower_dim(user_tower: UserTower) -> int:
    return user_tower.bos.shape[0]
