"""Continual learning for the language-model interest model: ``partial_fit`` and what it needs.

An update takes a window of new interactions in raw external ids, grows the id maps (existing
indices never change), adds new items through their text and new users with their history, and then
warm-starts from the current network: a fresh optimiser trains on the new rows for a few epochs.

The update is a `ContinualUpdater` built from the model's `ContinualConfig` (and the objective and
optimisation settings it shares with ``fit``). It works on an explicit `UpdateState` (the network,
id maps, known interactions, counts, histories, item field texts and the replay buffer) that the
model hands over and takes back, and reaches the model only through injected callables (the text
encoder, handing the state back, validation), never through its attributes.

Three guards against forgetting, all configured by `ContinualConfig`:

- a replay buffer (`ReplayBuffer`) holding a weighted random sample of earlier interactions, which are
  trained again as targets (with their true preceding history as input) in every update. ``"reservoir"``
  samples every earlier row with the same probability, ``"recency"`` with weight ``2^(t / half_life)``
  so that recent rows are favoured. An update replays the whole buffer, or with ``replay_share`` a
  random ``ceil(replay_share * rows)`` of it for ``rows`` new training rows, so that old rows weigh
  the same against new ones whatever the window's size (a fixed number weighs more against a small
  window than against a large one);
- a pull toward the weights before the update: L2-SP or EWC (the same pull weighted by a diagonal
  Fisher estimate on the replayed rows, normalised to mean 1, so strengths are comparable). It is
  decoupled from the loss, as AdamW decouples weight decay: after every optimiser step
  ``w <- w - lr * strength * F * (w - w_prev)`` (`lmrec.train.anchor.pull_toward_anchor`). Added to the loss instead,
  the penalty's gradient would be rescaled by Adam per parameter: wherever the data's gradient is
  small (most item rows, most adaptor weights) it dominates, and Adam then takes steps of about
  ``lr`` in its sign whatever ``strength`` is, so the weights jitter around the anchor instead of
  learning (on Amazon Office such an update ended below no update at all);
- distillation (learning without forgetting, ``distill`` > 0): a frozen copy of the network taken
  just before the update (maps grown, new items on its text path) scores every training position,
  and ``distill * KL(teacher || student)`` of the two next-item distributions joins the loss
  (`lmrec.models.lm.training.Objective`). Unlike the weight pull it constrains what the model
  answers, not where its weights are, so the update may move weights that do not change old answers.

How long an update trains: without validation rows ``update_epochs`` epochs; with them (``valid``,
each user's last row of the window) up to ``update_max_epochs``, stopping after ``update_patience``
epochs without a gain and keeping the best epoch. Either way a `lmrec.train.budget.TimeBudget` bounds its time
to ``update_budget`` times the model's last fresh fit (``fit_s``): an update is meant to cost a
fraction of a retrain, and a fixed epoch count either stops far short of that on data where every
epoch still helps or overruns it where epochs are dear. The report says what stopped it
(``stopped_by``: ``"budget"``, ``"patience"`` or ``"cap"``).

Training targets are new rows and replayed rows only; every other position still serves as input
context. The rating and event heads are not trained by updates (the model keeps no per-row ratings).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from lmrec.data.catalog import ItemCatalog, UserTexts, clean_text
from lmrec.data.frames import add_seen, as_raw_frame, grow_id_maps, grow_seen, on_maps, seen_interactions
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.encoders.base import TextEncoder
from lmrec.models.lm.config import ContinualConfig, ItemTowerConfig, ObjectiveConfig, OptimConfig, UserTowerConfig
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.text import encode_texts, format_item_text, user_texts
from lmrec.models.lm.training import Objective, Windows, append_histories, batches_of, make_windows
from lmrec.train.anchor import anchor_of, fisher_diagonal, pull_toward_anchor, weight_penalty
from lmrec.train.budget import TimeBudget
from lmrec.train.callbacks import Callback, EarlyStopping
from lmrec.train.loop import fit_loop
from lmrec.train.seeding import seeded

__all__ = [
    "REPLAYED",
    "ContinualUpdater",
    "ReplayBuffer",
    "UpdateHooks",
    "UpdateState",
    "as_raw_frame",
    "pull_toward_anchor",
    "rows_index",
    "target_windows",
    "weight_penalty",
]

log = logging.getLogger(__name__)

ReplayKind = Literal["none", "reservoir", "recency"]
#: ``events`` value of a replayed target position in update windows (see `target_windows`)
REPLAYED = -2


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
        self,
        size: int,
        kind: Literal["reservoir", "recency"] = "reservoir",
        *,
        half_life: float | None = None,
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
            keys = keys - timestamps * (
                np.log(2.0) / float(self.half_life or 1.0)
            )  # set for "recency"  # log w = t ln2 / half_life
        self.n_seen += len(users)
        all_keys = np.concatenate([self._keys, keys])
        keep = np.argsort(all_keys, kind="stable")[: self.size]
        self.users = np.concatenate([self.users, users])[keep]
        self.items = np.concatenate([self.items, items])[keep]
        self.timestamps = np.concatenate([self.timestamps, timestamps])[keep]
        self._keys = all_keys[keep]

    def sample(self, n: int | None, random_state: int | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` of the buffer's rows drawn uniformly without replacement (all of them when ``n`` is
        None or at least its size), in buffer order; the buffer itself does not change.

        Args:
            n: rows to draw (None: all).
            random_state: seed of the draw.

        Returns:
            (users, items, timestamps), parallel (m,) arrays, ``m = min(n, len(self))``.
        """
        if n is not None and n < 0:
            raise ValueError(f"ReplayBuffer.sample n must be >= 0, got {n!r}")
        pool = np.arange(len(self))
        if n is not None and n < len(pool):
            pool = np.sort(np.random.default_rng(random_state).choice(pool, size=int(n), replace=False))
        return self.users[pool], self.items[pool], self.timestamps[pool]


# ---------------------------------------------------------------------- the state an update works on
@dataclass
class UpdateState:
    """What a continual update reads and changes; the model hands it over and takes it back.

    Attributes:
        net: the network (grown and trained in place).
        user_map / item_map: the id maps (replaced by grown copies).
        seen: (n_users, n_items) known interactions.
        counts: (n_items,) training interactions per item.
        hist_items / hist_times: each user's items and timestamps in time order.
        item_fields: field -> each item's text of that field (for explanations and new items).
        replay: the replay buffer, or None to build one from the histories at the next update.
        n_updates: updates so far (seeds each update differently).
        update_history: the per-epoch history of the last update that trained (None: none yet).
    """

    net: LMNet
    user_map: IdMap
    item_map: IdMap
    seen: sp.csr_matrix
    counts: np.ndarray
    hist_items: list[np.ndarray]
    hist_times: list[np.ndarray]
    item_fields: dict[str, list[str]]
    replay: ReplayBuffer | None = None
    n_updates: int = 0
    update_history: list[dict[str, float]] | None = field(default=None)

    def observe(self, interactions: Interactions) -> None:
        """Add rows (on this state's maps) to the known interactions and the histories."""
        self.seen = add_seen(self.seen, interactions)
        append_histories(self.hist_items, self.hist_times, interactions)

    def add_counts(self, items: np.ndarray) -> None:
        """Count one training row per entry of ``items`` and switch their ID parts on."""
        self.counts = self.counts + np.bincount(items, minlength=len(self.counts)).astype(self.counts.dtype)
        self.refresh_id_mask()

    @torch.no_grad()
    def refresh_id_mask(self) -> None:
        """The item tower reads the ID part of exactly the items with training rows."""
        self.net.item_tower.id_mask = torch.as_tensor((self.counts > 0).astype(np.float32))


@dataclass
class UpdateHooks:
    """What an update needs from the model, as callables (the updater never reads the model).

    Attributes:
        encoder: returns the model's text encoder (built on first use).
        sync: hands the state back to the model (before validation and at the end).
        refresh: recomputes the model's cached item vectors from the synced state.
        validator: ``(known, valid) -> validate``, where ``validate()`` returns ``{"ndcg@10", ...}``
            of the synced model on ``valid`` with the items of ``known`` masked.
    """

    encoder: Callable[[], TextEncoder]
    sync: Callable[[UpdateState], None]
    refresh: Callable[[], None]
    validator: Callable[[Interactions, Interactions], Callable[[], dict[str, float]]]


# ---------------------------------------------------------------------- windows with chosen targets
def rows_index(users, items, times) -> pd.MultiIndex:
    """(user, item, timestamp) rows as a MultiIndex, the key `target_windows` matches rows by."""
    return pd.MultiIndex.from_arrays(
        [np.asarray(users, np.int64), np.asarray(items, np.int64), np.asarray(times, np.float64)]
    )


def target_windows(
    hist_items: list[np.ndarray],
    hist_times: list[np.ndarray],
    targets: pd.MultiIndex,
    replayed: pd.MultiIndex | None = None,
    *,
    max_len: int,
    n_time_buckets: int,
) -> Windows | None:
    """Training windows over the users' full histories whose targets are only the rows in ``targets``
    (a `rows_index`); windows without any such target are dropped (None when none is left).

    Target positions that are in ``replayed`` carry ``REPLAYED`` in the ``events`` channel (every
    other position -100), so that distillation can be restricted to them; the event head reads only
    events >= 0, so it never trains on the mark."""
    if len(targets) == 0:
        return None
    n_users = len(hist_items)
    is_target_user = np.zeros(n_users, dtype=bool)
    is_target_user[np.unique(targets.get_level_values(0))] = True
    lengths = np.array([len(h) if is_target_user[u] else 0 for u, h in enumerate(hist_items)], np.int64)
    target_users = np.flatnonzero(is_target_user)
    all_users = np.repeat(np.arange(n_users), lengths)
    all_items = np.concatenate([hist_items[u] for u in target_users] or [np.zeros(0, np.int64)])
    all_times = np.concatenate([hist_times[u] for u in target_users] or [np.zeros(0)])
    index = rows_index(all_users, all_items, all_times)
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
    win = make_windows(items, times, max_len, n_time_buckets, None, flags)
    chosen = win.events >= 1
    win.targets[~chosen] = -100
    win.events[:] = np.where(win.events == 2, REPLAYED, -100)
    has = chosen.any(axis=1)
    for name in ("tokens", "buckets", "targets", "ratings", "events", "lengths", "users"):
        setattr(win, name, getattr(win, name)[has])
    return win if len(win) else None


def update_lr(cfg: ContinualConfig, optim: OptimConfig) -> float:
    """An update's learning rate: ``cfg.update_lr``, else ``cfg.update_lr_scale`` times the fit's."""
    return float(cfg.update_lr) if cfg.update_lr is not None else float(cfg.update_lr_scale) * float(optim.lr)


def _trained_id_rows(net: LMNet) -> dict[str, torch.Tensor]:
    """Rows of the item ID table that had training data before the update: only they have learned
    values worth keeping (the rows of cold items are still their random initialisation)."""
    tower = net.item_tower
    if not hasattr(tower, "id_emb"):
        return {}
    return {"item_tower.id_emb.weight": (tower.id_mask > 0).detach().clone()}


# ---------------------------------------------------------------------- the updater
class ContinualUpdater:
    """Continues training a fitted network on new interactions (see the module docstring).

    Args:
        config: replay, weight pull, distillation and update epochs / learning rate.
        objective / optim: the loss and optimisation settings shared with ``fit`` (the update's
            learning rate is ``config.update_lr`` or ``optim.lr``).
        user_tower: history length and time buckets of the training windows.
        item_tower: whether items have text (new items enter through it) and the content weight.
        cache_dir: the text encoder's embedding cache.
        random_state: base seed (each update adds ``7919 * n_updates``).
        num_threads: torch threads while training (None: leave torch's setting).
        show_progress: progress bars.
        fit_s: seconds the model's last fresh fit took (the base of ``config.update_budget``;
            None: unknown, no time bound).
        clock: seconds, monotonic, for the time budget (injectable for tests).
    """

    def __init__(
        self,
        config: ContinualConfig,
        *,
        objective: ObjectiveConfig,
        optim: OptimConfig,
        user_tower: UserTowerConfig,
        item_tower: ItemTowerConfig,
        cache_dir: str | None = None,
        random_state: int | None = 0,
        num_threads: int | None = None,
        show_progress: bool = False,
        fit_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config, self.objective, self.optim = config, objective, optim
        self.fit_s, self.clock = fit_s, clock
        self.user_tower, self.item_tower = user_tower, item_tower
        self.cache_dir, self.num_threads, self.show_progress = cache_dir, num_threads, show_progress
        self.seed = 0 if random_state is None else int(random_state)

    # ------------------------------------------------------------------ replay
    def replay_buffer(self, state: UpdateState) -> ReplayBuffer | None:
        """The state's buffer, built from its histories when it has none (after fit or load)."""
        cfg = self.config
        if cfg.replay == "none":
            return None
        if state.replay is not None:
            return state.replay
        lengths = np.array([len(h) for h in state.hist_items], dtype=np.int64)
        users = np.repeat(np.arange(len(lengths)), lengths)
        items = np.concatenate(state.hist_items or [np.zeros(0, np.int64)])
        times = np.concatenate(state.hist_times or [np.zeros(0)])
        half_life = cfg.replay_half_life
        if cfg.replay == "recency" and half_life is None:
            span = float(times.max() - times.min()) if len(times) else 0.0
            half_life = max(span / 4.0, 1.0)  # a quarter of the history's time span
        buf = ReplayBuffer(int(cfg.replay_size), cfg.replay, half_life=half_life, random_state=self.seed)
        buf.add(users, items, times)
        state.replay = buf
        return buf

    # ------------------------------------------------------------------ growth
    def grow_items(
        self, state: UpdateState, new_ids: list[str], new_items: ItemCatalog | None, encoder: Callable[[], TextEncoder]
    ) -> None:
        """Add items to the network (through their text in ``new_items``), the counts and the field texts."""
        if not new_ids:
            return
        fields = list(state.item_fields)
        values = {f: [""] * len(new_ids) for f in fields}
        if new_items is not None:
            frame = new_items.frame.reindex(new_ids)
            for f in fields:
                if f in frame.columns:
                    values[f] = [clean_text(v) for v in frame[f].tolist()]
        texts = [format_item_text({f: values[f][j] for f in fields}, fields) for j in range(len(new_ids))]
        raw = None
        if self.item_tower.repr != "id":
            if not all(texts):
                log.warning("partial_fit: %d new items have no text in new_items", sum(not t for t in texts))
            raw = encode_texts(encoder(), texts, cache_dir=self.cache_dir, show_progress=self.show_progress)
        state.net.item_tower.grow(raw, len(new_ids))
        state.counts = np.concatenate([state.counts, np.zeros(len(new_ids), state.counts.dtype)])
        for f in fields:
            state.item_fields[f].extend(values[f])

    @torch.no_grad()
    def grow_users(
        self, state: UpdateState, new_ids: list[str], new_users: UserTexts | None, encoder: Callable[[], TextEncoder]
    ) -> None:
        """Add users with empty histories (and their text in ``new_users``, when the network reads text)."""
        if not new_ids:
            return
        state.hist_items.extend(np.zeros(0, np.int64) for _ in new_ids)
        state.hist_times.extend(np.zeros(0, np.float64) for _ in new_ids)
        net = state.net
        if hasattr(net, "user_text"):
            raw = np.zeros((len(new_ids), net.user_text.shape[1]), np.float32)
            kinds = self.user_tower.user_text_kinds
            texts = user_texts(new_users, IdMap(new_ids), kinds) if new_users is not None else []
            has = np.array([bool(t) for t in texts] or [False] * len(new_ids), dtype=bool)
            if has.any():
                raw[has] = encode_texts(encoder(), [t for t in texts if t], cache_dir=self.cache_dir)
            net.user_text = torch.cat([net.user_text, torch.from_numpy(raw)])
            net.has_text = torch.cat([net.has_text, torch.from_numpy(has)])

    # ------------------------------------------------------------------ the update
    def update(
        self,
        state: UpdateState,
        new_interactions: Interactions | pd.DataFrame,
        new_items: ItemCatalog | None = None,
        new_users: UserTexts | None = None,
        *,
        hooks: UpdateHooks,
        epochs: int | None = None,
        valid: Interactions | pd.DataFrame | None = None,
    ) -> dict[str, Any]:
        """Absorb and train on one window of new rows; returns the report (`LMRecommender.last_update_`).

        See `LMRecommender.partial_fit` for the arguments.
        """
        cfg = self.config
        started = self.clock()
        frame = as_raw_frame(new_interactions)
        vframe = as_raw_frame(valid) if valid is not None else None
        if vframe is not None and not len(vframe):
            vframe = None
        if epochs is None:
            epochs = cfg.update_max_epochs if vframe is not None else cfg.update_epochs
        epochs = int(epochs)
        if epochs < 0:
            raise ValueError(f"partial_fit epochs must be >= 0, got {epochs!r}")
        budget_s = self.budget_s()
        buffer = self.replay_buffer(state) if epochs > 0 else None
        # the weights before the update, taken before the item table grows (new rows have no past)
        anchor = anchor_of(state.net) if epochs > 0 and cfg.regularizer != "none" and cfg.reg_strength > 0 else None
        rows = _trained_id_rows(state.net) if anchor is not None else None
        catalog_ids = list(new_items.frame.index) if new_items is not None else []
        extra_items = [*catalog_ids, *(vframe["item_id"] if vframe is not None else [])]
        extra_users = list(vframe["user_id"]) if vframe is not None else []
        state.user_map, state.item_map, new_user_ids, new_item_ids = grow_id_maps(
            state.user_map, state.item_map, frame, extra_items, extra_users
        )
        state.seen = grow_seen(state.seen, len(state.user_map), len(state.item_map))
        inter = on_maps(frame, state.user_map, state.item_map)
        self.grow_items(state, new_item_ids, new_items, hooks.encoder)
        self.grow_users(state, new_user_ids, new_users, hooks.encoder)
        state.observe(inter)
        state.counts = state.counts + inter.item_counts().astype(state.counts.dtype)
        state.refresh_id_mask()
        state.n_updates += 1
        vinter = on_maps(vframe, state.user_map, state.item_map) if vframe is not None else None
        chosen: dict[str, object] = {}
        n_replayed = 0
        if epochs > 0 and len(inter):
            seed = self.seed + 7919 * state.n_updates
            targets = rows_index(inter.users, inter.items, inter.timestamps)
            replayed = None
            if buffer is not None and len(buffer):
                r_users, r_items, r_times = buffer.sample(self.replay_count(len(inter)), seed)
                replayed = rows_index(r_users, r_items, r_times)
                targets = targets.append(replayed)
                self._count_untrained(state, r_items)
                n_replayed = len(r_users)
            windows = self._windows(state, targets, replayed)
            with seeded(seed, self.num_threads):
                # LwF: the model as it is now (maps grown, new items on its text path) teaches the update
                teacher = copy.deepcopy(state.net).eval().requires_grad_(False) if cfg.distill > 0 else None
                budget = TimeBudget(budget_s, started, self.clock) if budget_s is not None else None
                chosen = self._train(state, windows, buffer, anchor, rows, epochs, seed, vinter, teacher, hooks, budget)
        if vinter is not None:  # validated on, now part of the history (as `lmrec train` does after early stopping)
            state.observe(vinter)
            state.counts = state.counts + vinter.item_counts().astype(state.counts.dtype)
            state.refresh_id_mask()
        if buffer is not None:
            buffer.add(inter.users, inter.items, inter.timestamps)
            if vinter is not None:
                buffer.add(vinter.users, vinter.items, vinter.timestamps)
        state.net.eval()
        hooks.sync(state)
        hooks.refresh()
        report = {
            "rows": int(len(inter)),
            "valid_rows": int(len(vinter)) if vinter is not None else 0,
            "new_users": len(new_user_ids),
            "new_items": len(new_item_ids),
            "epochs": epochs,
            "epochs_run": 0,
            "budget_s": budget_s,
            "budget_bound": False,
            "stopped_by": None,
            **chosen,
            "replayed": n_replayed,
            "lr": update_lr(cfg, self.optim),
            "train_s": self.clock() - started,
        }
        log.info("partial_fit: %s", report)
        return report

    def replay_count(self, n_rows: int) -> int | None:
        """Rows to replay in an update with ``n_rows`` new training rows: ``ceil(config.replay_share *
        n_rows)`` (None: the whole buffer, when ``replay_share`` is None)."""
        share = self.config.replay_share
        return None if share is None else int(np.ceil(float(share) * n_rows))

    def budget_s(self) -> float | None:
        """Seconds an update may take: ``config.update_budget`` times the last fit's time (None: no bound)."""
        share = self.config.update_budget
        if share is None or self.fit_s is None or not self.fit_s > 0:
            return None
        return float(share) * float(self.fit_s)

    def _windows(self, state: UpdateState, targets: pd.MultiIndex, replayed: pd.MultiIndex | None = None):
        return target_windows(
            state.hist_items,
            state.hist_times,
            targets,
            replayed,
            max_len=self.user_tower.max_len,
            n_time_buckets=self.user_tower.n_time_buckets,
        )

    @staticmethod
    def _count_untrained(state: UpdateState, items: np.ndarray) -> None:
        """Count replayed rows of items the model has never trained on as training rows.

        A history can hold rows that were observed but never trained on (``fit`` followed by
        ``observe``, as after early stopping). Replayed, such a row becomes a target of an item with
        count 0, which the objective excludes from the softmax (log-Q -inf): the loss would be
        infinite. Now that the item is trained on, it counts like any other.
        """
        items = np.asarray(items, dtype=np.int64)
        fresh = items[state.counts[items] == 0]
        if len(fresh):
            state.add_counts(fresh)

    def _train(
        self,
        state,
        windows,
        buffer,
        anchor,
        rows,
        epochs,
        seed,
        valid,
        teacher,
        hooks: UpdateHooks,
        budget: TimeBudget | None = None,
    ) -> dict[str, object]:
        """Train the update for at most ``epochs`` epochs (fewer when ``budget`` runs out) and return
        ``{"epochs_run", "budget_bound", "stopped_by"}``; with ``valid``, stop after the update patience
        without a gain, keep the best of epochs 0 (the weights before it) to the last epoch run by
        NDCG@10 on it and add ``{"best_epoch", "valid_ndcg@10", "valid_ndcg@10_before"}``."""
        if windows is None:
            return {}
        cfg, optim = self.config, self.optim
        net = state.net
        generator = torch.Generator().manual_seed(seed)
        objective = Objective(
            self.objective.resolved_loss(len(state.counts)),
            state.counts,
            n_negatives=self.objective.n_negatives,
            content_weight=self.item_tower.content_weight,
            generator=generator,
        )
        if teacher is not None:
            objective.teacher, objective.distill = teacher, float(cfg.distill)
            objective.distill_mark = REPLAYED if cfg.distill_rows == "replayed" else None
        fisher = None
        if anchor is not None and cfg.regularizer == "ewc":
            old = None
            if buffer is not None and len(buffer):
                old = self._windows(state, rows_index(buffer.users, buffer.items, buffer.timestamps))
            fisher = fisher_diagonal(
                net, objective, batches_of(old if old is not None else windows, int(optim.batch_size), seed)
            )
        lr = update_lr(cfg, optim)
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=optim.weight_decay)
        if anchor is not None:
            rate = float(lr) * float(cfg.reg_strength)
            # decoupled from the loss (see the module docstring): pulled after every step
            optimizer.register_step_post_hook(lambda *_: pull_toward_anchor(net, anchor, rate, fisher, rows))
        validate, before, snapshot = None, None, None
        callbacks: list[Callback] = []
        if valid is not None and len(valid):
            hooks.sync(state)  # validation scores through the model, which must see the grown state
            validate = hooks.validator(seen_interactions(state.seen, state.user_map, state.item_map), valid)
            before = validate()["ndcg@10"]  # every row the model holds masked
            snapshot = {k: v.detach().clone() for k, v in net.state_dict().items()}
            patience = optim.patience if cfg.update_patience is None else cfg.update_patience
            stopper = EarlyStopping("ndcg@10", mode="max", patience=int(patience))
            callbacks.append(stopper)
        if budget is not None:
            callbacks.append(budget)  # after the stopper: a patience stop is not a budget stop
        result = fit_loop(
            net,
            batches_of(windows, int(optim.batch_size), seed),
            objective,
            optimizer,
            epochs=epochs,
            callbacks=callbacks,
            validate=validate,
            grad_clip=optim.grad_clip,
            show_progress=self.show_progress,
        )
        state.update_history = result.history
        run = len(result.history)
        bound = budget is not None and budget.bound
        stopped_by = "budget" if bound else ("cap" if run >= epochs else "patience")
        ran = {"epochs_run": run, "budget_bound": bound, "stopped_by": stopped_by}
        if validate is None:
            return ran
        assert before is not None and snapshot is not None  # set with validate
        if stopper.best is None or stopper.best <= before:  # no epoch beat the weights before the update
            net.load_state_dict(snapshot)
            return {**ran, "best_epoch": 0, "valid_ndcg@10": before, "valid_ndcg@10_before": before}
        return {
            **ran,
            "best_epoch": stopper.best_epoch + 1,
            "valid_ndcg@10": float(stopper.best),
            "valid_ndcg@10_before": before,
        }
