"""Continual learning for the language-model interest model: ``partial_fit`` and what it needs.

An update takes a window of new interactions in raw external ids, grows the id maps (existing
indices never change), adds new items through their text and new users with their history, and then
warm-starts from the current network: a fresh optimiser trains on the new rows for a few epochs.

Three guards against forgetting, all configured on the model:

- a replay buffer (`ReplayBuffer`) holding a weighted random sample of earlier interactions, which are
  trained again as targets (with their true preceding history as input) in every update. ``"reservoir"``
  samples every earlier row with the same probability, ``"recency"`` with weight ``2^(t / half_life)``
  so that recent rows are favoured;
- a pull toward the weights before the update: L2-SP or EWC (the same pull weighted by a diagonal
  Fisher estimate on the replayed rows, normalised to mean 1, so strengths are comparable). It is
  decoupled from the loss, as AdamW decouples weight decay: after every optimiser step
  ``w <- w - lr * strength * F * (w - w_prev)`` (`pull_toward_anchor`). Added to the loss instead,
  the penalty's gradient would be rescaled by Adam per parameter: wherever the data's gradient is
  small (most item rows, most adaptor weights) it dominates, and Adam then takes steps of about
  ``lr`` in its sign whatever ``strength`` is, so the weights jitter around the anchor instead of
  learning (on Amazon Office such an update ended below no update at all);
- distillation (learning without forgetting, ``distill`` > 0): a frozen copy of the network taken
  just before the update (maps grown, new items on its text path) scores every training position,
  and ``distill * KL(teacher || student)`` of the two next-item distributions joins the loss
  (`lmrec.models.lm.training.Objective`). Unlike the weight pull it constrains what the model
  answers, not where its weights are, so the update may move weights that do not change old answers.

Training targets are new rows and replayed rows only; every other position still serves as input
context. The rating and event heads are not trained by updates (the model keeps no per-row ratings).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from lmrec.data.catalog import ItemCatalog, UserTexts, clean_text
from lmrec.data.interactions import Interactions
from lmrec.models.base import Recommender

if TYPE_CHECKING:
    from lmrec.models.lm.model import LMRecommender

__all__ = [
    "ReplayBuffer", "as_raw_frame", "grow_maps", "on_model_maps", "partial_fit_lm", "pull_toward_anchor",
    "weight_penalty",
]

log = logging.getLogger(__name__)

ReplayKind = Literal["none", "reservoir", "recency"]
#: ``events`` value of a replayed target position in update windows (see `_target_windows`)
REPLAYED = -2
RegKind = Literal["none", "l2sp", "ewc"]


# ---------------------------------------------------------------------- raw rows and growing maps
def as_raw_frame(new: Interactions | pd.DataFrame) -> pd.DataFrame:
    """New interactions as a frame of raw ids: ``user_id``, ``item_id``, ``timestamp``.

    Args:
        new: an `Interactions` (on any id maps: its maps translate indices back to raw ids, so one
            built on a grown copy of the model's maps works, and so does an independent one) or a
            DataFrame with columns ``user_id``, ``item_id`` and optionally ``timestamp`` (row order
            otherwise).

    Raises:
        ValueError: a required column is missing.
    """
    if isinstance(new, Interactions):
        frame = new.to_frame()
    elif isinstance(new, pd.DataFrame):
        missing = [c for c in ("user_id", "item_id") if c not in new.columns]
        if missing:
            raise ValueError(f"partial_fit: new_interactions frame lacks columns {missing}; it has {list(new.columns)}")
        frame = new.copy()
        if "timestamp" not in frame.columns:
            frame["timestamp"] = np.arange(len(frame), dtype=np.float64)
    else:
        raise ValueError(f"partial_fit: new_interactions must be Interactions or a DataFrame, got {type(new).__name__}")
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    frame["timestamp"] = pd.to_numeric(frame["timestamp"], errors="raise").astype(np.float64)
    return frame.reset_index(drop=True)


def grow_maps(
    model: Recommender, frame: pd.DataFrame, extra_items: Iterable[str] = (), extra_users: Iterable[str] = ()
) -> tuple[Interactions, list[str], list[str]]:
    """Grow ``model.user_map_`` / ``item_map_`` (copies: maps shared with data sets stay as they are)
    and ``seen_`` to cover the frame and the extra ids; the frame's rows are not added to ``seen_``
    (``observe`` does that).

    Returns:
        ``(interactions, new_user_ids, new_item_ids)``: the frame's rows on the grown maps, and the
        ids that were added (in index order). New users are the frame's unknown users, then
        ``extra_users``; new items the frame's unknown items, then ``extra_items``.
    """
    new_users = [u for u in dict.fromkeys([*frame["user_id"], *map(str, extra_users)]) if u not in model.user_map_]
    new_items = [i for i in dict.fromkeys([*frame["item_id"], *map(str, extra_items)]) if i not in model.item_map_]
    if new_users:
        model.user_map_ = model.user_map_.copy().fit_partial(new_users)
    if new_items:
        model.item_map_ = model.item_map_.copy().fit_partial(new_items)
    n_u, n_i = len(model.user_map_), len(model.item_map_)
    seen = model.seen_
    if seen.shape[1] < n_i:
        seen = sp.hstack([seen, sp.csr_matrix((seen.shape[0], n_i - seen.shape[1]), dtype=np.float32)])
    if seen.shape[0] < n_u:
        seen = sp.vstack([seen, sp.csr_matrix((n_u - seen.shape[0], n_i), dtype=np.float32)])
    model.seen_ = seen.tocsr().astype(np.float32)
    return on_model_maps(model, frame), new_users, new_items


def on_model_maps(model: Recommender, frame: pd.DataFrame) -> Interactions:
    """A raw-id frame's rows as `Interactions` on the model's own maps (every id must be in them)."""
    extra = {c: c for c in ("rating", "weight") if c in frame.columns}
    inter = Interactions.from_frame(
        frame, rating_col=extra.get("rating"), weight_col=extra.get("weight"),
        user_map=model.user_map_, item_map=model.item_map_,
    )
    # from_frame copies the maps; every id is already in them, so the copies equal the model's maps
    return Interactions(inter.users, inter.items, inter.timestamps, model.user_map_, model.item_map_,
                        inter.ratings, inter.weights)


# ---------------------------------------------------------------------- replay buffer
class ReplayBuffer:
    """A weighted random sample of past interaction rows, of fixed size, kept while rows stream in.

    Each row gets the key ``log(E) - log(w)`` with ``E ~ Exp(1)``; the buffer keeps the ``size``
    smallest keys (Efraimidis and Spirakis' weighted sampling without replacement, in log space).
    With ``w = 1`` (``"reservoir"``) this is a uniform sample of every row seen so far, exactly as
    reservoir sampling; with ``w = 2^(t / half_life)`` (``"recency"``) a row ``half_life`` seconds
    newer is twice as likely to be kept. Keys never change once drawn, so adding rows in any number
    of chunks gives the same sample distribution as adding them at once.

    Args:
        size: rows kept (>= 1).
        kind: ``"reservoir"`` or ``"recency"``.
        half_life: seconds; needed for ``"recency"``.
        random_state: seed of the keys.
    """

    def __init__(
        self, size: int, kind: Literal["reservoir", "recency"] = "reservoir", *, half_life: float | None = None,
        random_state: int | None = 0,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"ReplayBuffer size must be an integer >= 1, got {size!r}")
        if kind not in ("reservoir", "recency"):
            raise ValueError(f"ReplayBuffer kind must be 'reservoir' or 'recency', got {kind!r}")
        if kind == "recency" and not (half_life is not None and half_life > 0):
            raise ValueError(f"ReplayBuffer kind='recency' needs half_life > 0 seconds, got {half_life!r}")
        self.size, self.kind, self.half_life = int(size), kind, half_life
        self._rng = np.random.default_rng(random_state)
        self.users = np.zeros(0, np.int64)
        self.items = np.zeros(0, np.int64)
        self.timestamps = np.zeros(0, np.float64)
        self._keys = np.zeros(0, np.float64)
        self.n_seen = 0

    def __len__(self) -> int:
        return len(self.users)

    def add(self, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray) -> None:
        """Offer rows (parallel (n,) arrays of user and item indices and seconds) to the buffer."""
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        timestamps = np.asarray(timestamps, np.float64)
        if not len(users) == len(items) == len(timestamps):
            raise ValueError("ReplayBuffer.add: users, items and timestamps differ in length")
        keys = np.log(self._rng.standard_exponential(len(users)))
        if self.kind == "recency":
            keys = keys - timestamps * (np.log(2.0) / float(self.half_life))  # log w = t ln2 / half_life
        self.n_seen += len(users)
        all_keys = np.concatenate([self._keys, keys])
        keep = np.argsort(all_keys, kind="stable")[: self.size]
        self.users = np.concatenate([self.users, users])[keep]
        self.items = np.concatenate([self.items, items])[keep]
        self.timestamps = np.concatenate([self.timestamps, timestamps])[keep]
        self._keys = all_keys[keep]


# ---------------------------------------------------------------------- regularisers
def _anchor(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}


def _anchor_rows(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rows of the item ID table that had training data before the update: only they have learned
    values worth keeping (the rows of cold items are still their random initialisation)."""
    tower = getattr(net, "item_tower", None)
    if tower is None or not hasattr(tower, "id_emb"):
        return {}
    return {"item_tower.id_emb.weight": (tower.id_mask > 0).detach().clone()}


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
    net: torch.nn.Module, anchor: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor] | None = None,
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
    net: torch.nn.Module, anchor: dict[str, torch.Tensor], rate: float, fisher: dict[str, torch.Tensor] | None = None,
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
        share = torch.full_like(ref, float(rate)) if fisher is None or name not in fisher else (
            float(rate) * fisher[name][: ref.shape[0]])
        share = share.clamp(0.0, 1.0)
        if rows is not None and name in rows:
            share = share * rows[name].to(share.dtype).view(-1, *([1] * (share.dim() - 1)))
        cur.sub_(share * (cur - ref))


def _fisher(net, objective, batches, max_batches: int = 20) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher: mean squared gradient of the loss over batches, normalised to mean 1."""
    sums = {n: torch.zeros_like(p) for n, p in net.named_parameters() if p.requires_grad}
    count = 0
    net.train()
    for batch in batches(0):
        net.zero_grad(set_to_none=True)
        objective(net, batch).backward()
        for n, p in net.named_parameters():
            if n in sums and p.grad is not None:
                sums[n] += p.grad.detach().pow(2)
        count += 1
        if count >= max_batches:
            break
    net.zero_grad(set_to_none=True)
    net.eval()
    total = sum(float(s.sum()) for s in sums.values())
    n_params = sum(s.numel() for s in sums.values())
    scale = n_params / total if total > 0 else 1.0
    return {n: s * scale for n, s in sums.items()}


# ---------------------------------------------------------------------- windows with chosen targets
def _target_windows(model: LMRecommender, targets: pd.MultiIndex, replayed: pd.MultiIndex | None = None):
    """Training windows over the users' full histories whose targets are only the rows in ``targets``
    (a MultiIndex of (user, item, timestamp)); windows without any such target are dropped.

    Target positions that are in ``replayed`` carry ``REPLAYED`` in the ``events`` channel (every
    other position -100), so that distillation can be restricted to them; the event head reads only
    events >= 0, so it never trains on the mark."""
    from lmrec.models.lm.training import make_windows

    if len(targets) == 0:
        return None
    n_users = len(model.hist_items_)
    is_target_user = np.zeros(n_users, dtype=bool)
    is_target_user[np.unique(targets.get_level_values(0))] = True
    lengths = np.array([len(h) if is_target_user[u] else 0 for u, h in enumerate(model.hist_items_)], np.int64)
    target_users = np.flatnonzero(is_target_user)
    all_users = np.repeat(np.arange(n_users), lengths)
    all_items = np.concatenate([model.hist_items_[u] for u in target_users] or [np.zeros(0, np.int64)])
    all_times = np.concatenate([model.hist_times_[u] for u in target_users] or [np.zeros(0)])
    index = _rows_index(all_users, all_items, all_times)
    keep = index.isin(targets)  # one lookup for every position
    flag_all = np.where(keep, 1, -1).astype(np.int64)
    if replayed is not None and len(replayed):
        flag_all[keep & index.isin(replayed)] = 2
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    items = [all_items[bounds[u] : bounds[u + 1]] for u in range(n_users)]
    times = [all_times[bounds[u] : bounds[u + 1]] for u in range(n_users)]
    flags = [flag_all[bounds[u] : bounds[u + 1]] for u in range(n_users)]
    # the event channel carries the target flags through make_windows' windowing (1 = train on it,
    # 2 = train on it, a replayed row)
    win = make_windows(items, times, model.max_len, model.n_time_buckets, None, flags)
    chosen = win.events >= 1
    win.targets[~chosen] = -100
    win.events[:] = np.where(win.events == 2, REPLAYED, -100)
    has = chosen.any(axis=1)
    for name in ("tokens", "buckets", "targets", "ratings", "events", "lengths", "users"):
        setattr(win, name, getattr(win, name)[has])
    return win if len(win) else None


def _rows_index(users, items, times) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([np.asarray(users, np.int64), np.asarray(items, np.int64),
                                      np.asarray(times, np.float64)])


# ---------------------------------------------------------------------- growth of the network
def _grow_items(model: LMRecommender, new_ids: list[str], new_items: ItemCatalog | None) -> None:
    from lmrec.models.lm.text import encode_texts, format_item_text

    if not new_ids:
        return
    fields = list(model.item_fields_)
    values = {f: [""] * len(new_ids) for f in fields}
    if new_items is not None:
        frame = new_items.frame.reindex(new_ids)
        for f in fields:
            if f in frame.columns:
                values[f] = [clean_text(v) for v in frame[f].tolist()]
    texts = [format_item_text({f: values[f][j] for f in fields}, fields) for j in range(len(new_ids))]
    raw = None
    if model.item_repr != "id":
        if not all(texts):
            log.warning("partial_fit: %d new items have no text in new_items", sum(not t for t in texts))
        raw = encode_texts(model._get_encoder(), texts, cache_dir=model.cache_dir, show_progress=model.show_progress)
    model.net_.item_tower.grow(raw, len(new_ids))
    model.counts_ = np.concatenate([model.counts_, np.zeros(len(new_ids), model.counts_.dtype)])
    for f in fields:
        model.item_fields_[f].extend(values[f])


@torch.no_grad()
def _grow_users(model: LMRecommender, new_ids: list[str], new_users: UserTexts | None) -> None:
    from lmrec.data.idmap import IdMap
    from lmrec.models.lm.text import encode_texts, user_texts

    if not new_ids:
        return
    model.hist_items_.extend(np.zeros(0, np.int64) for _ in new_ids)
    model.hist_times_.extend(np.zeros(0, np.float64) for _ in new_ids)
    net = model.net_
    if hasattr(net, "user_text"):
        raw = np.zeros((len(new_ids), net.user_text.shape[1]), np.float32)
        texts = user_texts(new_users, IdMap(new_ids), model.user_text_kinds) if new_users is not None else []
        has = np.array([bool(t) for t in texts] or [False] * len(new_ids), dtype=bool)
        if has.any():
            raw[has] = encode_texts(model._get_encoder(), [t for t in texts if t], cache_dir=model.cache_dir)
        net.user_text = torch.cat([net.user_text, torch.from_numpy(raw)])
        net.has_text = torch.cat([net.has_text, torch.from_numpy(has)])


# ---------------------------------------------------------------------- partial_fit
def _replay_buffer(model: LMRecommender) -> ReplayBuffer | None:
    """The model's buffer, built from its current histories when absent or stale (after fit or load)."""
    if model.replay == "none":
        return None
    buf = getattr(model, "_replay_buffer", None)
    if buf is not None and getattr(model, "_replay_net", None) is model.net_:
        return buf
    lengths = np.array([len(h) for h in model.hist_items_], dtype=np.int64)
    users = np.repeat(np.arange(len(lengths)), lengths)
    items = np.concatenate(model.hist_items_ or [np.zeros(0, np.int64)])
    times = np.concatenate(model.hist_times_ or [np.zeros(0)])
    half_life = model.replay_half_life
    if model.replay == "recency" and half_life is None:
        span = float(times.max() - times.min()) if len(times) else 0.0
        half_life = max(span / 4.0, 1.0)  # a quarter of the history's time span
    seed = 0 if model.random_state is None else int(model.random_state)
    buf = ReplayBuffer(int(model.replay_size), model.replay, half_life=half_life, random_state=seed)
    buf.add(users, items, times)
    model._replay_buffer, model._replay_net = buf, model.net_
    return buf


def partial_fit_lm(
    model: LMRecommender,
    new_interactions: Interactions | pd.DataFrame,
    new_items: ItemCatalog | None = None,
    new_users: UserTexts | None = None,
    *,
    epochs: int | None = None,
    valid: Interactions | pd.DataFrame | None = None,
) -> LMRecommender:
    """Continue training ``model`` on new interactions; see `LMRecommender.partial_fit`."""
    from lmrec.models.lm.training import Objective, batches_of
    from lmrec.train.loop import fit_loop

    model._check_fitted()
    model._check_params()
    if model.finetune_lm == "lora":
        raise ValueError("LMRecommender.partial_fit does not support finetune_lm='lora'; refit instead")
    epochs = int(model.update_epochs if epochs is None else epochs)
    if epochs < 0:
        raise ValueError(f"partial_fit epochs must be >= 0, got {epochs!r}")
    started = time.perf_counter()
    frame = as_raw_frame(new_interactions)
    vframe = as_raw_frame(valid) if valid is not None else None
    if vframe is not None and not len(vframe):
        vframe = None
    buffer = _replay_buffer(model) if epochs > 0 else None
    # the weights before the update, taken before the item table grows (new rows have no past)
    anchor = _anchor(model.net_) if epochs > 0 and model.regularizer != "none" and model.reg_strength > 0 else None
    anchor_rows = _anchor_rows(model.net_) if anchor is not None else None
    catalog_ids = list(new_items.frame.index) if new_items is not None else []
    extra_items = [*catalog_ids, *(vframe["item_id"] if vframe is not None else [])]
    extra_users = list(vframe["user_id"]) if vframe is not None else []
    inter, new_user_ids, new_item_ids = grow_maps(model, frame, extra_items, extra_users)
    _grow_items(model, new_item_ids, new_items)
    _grow_users(model, new_user_ids, new_users)
    model.observe(inter)  # histories and seen_
    model.counts_ = model.counts_ + inter.item_counts().astype(model.counts_.dtype)
    _refresh_id_mask(model)
    model.n_updates_ = getattr(model, "n_updates_", 0) + 1
    vinter = on_model_maps(model, vframe) if vframe is not None else None
    chosen: dict[str, object] = {}
    if epochs > 0 and len(inter):
        targets = _rows_index(inter.users, inter.items, inter.timestamps)
        replayed = None
        if buffer is not None and len(buffer):
            replayed = _rows_index(buffer.users, buffer.items, buffer.timestamps)
            targets = targets.append(replayed)
            _count_untrained(model, buffer.items)
        windows = _target_windows(model, targets, replayed)
        seed = (0 if model.random_state is None else int(model.random_state)) + 7919 * model.n_updates_
        old_threads = torch.get_num_threads()
        if model.num_threads is not None:
            torch.set_num_threads(int(model.num_threads))
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                # LwF: the model as it is now (maps grown, new items on its text path) teaches the update
                teacher = copy.deepcopy(model.net_).eval().requires_grad_(False) if model.distill > 0 else None
                chosen = _train_update(model, windows, buffer, (anchor, anchor_rows), epochs, seed, Objective,
                                       batches_of, fit_loop, vinter, teacher)
        finally:
            torch.set_num_threads(old_threads)
    replayed = int(len(buffer)) if buffer is not None else 0
    if vinter is not None:  # validated on, now part of the history (as `lmrec train` does after early stopping)
        model.observe(vinter)
        model.counts_ = model.counts_ + vinter.item_counts().astype(model.counts_.dtype)
        _refresh_id_mask(model)
    if buffer is not None:
        buffer.add(inter.users, inter.items, inter.timestamps)
        if vinter is not None:
            buffer.add(vinter.users, vinter.items, vinter.timestamps)
    model.net_.eval()
    model._refresh()
    model.last_update_ = {"rows": int(len(inter)), "valid_rows": int(len(vinter)) if vinter is not None else 0,
                          "new_users": len(new_user_ids), "new_items": len(new_item_ids), "epochs": epochs,
                          **chosen, "replayed": replayed, "train_s": time.perf_counter() - started}
    log.info("partial_fit: %s", model.last_update_)
    return model


def _count_untrained(model: LMRecommender, items: np.ndarray) -> None:
    """Count replayed rows of items the model has never trained on as training rows.

    A history can hold rows that were observed but never trained on (``fit`` followed by ``observe``,
    as after early stopping). Replayed, such a row becomes a target of an item with count 0, which the
    objective excludes from the softmax (log-Q -inf): the loss would be infinite. Now that the item is
    trained on, it counts like any other.
    """
    items = np.asarray(items, dtype=np.int64)
    fresh = items[model.counts_[items] == 0]
    if len(fresh):
        model.counts_ = model.counts_ + np.bincount(fresh, minlength=len(model.counts_)).astype(model.counts_.dtype)
        _refresh_id_mask(model)


def _refresh_id_mask(model: LMRecommender) -> None:
    with torch.no_grad():
        model.net_.item_tower.id_mask = torch.as_tensor((model.counts_ > 0).astype(np.float32))


def _train_update(model, windows, buffer, anchored, epochs, seed, Objective, batches_of, fit_loop,
                  valid=None, teacher=None) -> dict[str, object]:
    """Train the update; with ``valid``, keep the best of epochs 0 (the weights before it) to ``epochs``
    by NDCG@10 on it and return ``{"best_epoch", "valid_ndcg@10", "valid_ndcg@10_before"}``."""
    from lmrec.eval.gate import history_of
    from lmrec.models.lm.training import validator
    from lmrec.train.callbacks import EarlyStopping

    if windows is None:
        return {}
    anchor, anchor_rows = anchored
    net = model.net_
    generator = torch.Generator().manual_seed(seed)
    objective = Objective(model._resolved_loss(len(model.counts_)), model.counts_, n_negatives=model.n_negatives,
                          content_weight=model.content_weight, generator=generator)
    if teacher is not None:
        objective.teacher, objective.distill = teacher, float(model.distill)
        objective.distill_mark = REPLAYED if model.distill_rows == "replayed" else None
    fisher = None
    if anchor is not None and model.regularizer == "ewc":
        old = None
        if buffer is not None and len(buffer):
            old = _target_windows(model, _rows_index(buffer.users, buffer.items, buffer.timestamps))
        fisher = _fisher(net, objective, batches_of(old if old is not None else windows, int(model.batch_size), seed))
    lr = model.lr if model.update_lr is None else model.update_lr
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=model.weight_decay)
    if anchor is not None:
        rate = float(lr) * float(model.reg_strength)
        # decoupled from the loss (see the module docstring): pulled after every step
        optimizer.register_step_post_hook(lambda *_: pull_toward_anchor(net, anchor, rate, fisher, anchor_rows))
    validate, callbacks, before, snapshot = None, [], None, None
    if valid is not None and len(valid):
        validate = validator(model, history_of(model), valid)  # every row the model holds masked
        before = validate()["ndcg@10"]
        snapshot = {k: v.detach().clone() for k, v in net.state_dict().items()}
        stopper = EarlyStopping("ndcg@10", mode="max", patience=int(model.patience))
        callbacks.append(stopper)
    state = fit_loop(net, batches_of(windows, int(model.batch_size), seed), objective, optimizer, epochs=epochs,
                     callbacks=callbacks, validate=validate, grad_clip=model.grad_clip,
                     show_progress=model.show_progress)
    model.update_history_ = state.history
    if validate is None:
        return {}
    if stopper.best is None or stopper.best <= before:  # no epoch beat the weights before the update
        net.load_state_dict(snapshot)
        return {"best_epoch": 0, "valid_ndcg@10": before, "valid_ndcg@10_before": before}
    return {"best_epoch": stopper.best_epoch + 1, "valid_ndcg@10": float(stopper.best),
            "valid_ndcg@10_before": before}
