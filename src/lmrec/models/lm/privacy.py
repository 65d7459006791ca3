"""Differentially private training of the language-model interest model (DP-SGD, user level).

What is protected, and how:

- **The privacy unit is a user.** One example is one user's whole training sequence (every window
  and every position of their history, and their own text). Each step samples users by Poisson
  sampling: every user independently with probability ``q = optim.batch_size / n_users`` (the
  semantics of Opacus' ``DPDataLoader``; a step may hold no user). An epoch is ``round(1 / q)``
  steps.
- **Per-user gradients** are computed with ``torch.func``. The item tower runs once per step over the
  whole catalogue (its ID dropout and adaptor dropout do not depend on the data); for each sampled
  user, ``vmap(grad)`` of their loss gives the gradient of the user-side parameters and the
  gradient with respect to every item vector, and ``vmap`` of the item tower's ``vjp`` turns the
  latter into that user's gradient of the item-side parameters (adaptor and item-ID table). So each
  user's gradient covers every parameter, the ID table included, and is exact: no per-item or
  per-window approximation.
- **Each user's loss is theirs alone**: the full softmax over the whole catalogue, averaged over the
  user's positions. Losses that couple users (``"sampled"`` shares negatives within a batch; ``"bpr"``
  draws from the items that have training data) are rejected, as are the rating and event heads,
  fusion and LoRA fine-tuning (not supported on this path).
- **Clipping and noise**: every user's whole gradient (all parameters as one vector) is scaled to an
  L2 norm of at most ``max_grad_norm`` ``C`` (Opacus' factor ``min(1, C / (norm + 1e-6))``); the
  clipped gradients are summed, Gaussian noise ``N(0, (sigma C)^2)`` is added to every coordinate, and
  the sum is divided by the expected batch size ``q * n_users``; AdamW then steps (post-processing).
  The global ``optim.grad_clip`` is not applied (per-user clipping replaces it).
- **Accounting**: ``sigma`` is Opacus' ``get_noise_multiplier(target_epsilon, target_delta,
  sample_rate, steps, accountant)`` for the planned ``optim.epochs * round(1 / q)`` steps, and the
  spent ``(epsilon, delta)`` is read back from Opacus' accountant (``RDPAccountant`` or
  ``PRVAccountant``) over the steps actually taken.
- **No early stopping**: validation users' data is private too, so private training runs exactly
  ``optim.epochs`` epochs and ``fit`` ignores ``valid`` (model selection on private data would spend
  privacy that is not accounted).
- **Statistics from all users** (`LMRecommender.prepare` under privacy): items are not told apart by
  whether they have training interactions (every item keeps its ID part and is a softmax candidate;
  the non-private model masks items without training rows, a count over users); the whitening of
  the item text is fitted on item text alone, which is public catalogue data; the whitening of the
  user text, which the non-private model fits on all users' texts, is replaced by the item
  whitening (or none). No popularity count enters training.

What is not protected: the guarantee covers the trained network (weights and the item vectors made
from them). A saved model directory also holds every user's history (``hist_items_``, ``seen_``)
and the item counts, because recommending for known users reads them: publish only the network
and the item vectors for a DP release. The per-epoch mean loss in ``train_history_`` is computed
from private data and is not part of the guarantee either. Sampling and noise use seeded
pseudo-random generators (reproducible); a formal release would draw them from a cryptographically
secure source, as Opacus' ``secure_mode`` does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmrec.models.lm.config import FusionConfig, ObjectiveConfig, OptimConfig, PrivacyConfig
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.training import PAD, Windows, user_content, with_content

__all__ = [
    "PrivacyPlan",
    "UserExamples",
    "UserLoss",
    "check_private_settings",
    "clip_factors",
    "per_user_gradients",
    "plan_privacy",
    "spent_epsilon",
    "train_private",
]

log = logging.getLogger(__name__)


def _opacus() -> Any:
    try:
        from opacus import accountants
        from opacus.accountants import utils
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "LMRecommender privacy.epsilon needs Opacus: pip install 'lmrec[privacy]' (or pip install opacus)"
        ) from err
    return accountants, utils


# ---------------------------------------------------------------------- settings and accounting
def check_private_settings(
    objective: ObjectiveConfig, fusion: FusionConfig, finetune: str, n_items: int | None = None
) -> None:
    """Reject settings the private path does not support (a ValueError naming the setting). Every
    item representation is supported (the item-ID table is one more private parameter).

    Args:
        objective / fusion: the model's components.
        finetune: ``encoder.finetune``.
        n_items: the catalogue size, to resolve ``objective.loss="auto"`` (None: check "auto" later).
    """
    loss = objective.loss if n_items is None or objective.loss != "auto" else objective.resolved_loss(n_items)
    if loss in ("sampled", "bpr"):
        why = (
            "shares sampled negatives across the users of a batch"
            if loss == "sampled"
            else "draws its negatives from the items that have training data"
        )
        raise ValueError(
            f"LMRecommender privacy (DP-SGD) needs objective.loss='full' (or 'auto' up to "
            f"full_softmax_max_items items), got {loss!r}: it {why}, so one user's gradient would "
            "depend on other users' data"
        )
    for name in ("rating_weight", "event_weight"):
        if getattr(objective, name) > 0:
            raise ValueError(f"LMRecommender privacy (DP-SGD) does not support objective.{name} > 0; set it to 0")
    if fusion.mode != "none":
        raise ValueError(f"LMRecommender privacy (DP-SGD) does not support fusion.mode={fusion.mode!r}; use 'none'")
    if finetune != "none":
        raise ValueError(f"LMRecommender privacy (DP-SGD) does not support encoder.finetune={finetune!r}; use 'none'")


@dataclass(frozen=True)
class PrivacyPlan:
    """The DP-SGD schedule: Poisson rate, steps and the noise multiplier that meets the budget.

    Attributes:
        n_users: examples (users with a training interaction).
        sample_rate: ``q``, each user's probability of being in a step.
        steps_per_epoch: ``round(1 / q)`` (at least 1).
        steps: planned steps, ``epochs * steps_per_epoch``.
        noise_multiplier: ``sigma``; the noise's standard deviation is ``sigma * max_grad_norm``.
    """

    n_users: int
    sample_rate: float
    steps_per_epoch: int
    steps: int
    noise_multiplier: float


def plan_privacy(config: PrivacyConfig, n_users: int, batch_size: int, epochs: int) -> PrivacyPlan:
    """The schedule and the noise multiplier of ``config``'s budget (Opacus' ``get_noise_multiplier``).

    Args:
        config: the privacy settings (``epsilon`` set).
        n_users: users with a training interaction.
        batch_size: expected users per step (``optim.batch_size``; capped at ``n_users``).
        epochs: training epochs (``optim.epochs``).

    Raises:
        ValueError: privacy is off, or there are no users.
    """
    if config.epsilon is None:
        raise ValueError("plan_privacy needs PrivacyConfig.epsilon; privacy is off")
    if n_users < 1:
        raise ValueError(f"plan_privacy needs at least one user, got n_users={n_users}")
    _, utils = _opacus()
    q = min(1.0, batch_size / n_users)
    per_epoch = max(1, round(1.0 / q))
    steps = int(epochs) * per_epoch
    sigma = utils.get_noise_multiplier(
        target_epsilon=float(config.epsilon),
        target_delta=float(config.delta),
        sample_rate=q,
        steps=steps,
        accountant=config.accountant,
    )
    return PrivacyPlan(n_users, q, per_epoch, steps, float(sigma))


def spent_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str) -> float:
    """The epsilon that Opacus' accountant gives for ``steps`` steps at ``(noise_multiplier, sample_rate)``."""
    if steps == 0:
        return 0.0
    accountants, _ = _opacus()
    acc = accountants.create_accountant(accountant)
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    return float(acc.get_epsilon(delta=float(delta)))


# ---------------------------------------------------------------------- examples: one per user
class UserExamples:
    """The training windows grouped by user: one DP example per user.

    Args:
        windows: every training window (`lmrec.models.lm.training.training_windows`).
    """

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        order = np.argsort(windows.users, kind="stable")
        self.users, starts = np.unique(windows.users[order], return_index=True)
        self.rows = np.split(order, starts[1:])  # per example, its window rows

    def __len__(self) -> int:
        return len(self.users)

    def batch(self, examples: np.ndarray) -> dict[str, torch.Tensor]:
        """The windows of ``examples`` (indices into `users`), padded to (B, W, L).

        W is the most windows of one of these users, L the longest window; padding windows hold
        PAD tokens (length 1) and no targets, so they add nothing to a user's loss or gradient.
        """
        w = self.windows
        rows = [self.rows[e] for e in examples]
        n_win = max(len(r) for r in rows)
        width = int(max(w.lengths[r].max() for r in rows))
        b = len(rows)
        tokens = np.full((b, n_win, width), PAD, np.int64)
        buckets = np.zeros((b, n_win, width), np.int64)
        targets = np.full((b, n_win, width), -100, np.int64)
        lengths = np.ones((b, n_win), np.int64)
        for j, r in enumerate(rows):
            tokens[j, : len(r)] = w.tokens[r, :width]
            buckets[j, : len(r)] = w.buckets[r, :width]
            targets[j, : len(r)] = w.targets[r, :width]
            lengths[j, : len(r)] = w.lengths[r]
        return {
            "tokens": torch.from_numpy(tokens),
            "buckets": torch.from_numpy(buckets),
            "targets": torch.from_numpy(targets),
            "lengths": torch.from_numpy(lengths),
            "users": torch.from_numpy(self.users[examples].astype(np.int64)),
        }


class UserLoss(nn.Module):
    """One user's loss given every item vector: the full softmax over the catalogue, averaged over
    the user's positions (``forward`` sees one user: (W, L) windows)."""

    def __init__(self, net: LMNet, content: torch.Tensor | None, content_weight: float) -> None:
        super().__init__()
        self.net = net
        self.content, self.content_weight = content, float(content_weight)

    def forward(
        self,
        vecs: torch.Tensor,
        tokens: torch.Tensor,
        buckets: torch.Tensor,
        targets: torch.Tensor,
        lengths: torch.Tensor,
        user: torch.Tensor,
    ) -> torch.Tensor:
        net = self.net
        text, has_text = net.user_text_of(user.expand(tokens.shape[0]))  # (W, k), (W,)
        states = net.user_tower(vecs, tokens, lengths, buckets, text, has_text)  # (W, L, d)
        u, v = net.project(states), net.project(vecs)  # (W, L, d), (n_items, d)
        if self.content is not None and self.content_weight > 0:
            u = with_content(u, user_content(self.content, tokens), self.content_weight)
            v = with_content(v, self.content, self.content_weight)
        logits = u @ v.T / net.temperature  # (W, L, n_items)
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")
        return total / (targets >= 0).sum().clamp(min=1)


def per_user_gradients(
    net: LMNet,
    batch: Mapping[str, torch.Tensor],
    *,
    generator: torch.Generator | None = None,
    content_weight: float = 0.0,
    content: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every user's gradient of every trainable parameter of ``net`` (no clipping, no noise).

    Args:
        net: the network (train mode for dropout).
        batch: `UserExamples.batch` of B users.
        generator: RNG of the item tower's ID dropout.
        content_weight / content: the frozen content channel (weight 0 or None: off).

    Returns:
        ``(grads, losses)``: parameter name -> (B, *shape) per-user gradients, and (B,) per-user losses.
    """
    from torch.func import functional_call, grad_and_value, vjp, vmap

    item_params = {k: p.detach() for k, p in net.item_tower.named_parameters() if p.requires_grad}
    user_params = {
        k: p.detach() for k, p in net.named_parameters() if p.requires_grad and not k.startswith("item_tower.")
    }

    def items(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(net.item_tower, params, (generator,))

    vecs, item_vjp = vjp(items, item_params)[:2]  # (n_items, d), computed once for every user
    scorer = UserLoss(net, content, content_weight)

    def user_loss(params, vecs, tokens, buckets, targets, lengths, user):
        named = {f"net.{k}": v for k, v in params.items()}
        return functional_call(scorer, named, (vecs, tokens, buckets, targets, lengths, user))

    per_user = vmap(
        grad_and_value(user_loss, argnums=(0, 1)), in_dims=(None, None, 0, 0, 0, 0, 0), randomness="different"
    )
    (g_user, g_vecs), losses = per_user(
        user_params,
        vecs.detach(),
        batch["tokens"],
        batch["buckets"],
        batch["targets"],
        batch["lengths"],
        batch["users"],
    )
    (g_item,) = vmap(item_vjp)(g_vecs)  # each user's cotangent on the item vectors -> item-side grads
    grads = {**g_user, **{f"item_tower.{k}": v for k, v in g_item.items()}}
    return grads, losses.detach()


def clip_factors(grads: Mapping[str, torch.Tensor], max_grad_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(factors, norms)``: each user's whole-gradient L2 norm (B,) and Opacus' clipping factor
    ``min(1, C / (norm + 1e-6))`` (B,)."""
    sq = sum(g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads.values())
    norms = torch.as_tensor(sq).sqrt()
    return (max_grad_norm / (norms + 1e-6)).clamp(max=1.0), norms


# ---------------------------------------------------------------------- the loop
def train_private(
    net: LMNet,
    windows: Windows,
    *,
    privacy: PrivacyConfig,
    optim: OptimConfig,
    content_weight: float,
    seed: int,
    show_progress: bool = False,
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Train ``net`` with user-level DP-SGD for exactly ``optim.epochs`` epochs.

    Args:
        net: the network (item tower over the whole catalogue).
        windows: the training windows (grouped here into one example per user).
        privacy: the budget and clipping bound (``epsilon`` set).
        optim: learning rate, weight decay, expected users per step and epochs.
        content_weight: weight of the frozen content channel (0: off).
        seed: seeds Poisson sampling, the noise, and ID dropout.
        show_progress: a progress bar over epochs.

    Returns:
        ``(history, report)``: per-epoch ``{"epoch", "loss", "users"}`` and the privacy report
        (``epsilon`` spent, ``delta``, ``noise_multiplier``, ``sample_rate``, ``steps``,
        ``max_grad_norm``, ``accountant``, plus ``target_epsilon``, ``epochs`` and ``n_users``).
    """
    from tqdm.auto import tqdm

    examples = UserExamples(windows)
    plan = plan_privacy(privacy, len(examples), int(optim.batch_size), int(optim.epochs))
    log.info(
        "DP-SGD: %d users, sample rate %.4f, %d steps, noise multiplier %.4f, clip %g (target epsilon %g, delta %g)",
        plan.n_users,
        plan.sample_rate,
        plan.steps,
        plan.noise_multiplier,
        privacy.max_grad_norm,
        privacy.epsilon,
        privacy.delta,
    )
    generator = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(seed + 1)
    sampler = np.random.default_rng([seed, 1])
    params = {k: p for k, p in net.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(list(params.values()), lr=optim.lr, weight_decay=optim.weight_decay)
    content = None
    if content_weight > 0:
        with torch.no_grad():
            content = net.item_tower.content()
    c, std = float(privacy.max_grad_norm), float(plan.noise_multiplier * privacy.max_grad_norm)
    expected = plan.sample_rate * plan.n_users
    history: list[dict[str, float]] = []
    steps = 0
    epochs = tqdm(range(int(optim.epochs)), desc="dp-sgd", disable=not show_progress)
    for epoch in epochs:
        net.train()
        total, users = 0.0, 0
        for _ in range(plan.steps_per_epoch):
            chosen = np.flatnonzero(sampler.random(plan.n_users) < plan.sample_rate)
            # users with as many windows together, so a chunk pads to its own longest user
            chosen = chosen[np.argsort([len(examples.rows[e]) for e in chosen], kind="stable")]
            summed = {k: torch.zeros_like(p) for k, p in params.items()}
            for start in range(0, len(chosen), privacy.chunk_size):
                part = chosen[start : start + privacy.chunk_size]
                grads, losses = per_user_gradients(
                    net, examples.batch(part), generator=generator, content_weight=content_weight, content=content
                )
                factors, _ = clip_factors(grads, c)
                for k, g in grads.items():
                    summed[k] += torch.einsum("b,b...->...", factors, g)
                total, users = total + float(losses.sum()), users + len(part)
            optimizer.zero_grad(set_to_none=True)
            for k, p in params.items():
                noise = torch.normal(0.0, std, size=p.shape, generator=noise_gen)
                p.grad = (summed[k] + noise) / expected
            optimizer.step()
            steps += 1
        history.append({"epoch": float(epoch), "loss": total / users if users else math.nan, "users": float(users)})
        log.info("dp epoch %d: loss %.4f over %d sampled users", epoch, history[-1]["loss"], users)
    net.eval()
    report = {
        "epsilon": spent_epsilon(plan.noise_multiplier, plan.sample_rate, steps, privacy.delta, privacy.accountant),
        "delta": float(privacy.delta),
        "noise_multiplier": plan.noise_multiplier,
        "sample_rate": plan.sample_rate,
        "steps": steps,
        "max_grad_norm": c,
        "accountant": privacy.accountant,
        "target_epsilon": float(privacy.epsilon) if privacy.epsilon is not None else None,
        "epochs": int(optim.epochs),
        "n_users": plan.n_users,
    }
    log.info("DP-SGD spent (epsilon %.4f, delta %g) over %d steps", report["epsilon"], privacy.delta, steps)
    return history, report
