"""Training losses as separate ``nn.Module``s over logits or embeddings, so they swap freely.

Every loss returns a scalar tensor (the mean over the rows that count).

- `FullSoftmaxCE`: cross-entropy over every item; logits ``(N, n_items)``.
- `SampledSoftmax` (alias `InfoNCE`): softmax over the in-batch positives plus optional sampled
  negatives, with the log-Q correction for the sampling distribution.
- `BPRLoss`: ``-log sigmoid(pos - neg)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FullSoftmaxCE", "SampledSoftmax", "InfoNCE", "BPRLoss"]


class FullSoftmaxCE(nn.Module):
    """Cross-entropy over the whole catalogue (what RecBole's sequential models use with loss_type CE).

    Args:
        ignore_index: targets equal to this value are left out of the mean (padding).
        label_smoothing: as in ``torch.nn.functional.cross_entropy``.
    """

    def __init__(self, ignore_index: int = -100, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy.

        Args:
            logits: (N, n_items) or (B, L, n_items) unnormalised scores.
            target: (N,) or (B, L) int64 item indices; ``ignore_index`` marks rows to skip.

        Returns:
            scalar tensor.
        """
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )


class SampledSoftmax(nn.Module):
    """Softmax cross-entropy over in-batch and sampled negatives, with log-Q correction (InfoNCE).

    Row ``b`` scores its query against every positive of the batch (the other rows' positives are
    in-batch negatives) and against ``M`` extra sampled negatives shared by the batch. Each logit
    is ``q . e / temperature - log Q(item)`` where ``Q`` is the probability that the item appears
    as a candidate (Yi et al. 2019, "Sampling-bias-corrected neural modeling"); without the
    correction popular items, which show up as negatives more often, are pushed down too hard.

    Args:
        temperature: divides the dot products before the correction.
        in_batch: use the other rows' positives as negatives.
        remove_accidental_hits: when item ids are given, a candidate equal to the row's positive
            (but not in its own column) is masked out rather than counted as a negative.
    """

    def __init__(self, temperature: float = 1.0, in_batch: bool = True, remove_accidental_hits: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.in_batch = in_batch
        self.remove_accidental_hits = remove_accidental_hits

    def forward(
        self,
        query: torch.Tensor,
        positive: torch.Tensor,
        negatives: torch.Tensor | None = None,
        *,
        pos_log_q: torch.Tensor | None = None,
        neg_log_q: torch.Tensor | None = None,
        pos_ids: torch.Tensor | None = None,
        neg_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean loss over the batch.

        Args:
            query: (B, d) user / context embeddings.
            positive: (B, d) embeddings of each row's positive item.
            negatives: (M, d) sampled negative item embeddings shared by the batch, or None.
            pos_log_q: (B,) log-probability of each positive being a candidate (in-batch columns).
            neg_log_q: (M,) log-probability with which each sampled negative was drawn.
            pos_ids: (B,) item ids of the positives, for accidental-hit removal.
            neg_ids: (M,) item ids of the sampled negatives, for accidental-hit removal.

        Returns:
            scalar tensor.
        """
        batch = query.shape[0]
        if self.temperature != 1.0:
            query = query / self.temperature  # (B, d): cheaper than dividing the (B, B + M) logits
        if not self.in_batch:
            pos_logit = (query * positive).sum(-1, keepdim=True)  # (B, 1)
            if pos_log_q is not None:
                pos_logit = pos_logit - pos_log_q.reshape(-1, 1)
            if negatives is None:
                return F.cross_entropy(pos_logit, query.new_zeros(batch, dtype=torch.long))
            neg = query @ negatives.T  # (B, M)
            if neg_log_q is not None:
                neg = neg - neg_log_q.reshape(1, -1)
            if self.remove_accidental_hits and pos_ids is not None and neg_ids is not None:
                neg = neg.masked_fill(pos_ids.reshape(-1, 1) == neg_ids.reshape(1, -1), float("-inf"))
            return F.cross_entropy(torch.cat([pos_logit, neg], dim=1), query.new_zeros(batch, dtype=torch.long))
        # one (B, B + M) matrix, built in place: the candidates' vectors, corrections and ids are
        # concatenated (small), never the logits (the step's largest array)
        candidates = positive if negatives is None else torch.cat([positive, negatives])
        logits = query @ candidates.T  # (B, B + M), positives on the diagonal of the first B columns
        if logits.dtype != torch.float32:  # autocast's half-precision product: correct in float32
            logits = logits.float()
        if pos_log_q is not None or neg_log_q is not None:
            n_neg = 0 if negatives is None else negatives.shape[0]
            pos_q = pos_log_q.reshape(-1) if pos_log_q is not None else logits.new_zeros(batch)
            neg_q = neg_log_q.reshape(-1) if neg_log_q is not None else logits.new_zeros(n_neg)
            logits.sub_(torch.cat([pos_q, neg_q]).reshape(1, -1))
        if self.remove_accidental_hits and pos_ids is not None:
            ids = pos_ids if negatives is None or neg_ids is None else torch.cat([pos_ids, neg_ids])
            same = pos_ids.reshape(-1, 1) == ids.reshape(1, -1)  # (B, B + M) or (B, B)
            same[:, :batch].fill_diagonal_(False)
            if negatives is not None and neg_ids is None:
                same = torch.cat([same, same.new_zeros(batch, negatives.shape[0])], dim=1)
            logits.masked_fill_(same, float("-inf"))
        return F.cross_entropy(logits, torch.arange(batch, device=query.device))


InfoNCE = SampledSoftmax


class BPRLoss(nn.Module):
    """Bayesian personalised ranking: ``-mean(log sigmoid(pos - neg))``."""

    def forward(self, pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
        """Mean loss.

        Args:
            pos_scores: (N,) scores of positive items.
            neg_scores: (N,) or (N, M) scores of negatives; each negative is paired with its row's positive.

        Returns:
            scalar tensor.
        """
        if neg_scores.dim() == pos_scores.dim() + 1:
            pos_scores = pos_scores.unsqueeze(-1)
        return -F.logsigmoid(pos_scores - neg_scores).mean()
