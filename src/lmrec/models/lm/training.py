"""Training data and the objective of the language-model interest model.

Every user's training sequence passes once per epoch as right-padded windows of ``max_len`` tokens
(a BOS token opens the first window), with a loss at every position (causal mask), as an efficient
SASRec does. The objective is next-item retrieval:

- ``"full"``: softmax cross-entropy over the whole catalogue (all item vectors are computed once
  per step, which costs little for catalogues of tens of thousands of items);
- ``"sampled"``: softmax over in-batch positives plus popularity-sampled negatives with the log-Q
  correction, for large catalogues;
- ``"bpr"``: BPR against one uniformly sampled negative per position (for the ablation);

plus, with weights, a rating head on ``log(1 + r)`` and an event-type head. With a content channel
(``content_weight`` beta > 0) every retrieval logit gains ``beta * cos(c_u, c_i)``, the frozen
content similarity (`user_content`), so the learned towers fit what content does not explain.
Items without training interactions are never negatives: nothing is known about them, and pushing
them down would teach the model never to recommend a new item.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from lmrec.data.interactions import Interactions
from lmrec.encoders.device import amp_dtype, resolve_device
from lmrec.models.lm.config import EncoderConfig, ObjectiveConfig, OptimConfig, UserTowerConfig
from lmrec.models.lm.finetune import LoraTuner
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.user_tower import time_buckets
from lmrec.train.callbacks import EarlyStopping, LogMetrics
from lmrec.train.distributed import data_parallel, shard_batches
from lmrec.train.loop import fit_loop
from lmrec.train.losses import BPRLoss, FullSoftmaxCE, SampledSoftmax
from lmrec.train.negatives import PopularityNegatives

__all__ = ["Objective", "Windows", "append_histories", "history_tokens", "make_windows", "user_content", "with_content"]

BOS, PAD = -1, -2

log = logging.getLogger("lmrec.models.lm.model")


@dataclass
class Windows:
    """Padded training windows, all (W, L) except ``lengths`` and ``users`` (W,)."""

    tokens: np.ndarray
    buckets: np.ndarray
    targets: np.ndarray
    ratings: np.ndarray
    events: np.ndarray
    lengths: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)


def make_windows(
    items: list[np.ndarray],
    times: list[np.ndarray],
    max_len: int,
    n_buckets: int,
    ratings: list[np.ndarray] | None = None,
    events: list[np.ndarray] | None = None,
) -> Windows:
    """Cut each user's time-ordered sequence into windows from the newest end.

    Input token j is BOS (j = 0) or item j-1; the target at j is item j. A window covers inputs
    ``[a, e)`` with ``e = n, n - max_len, ...``; only the first window holds BOS.

    Args:
        items / times: per user, (n_u,) item indices and timestamps in time order.
        max_len: window length L.
        n_buckets: time-gap buckets (0: all gaps are bucket 0).
        ratings / events: per user, (n_u,) ratings (NaN: none) and event class ids (-1: none).
    """
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("tokens", "buckets", "targets", "ratings", "events")}
    lengths, users = [], []
    for u, seq in enumerate(items):
        n = len(seq)
        if n == 0:
            continue
        tok_full = np.concatenate([[BOS], seq[:-1]]).astype(np.int64)
        # input j (item j-1) carries the gap between items j-2 and j-1; BOS and the first item have none
        gaps = time_buckets(times[u], n_buckets) if n_buckets > 0 else np.zeros(n, np.int64)
        bkt_full = np.concatenate([[0], gaps[:-1]]).astype(np.int64)
        rat = ratings[u] if ratings is not None else np.full(n, np.nan, np.float32)
        evt = events[u] if events is not None else np.full(n, -1, np.int64)
        for end in range(n, 0, -max_len):
            a = max(0, end - max_len)
            size = end - a
            for key, src, fill, dtype in (
                ("tokens", tok_full, PAD, np.int64),
                ("buckets", bkt_full, 0, np.int64),
                ("targets", seq, -100, np.int64),
                ("ratings", rat, np.nan, np.float32),
                ("events", evt, -100, np.int64),
            ):
                row = np.full(max_len, fill, dtype=dtype)
                row[:size] = src[a:end]
                rows[key].append(row)
            lengths.append(size)
            users.append(u)
    if not lengths:
        raise ValueError("LMRecommender needs at least one user with a training interaction")
    return Windows(**{k: np.stack(v) for k, v in rows.items()}, lengths=np.asarray(lengths), users=np.asarray(users))


def history_tokens(
    items: list[np.ndarray], times: list[np.ndarray], max_len: int, n_buckets: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inference input: BOS + each user's last items, right-padded.

    Returns:
        ``(tokens, buckets, lengths)``: (n, L'), (n, L') and (n,) with L' = the longest row (<= max_len).
    """
    n = len(items)
    rows_t, rows_b, lengths = [], [], np.zeros(n, np.int64)
    for u in range(n):
        seq = np.asarray(items[u], dtype=np.int64)
        tok = np.concatenate([[BOS], seq])[-max_len:]
        if n_buckets > 0 and len(seq):
            bkt = np.concatenate([[0], time_buckets(np.asarray(times[u], np.float64), n_buckets)])[-max_len:]
        else:
            bkt = np.zeros(len(tok), np.int64)
        rows_t.append(tok)
        rows_b.append(bkt)
        lengths[u] = len(tok)
    width = int(lengths.max()) if n else 1
    tokens = np.full((n, width), PAD, np.int64)
    buckets = np.zeros((n, width), np.int64)
    for u in range(n):
        tokens[u, : lengths[u]] = rows_t[u]
        buckets[u, : lengths[u]] = rows_b[u]
    return tokens, buckets, lengths


def append_histories(hist_items: list[np.ndarray], hist_times: list[np.ndarray], interactions: Interactions) -> None:
    """Append interactions to per-user histories in place, each touched history kept in time order
    (a stable sort: rows with equal timestamps keep their order of arrival)."""
    order = interactions.time_order()
    for u, i, t in zip(interactions.users[order], interactions.items[order], interactions.timestamps[order]):
        hist_items[u] = np.append(hist_items[u], i)
        hist_times[u] = np.append(hist_times[u], t)
    for u in np.unique(interactions.users):
        o = np.argsort(hist_times[u], kind="stable")
        hist_items[u], hist_times[u] = hist_items[u][o], hist_times[u][o]


def user_content(content: torch.Tensor, tokens: torch.Tensor, *, last: bool = False) -> torch.Tensor:
    """Content vectors of the users at every position: the unit mean of the content vectors of the
    items read so far (BOS and padding add nothing; a position that has read no item gets zeros).

    Args:
        content: (n_items, k) unit content vectors (`ItemTower.content`).
        tokens: (B, L) item indices, -1 BOS, -2 padding.
        last: only the vector after each row's last token (inference), without the per-position sums.

    Returns:
        (B, L, k), or (B, k) with ``last``.
    """
    real = (tokens >= 0).unsqueeze(-1)
    x = content[tokens.clamp(min=0)] * real
    # the mean's direction is the sum's; padding sits after the last token and adds nothing
    return F.normalize(x.sum(dim=1) if last else x.cumsum(dim=1), dim=-1)


def with_content(learned: torch.Tensor, content: torch.Tensor | None, weight: float) -> torch.Tensor:
    """``[learned, sqrt(weight) * content]``: inner products of two such vectors are
    ``learned . learned' + weight * content . content'``; ``content`` None leaves ``learned`` as it is."""
    if content is None or weight <= 0:
        return learned
    return torch.cat([learned, content * float(np.sqrt(weight))], dim=-1)


class Objective:
    """``loss_fn(net, batch)`` for `lmrec.train.fit_loop`.

    Args:
        loss: "full", "sampled" or "bpr".
        item_counts: (n_items,) training interactions per item (popularity for sampling and log-Q).
        n_negatives: sampled negatives per step ("sampled").
        rating_weight / event_weight: weights of the heads' losses.
        content_weight: weight beta of the frozen content channel in the retrieval logits (0: off).
        generator: torch RNG for ID dropout and negative sampling.
    """

    def __init__(
        self,
        loss: Literal["full", "sampled", "bpr"],
        item_counts: np.ndarray,
        *,
        n_negatives: int = 256,
        rating_weight: float = 0.0,
        event_weight: float = 0.0,
        content_weight: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        self.loss, self.n_negatives = loss, n_negatives
        self.content_weight = float(content_weight)
        self._content: torch.Tensor | None = None  # (n_items, k), computed once: the channel is frozen
        self.rating_weight, self.event_weight = rating_weight, event_weight
        self.generator = generator
        counts = torch.as_tensor(np.asarray(item_counts, dtype=np.float64))
        # in-batch positives occur in proportion to popularity; sampled negatives are drawn from
        # popularity^0.75 (word2vec's smoothing), never from items without training data
        self.negatives = PopularityNegatives(item_counts, n_negatives)
        self.n_items = len(counts)
        # items without training interactions are never negatives: nothing is known about them, and
        # pushing them down would teach the model to never recommend a new item (cold start)
        self.trainable = counts > 0
        self.trainable_idx = torch.nonzero(self.trainable).squeeze(1)
        self.ce, self.sampled, self.bpr = FullSoftmaxCE(), SampledSoftmax(temperature=1.0), BPRLoss()
        #: ``targets -> (n_items, D) text vectors`` with gradients into the LM (LoRA), or None
        self.text_hook: Callable[[torch.Tensor], torch.Tensor] | None = None
        #: a frozen copy of the network before a `partial_fit`, in eval mode, and the weight of the
        #: distillation toward it (learning without forgetting); None / 0: off
        self.teacher: LMNet | None = None
        self._teacher_vecs: torch.Tensor | None = None  # its (n_items, d) item vectors, computed once
        self.distill = 0.0
        #: distil only positions whose ``events`` equal this mark (replayed rows); None: every position
        self.distill_mark: int | None = None

    @property
    def log_pos_q(self) -> torch.Tensor:
        """(n_items,) log-probability of each item being an in-batch positive (its popularity)."""
        return self.negatives.log_pos_q

    @property
    def neg_p(self) -> torch.Tensor:
        """(n_items,) the distribution the sampled negatives come from."""
        return self.negatives.neg_p

    def to(self, device: torch.device) -> Objective:
        """Move the sampling tables to ``device`` (the network's), so a step draws negatives there;
        ``generator`` must live on the same device."""
        self.negatives.to(device)
        self.trainable, self.trainable_idx = self.trainable.to(device), self.trainable_idx.to(device)
        if self._content is not None:
            self._content = self._content.to(device)
        return self

    def _retrieval(
        self,
        net: LMNet,
        batch: dict[str, torch.Tensor],
        item_text: torch.Tensor | None = None,
        vecs: torch.Tensor | None = None,
    ):
        """The vectors the losses read: ``(u, v_all, u_s, v_s, target)``, ``u`` (N, d) at the N
        positions with a target, ``v_all`` (n_items, d), ``u_s`` / ``v_s`` the same with the content
        channel appended when it is on. ``vecs``: the item tower's output, when already known."""
        if vecs is None:
            vecs = net.item_tower(self.generator, item_text)  # (n_items, d), ID dropout in train mode
        text, has_text = net.user_text_of(batch["users"])
        states = net.user_tower(vecs, batch["tokens"], batch["lengths"], batch["buckets"], text, has_text)  # (B, L, d)
        keep = batch["targets"] >= 0
        u = net.project(states[keep])  # (N, d)
        v_all = net.project(vecs)
        u_s, v_s = u, v_all  # the vectors the retrieval loss scores (plus the content channel)
        if self.content_weight > 0:
            if self._content is None:
                with torch.no_grad():
                    self._content = net.item_tower.content()
            c_u = user_content(self._content, batch["tokens"])[keep]  # (N, k)
            u_s = with_content(u, c_u, self.content_weight)
            v_s = with_content(v_all, self._content, self.content_weight)
        return u, v_all, u_s, v_s, batch["targets"][keep]

    def _distillation(
        self,
        net: LMNet,
        batch: dict[str, torch.Tensor],
        u_s: torch.Tensor,
        v_s: torch.Tensor,
        target: torch.Tensor,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean KL(teacher || student) of the next-item distributions over the candidates (LwF), over
        the (N,) positions ``rows`` (None: all N)."""
        if self.loss == "full":
            cand = self.trainable_idx
        else:
            neg, _ = self.negatives.draw(self.generator)
            cand = torch.unique(torch.cat([target, neg]))
        teacher = self.teacher
        assert teacher is not None  # called only with a teacher
        with torch.no_grad():
            if self._teacher_vecs is None:  # the teacher is frozen (eval mode): its item vectors once
                self._teacher_vecs = teacher.item_tower()
            _, _, tu, tv, _ = self._retrieval(teacher, batch, vecs=self._teacher_vecs)
            if rows is not None:
                tu = tu[rows]
            p_t = F.log_softmax(tu @ tv[cand].T / teacher.temperature, dim=-1)  # (N, C) log-probabilities
        log_s = F.log_softmax((u_s if rows is None else u_s[rows]) @ v_s[cand].T / net.temperature, dim=-1)
        return (p_t.exp() * (p_t - log_s)).sum(-1).mean()

    def __call__(self, net: LMNet, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        text = self.text_hook(batch["targets"][batch["targets"] >= 0]) if self.text_hook is not None else None
        u, v_all, u_s, v_s, target = self._retrieval(net, batch, text)
        keep = batch["targets"] >= 0
        tau = net.temperature
        if self.loss == "full":
            logits = (u_s @ v_s.T / tau).masked_fill(~self.trainable, float("-inf"))  # (N, n_items)
            total = self.ce(logits, target)
        elif self.loss == "sampled":
            neg, neg_log_q = self.negatives.draw(self.generator)
            total = self.sampled(
                u_s / tau,
                v_s[target],
                v_s[neg],
                pos_log_q=self.negatives.log_pos_q[target],
                neg_log_q=neg_log_q,
                pos_ids=target,
                neg_ids=neg,
            )
        else:
            pick = torch.randint(
                0, len(self.trainable_idx), target.shape, generator=self.generator, device=self.trainable_idx.device
            )
            neg = self.trainable_idx[pick]
            total = self.bpr((u_s * v_s[target]).sum(-1) / tau, (u_s * v_s[neg]).sum(-1) / tau)
        if net.rating_head is not None and self.rating_weight > 0:
            r = batch["ratings"][keep]
            ok = torch.isfinite(r)
            if ok.any():
                pred = net.rating_head(net.pair_features(u[ok], v_all[target[ok]])).squeeze(-1)
                total = total + self.rating_weight * F.mse_loss(pred, torch.log1p(r[ok].clamp(min=0)))
        if net.event_head is not None and self.event_weight > 0:
            e = batch["events"][keep]
            ok = e >= 0
            if ok.any():
                logits = net.event_head(net.pair_features(u[ok], v_all[target[ok]]))
                total = total + self.event_weight * F.cross_entropy(logits, e[ok])
        if self.teacher is not None and self.distill > 0 and len(target):
            rows = None if self.distill_mark is None else batch["events"][keep] == self.distill_mark
            if rows is None or rows.any():
                total = total + self.distill * self._distillation(net, batch, u_s, v_s, target, rows)
        return total


def batches_of(windows: Windows, batch_size: int, seed: int, rank: int = 0, world: int = 1):
    """``epoch -> iterator of batch dicts``, shuffled with a seed derived from the epoch; with
    ``world`` > 1, this rank's share of every global batch (`lmrec.train.distributed.shard_batches`)."""
    tensors = {
        "tokens": torch.from_numpy(windows.tokens),
        "buckets": torch.from_numpy(windows.buckets),
        "targets": torch.from_numpy(windows.targets),
        "ratings": torch.from_numpy(windows.ratings),
        "events": torch.from_numpy(windows.events),
        "lengths": torch.from_numpy(windows.lengths),
        "users": torch.from_numpy(windows.users),
    }

    def batches(epoch: int):
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(windows)))
        for sel in shard_batches(order, batch_size, rank, world):
            # trim the padded tail shared by every row of the batch
            width = int(tensors["lengths"][sel].max())
            yield {k: (v[sel][:, :width] if v.dim() == 2 else v[sel]) for k, v in tensors.items()}

    return batches


def score_users(net: LMNet, vecs: torch.Tensor, tokens, buckets, lengths, text, has_text) -> torch.Tensor:
    """(n, d) user vectors (unit for cosine) read at each row's last token (eval mode, no grad)."""
    states = net.user_tower(vecs, tokens, lengths, buckets, text, has_text)  # (n, L, d)
    last = states[torch.arange(len(lengths)), lengths - 1]
    return net.project(last)


__all__ += ["batches_of", "score_users"]


def user_columns(
    inter, rating_weight: float
) -> tuple[Callable[[np.ndarray], list[np.ndarray]], list[np.ndarray] | None]:
    """Cut per-interaction columns of ``inter`` into each user's rows, oldest first.

    Args:
        inter: the training interactions.
        rating_weight: the weight of the rating head (0: no ratings are needed).

    Returns:
        ``per_user``, which maps a (len(inter),) array to ``n_users`` arrays (each user's rows in
        `time_order`), and the per-user float32 ratings, or None when ``inter`` has no ratings or
        ``rating_weight`` is 0.
    """
    order = inter.time_order()
    bounds = np.searchsorted(inter.users[order], np.arange(inter.n_users + 1))

    def per_user(arr: np.ndarray) -> list[np.ndarray]:
        arr = arr[order]
        return [arr[bounds[u] : bounds[u + 1]] for u in range(inter.n_users)]

    ratings = None
    if inter.ratings is not None and rating_weight > 0:
        ratings = per_user(inter.ratings.astype(np.float32))
    return per_user, ratings


def training_windows(
    inter: Interactions,
    hist_items: list[np.ndarray],
    hist_times: list[np.ndarray],
    user_tower: UserTowerConfig,
    rating_weight: float,
    event_classes: list[str],
) -> Windows:
    """The windows of a full training pass: every position a target, with ratings and event classes.

    Args:
        inter: the training interactions.
        hist_items / hist_times: each user's items and timestamps in time order (from ``inter``).
        user_tower: history length and time buckets.
        rating_weight: the rating head's weight (0: no ratings in the windows).
        event_classes: the event head's classes (empty: no events).
    """
    per_user, ratings = user_columns(inter, rating_weight)
    events = None
    if event_classes:
        assert inter.events is not None  # event classes come from the events
        lookup = {c: i for i, c in enumerate(event_classes)}
        events = per_user(np.array([lookup[e] for e in inter.events.astype(str)], dtype=np.int64))
    return make_windows(hist_items, hist_times, user_tower.max_len, user_tower.n_time_buckets, ratings, events)


@dataclass
class LoraSetup:
    """What LoRA fine-tuning of the language model during training needs.

    Attributes:
        encoder: the trainable text encoder (adapters attached).
        texts: every item's text in index order.
        config: adapter settings (``lora_items_per_step``, ``lora_lr``).
    """

    encoder: Any
    texts: list[str]
    config: EncoderConfig


def train_network(
    net: LMNet,
    windows: Windows,
    counts: np.ndarray,
    *,
    objective: ObjectiveConfig,
    optim: OptimConfig,
    content_weight: float,
    seed: int,
    validate: Callable[[], dict[str, float]] | None = None,
    lora: LoraSetup | None = None,
    show_progress: bool = False,
) -> list[dict[str, float]]:
    """Train ``net`` on ``windows`` with `lmrec.train.fit_loop`; returns the per-epoch history.

    With ``validate``, `EarlyStopping` on its ``"ndcg@10"`` keeps the best weights.

    Training runs on ``optim.device`` with ``optim.precision`` (`lmrec.encoders.device`); batches are
    built on the host and moved once per step, and the network (and a LoRA-tuned encoder) is back
    on the CPU when this returns. Validation, which scores through the CPU-side vector code, moves
    the network to the CPU for its duration.

    Args:
        net: the network (item tower over every item of ``counts``).
        windows: the training windows.
        counts: (n_items,) training interactions per item (popularity for sampling and log-Q).
        objective / optim: loss and optimisation settings.
        content_weight: weight of the frozen content channel (0: off).
        seed: seeds shuffling, ID dropout and negative sampling.
        validate: ``() -> {"ndcg@10", ...}`` after every epoch, or None.
        lora: LoRA fine-tuning of the language model, or None.
        show_progress: a progress bar over epochs.
    """
    device = resolve_device(optim.device)
    amp = amp_dtype(device, optim.precision)
    if device.type != "cpu":
        log.info("training on %s (autocast %s)", device, amp)
    net.to(device)
    if lora is not None:
        lora.encoder.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    loss_fn = Objective(
        objective.resolved_loss(len(counts)),
        counts,
        n_negatives=objective.n_negatives,
        rating_weight=objective.rating_weight,
        event_weight=objective.event_weight,
        content_weight=content_weight,
        generator=generator,
    ).to(device)
    callbacks: list = [LogMetrics(log)]
    if validate is not None:
        callbacks.append(EarlyStopping("ndcg@10", mode="max", patience=int(optim.patience)))
    groups: list[dict[str, Any]] = [{"params": list(net.parameters())}]
    tuner: LoraTuner | None = None
    if lora is not None:
        tuner = LoraTuner(
            lora.encoder, lora.texts, net.item_tower.text, int(lora.config.lora_items_per_step), generator
        )
        loss_fn.text_hook = tuner.fresh_text
        callbacks.append(tuner)  # after EarlyStopping: restores the adapters of the same best epoch
        groups.append({"params": lora.encoder.trainable_parameters(), "lr": lora.config.lora_lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
    if validate is not None and device.type != "cpu":
        validate = _validate_on_cpu(net, device, validate, tuner)
    rank, world = data_parallel()  # inside Ray Train's workers: a share of each batch, averaged gradients
    try:
        state = fit_loop(
            net,
            batches_of(windows, int(optim.batch_size), seed, rank, world),
            loss_fn,
            optimizer,
            epochs=int(optim.epochs),
            callbacks=callbacks,
            validate=validate,
            grad_clip=optim.grad_clip,
            show_progress=show_progress,
            device=device,
            amp_dtype=amp,
            average_gradients=world > 1,
        )
    finally:
        net.cpu()
        if lora is not None:
            lora.encoder.to(torch.device("cpu"))
    return state.history


def _validate_on_cpu(
    net: LMNet, device: torch.device, validate: Callable[[], dict[str, float]], tuner: LoraTuner | None
) -> Callable[[], dict[str, float]]:
    """``validate`` with ``net`` on the CPU while it runs (the vector code reads host tensors)."""

    def run() -> dict[str, float]:
        net.cpu()
        try:
            return validate()
        finally:
            net.to(device)
            if tuner is not None:
                tuner.buffer = net.item_tower.text  # moving replaced the buffer tensor

    return run


__all__ += ["LoraSetup", "train_network", "training_windows", "user_columns"]
