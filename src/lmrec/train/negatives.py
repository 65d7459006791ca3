"""Popularity-sampled negatives and the log-Q terms of the sampled softmax.

`lmrec.train.losses.SampledSoftmax` scores each query against the batch's positives and a shared set
of sampled negatives, minus the log-probability that each candidate was a candidate at all. This
module owns that probability for a catalogue with training counts:

- an in-batch positive is a candidate in proportion to its popularity, ``Q = count / total``;
- a sampled negative is drawn from ``count ** power`` (word2vec's smoothing, ``power = 0.75``), ``M``
  times with replacement, so its expected number of draws is ``M * p``, and ``log(M * p)`` is its
  correction.

Items without training counts are never drawn: nothing is known about them, and pushing them down
would teach a model never to recommend a new item.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["PopularityNegatives"]


class PopularityNegatives:
    """Negatives drawn from smoothed popularity, with both log-Q corrections.

    Args:
        item_counts: (n_items,) training interactions per item; at least one must be positive.
        n_negatives: negatives per draw (``M``), shared by a batch.
        power: popularity exponent of the sampling distribution (0 = uniform over items with counts).
    """

    def __init__(self, item_counts: np.ndarray, n_negatives: int, power: float = 0.75) -> None:
        counts = torch.as_tensor(np.asarray(item_counts, dtype=np.float64))
        if counts.dim() != 1 or not bool((counts > 0).any()):
            raise ValueError("PopularityNegatives needs a 1-d item_counts with at least one positive count")
        if bool((counts < 0).any()):
            raise ValueError("PopularityNegatives item_counts must be >= 0")
        if n_negatives < 1:
            raise ValueError(f"PopularityNegatives n_negatives must be >= 1, got {n_negatives!r}")
        self.n_negatives = int(n_negatives)
        #: (n_items,) log-probability of each item being an in-batch positive
        self.log_pos_q = torch.log((counts / counts.sum()).clamp(min=1e-12)).float()
        smoothed = torch.where(counts > 0, counts.pow(power), torch.zeros_like(counts))
        #: (n_items,) the sampling distribution of the negatives (0 for items without counts)
        self.neg_p = (smoothed / smoothed.sum()).float()

    def to(self, device: torch.device) -> PopularityNegatives:
        """Move the tables to ``device``; the generator passed to `draw` must live there too."""
        self.log_pos_q, self.neg_p = self.log_pos_q.to(device), self.neg_p.to(device)
        return self

    def draw(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch's negatives.

        Returns:
            ``(ids, log_q)``: (M,) int64 item indices drawn with replacement and (M,) float32
            ``log(M * p(id))``, the correction `SampledSoftmax` subtracts from their logits.
        """
        ids = torch.multinomial(self.neg_p, self.n_negatives, replacement=True, generator=generator)
        return ids, torch.log(self.neg_p[ids] * self.n_negatives)
