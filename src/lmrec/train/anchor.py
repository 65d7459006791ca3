"""Pulling a network toward earlier weights: L2-SP and EWC, as a penalty and in decoupled form.

Used by continual updates (`lmrec.models.lm.continual`) and by fine-tuning on a new domain. The
pull is applied after each optimiser step (`pull_toward_anchor`), decoupled from the loss as AdamW
decouples weight decay: added to the loss, the penalty's gradient would be rescaled by Adam per
parameter, and wherever the data's gradient is small it would dominate whatever the strength.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["anchor_of", "fisher_diagonal", "pull_toward_anchor", "weight_penalty"]


def anchor_of(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every trainable parameter, by name (the weights to pull toward)."""
    return {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}


def _anchored(net: torch.nn.Module, anchor: dict[str, torch.Tensor]):
    """``(name, current, anchor)`` for each anchored parameter; a parameter that grew along its first
    axis is cut to its first ``len(anchor)`` rows, one whose shape changed otherwise is skipped."""
    for name, p in net.named_parameters():
        ref = anchor.get(name)
        if ref is None:
            continue
        cur = p[: ref.shape[0]] if p.shape != ref.shape else p
        if cur.shape == ref.shape:
            yield name, cur, ref


def weight_penalty(
    net: torch.nn.Module,
    anchor: dict[str, torch.Tensor],
    fisher: dict[str, torch.Tensor] | None = None,
    rows: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``sum_p F_p * (w_p - anchor_p)^2`` over the anchored parameters (F = 1 without ``fisher``).

    A measure of the distance from the anchor; updates do not add it to the loss but apply its
    decoupled form, `pull_toward_anchor` (see the module docstring for why).

    A parameter that grew along its first axis since the anchor (the item ID table of new items) is
    compared on its first ``len(anchor)`` rows only: new rows have no previous value to keep. ``rows``
    restricts a parameter to the (n,) bool rows given (the ID rows of items trained before).
    """
    total = torch.zeros(())
    for name, cur, ref in _anchored(net, anchor):
        sq = (cur - ref).pow(2)
        if fisher is not None and name in fisher:
            sq = sq * fisher[name][: ref.shape[0]]
        if rows is not None and name in rows:
            sq = sq * rows[name].to(sq.dtype).view(-1, *([1] * (sq.dim() - 1)))
        total = total + sq.sum()
    return total


@torch.no_grad()
def pull_toward_anchor(
    net: torch.nn.Module,
    anchor: dict[str, torch.Tensor],
    rate: float,
    fisher: dict[str, torch.Tensor] | None = None,
    rows: dict[str, torch.Tensor] | None = None,
) -> None:
    """Move the anchored parameters in place toward the anchor: ``w <- w - min(1, rate * F) * (w - anchor)``.

    The decoupled form of `weight_penalty` (its gradient is ``2 F (w - anchor)``): one call after
    each optimiser step with ``rate = lr * strength`` shrinks the distance from the anchor by that
    share, whatever the optimiser's per-parameter scaling. The share is capped at 1 (a huge
    strength pins the weights to the anchor, never past it). A parameter that grew along its first
    axis is pulled on its first ``len(anchor)`` rows only; ``rows`` restricts a parameter to the (n,)
    bool rows given, as in `weight_penalty`.

    Args:
        net: the network being trained.
        anchor: parameter name -> its value before the update.
        rate: ``lr * strength`` (>= 0).
        fisher: parameter name -> Fisher weights of the anchor's shape (EWC), or None (L2-SP).
        rows: parameter name -> (n,) bool rows to pull, or None.
    """
    for name, cur, ref in _anchored(net, anchor):
        share = (
            torch.full_like(ref, float(rate))
            if fisher is None or name not in fisher
            else (float(rate) * fisher[name][: ref.shape[0]])
        )
        share = share.clamp(0.0, 1.0)
        if rows is not None and name in rows:
            share = share * rows[name].to(share.dtype).view(-1, *([1] * (share.dim() - 1)))
        cur.sub_(share * (cur - ref))


def fisher_diagonal(
    net: torch.nn.Module,
    objective: Callable[[Any, dict], torch.Tensor],
    batches: Callable[[int], Iterable[dict]],
    max_batches: int = 20,
) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher: mean squared gradient of the loss over batches, normalised to mean 1."""
    sums = {n: torch.zeros_like(p) for n, p in net.named_parameters() if p.requires_grad}
    net.train()
    for count, batch in enumerate(batches(0), start=1):
        net.zero_grad(set_to_none=True)
        objective(net, batch).backward()
        for n, p in net.named_parameters():
            if n in sums and p.grad is not None:
                sums[n] += p.grad.detach().pow(2)
        if count >= max_batches:
            break
    net.zero_grad(set_to_none=True)
    net.eval()
    total = sum(float(s.sum()) for s in sums.values())
    n_params = sum(s.numel() for s in sums.values())
    scale = n_params / total if total > 0 else 1.0
    return {n: s * scale for n, s in sums.items()}
