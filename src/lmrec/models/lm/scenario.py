"""Multi-scenario learning: one shared language-model interest model plus light per-scenario adapters.

A scenario is where a recommendation is asked for: a category, a channel, a page, a whole domain.
Every interaction carries one (``Interactions.scenarios``); the model learns all of them at once.

**Shared backbone.** The backbone is the ``lm`` model unchanged (`LMRecommender`): item vectors
from frozen language-model text vectors through the learned adaptor (+ item IDs), user vectors from
the causal transformer over the user's history, all in one space. It sees every interaction of every
scenario, so a user known from a big scenario is known in a small one too.

**Per-scenario adaptation** (`lmrec.models.lm.adapters`): scenario ``s`` adds a scenario embedding
and low-rank residual maps on the user and item vectors in the scoring space,
``u_s = u + e_s + B A u`` and ``v_{i,s} = v_i + B' A' v_i``, ``d + 4rd`` parameters (2,112 for
d=64, r=8, against ~10^5 in the backbone). Why this shape and not another:

- *At the read-out, not at the user-tower input.* Within one user's sequence consecutive targets
  belong to different scenarios; conditioning the transformer's input on the target's scenario would
  need one pass per scenario. Conditioning the read-out keeps one pass per sequence in training
  (every position scored under its own target's scenario) and lets the server score one history
  under any scenario for the price of a (d x r) product.
- *Low-rank residual (LoRA-like), not STAR's element-wise shared-times-specific weights or PLE's
  per-scenario towers.* STAR multiplies every weight of a shared MLP tower, and PLE grows experts and
  gates per scenario: both cost parameters in proportion to the backbone, which small scenarios cannot
  fit and which defeats adding a new scenario cheaply. A zero-initialised residual starts as the
  shared model exactly, so a scenario with little data stays close to it (strength borrowed from the
  big ones) and a new scenario can be trained alone, with the backbone frozen (`adapt`).
- *Both sides.* The item map lets a scenario re-weight which item directions matter there (inside a
  category, brand and function; across domains, what a genre means); the user map and embedding move
  the user towards what they want in that scenario.
- *Optionally, on the text path too* (``adapter_text_rank`` / ``adapt(text_rank=...)``): a
  low-rank correction read from each item's full whitened text vector, ``r_t (k + d)`` more
  parameters. A new scenario's items usually have no trained ID row, so the maps above (``d``
  numbers in, ``d`` out) cannot give them per-item scenario vectors; this correction can.

Training is the backbone's full-softmax next-item objective where each position is scored under its
target's scenario and weighted by its scenario's loss weight; a share of positions
(``shared_dropout``) is scored on the shared path so that ``scenario=None`` (an unknown scenario)
stays a trained answer. Scenario id ``-1`` is the shared path everywhere. The inherited
``partial_fit`` updates the backbone on the shared path and keeps the adapters as they are.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import fields
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from lmrec.data.dataset import Dataset
from lmrec.data.interactions import Interactions
from lmrec.data.splits import Split
from lmrec.models.base import register, top_k
from lmrec.models.lm.adapters import ScenarioAdapters, ScenarioObjective, check_text_history, check_text_rank
from lmrec.models.lm.model import LMRecommender
from lmrec.models.lm.net import LMNet

__all__ = ["LMScenarioRecommender"]

log = logging.getLogger(__name__)

NO_LOSS = -100  # a position that is read as history but not trained on
ONE_SCENARIO = "all"  # the scenario of interactions that carry none


@register("lm-scenario")
class LMScenarioRecommender(LMRecommender):
    """The ``lm`` model with a scenario embedding and low-rank adapters per scenario.

    Takes every `LMRecommender` argument (same names, same defaults) plus:

    Args:
        adapter_rank: rank ``r`` of each scenario's user and item maps.
        scenario_weights: loss weight per scenario: a dict name -> weight (scenarios not named get
            1.0), ``"balanced"`` (weight ``sqrt(n_mean / n_s)`` for a scenario with ``n_s``
            training interactions, so small scenarios count more without one tiny scenario
            dominating), or None (every interaction counts the same).
        shared_dropout: share of training positions scored on the shared path.
        adapter_text_rank: rank ``r_t`` of each adapter's low-rank correction of the text path
            (see `lmrec.models.lm.adapters`; 0: none, the adapters act on the item vectors only);
            `adapt` can set it per new scenario.
        adapter_text_history: also apply each adapter's text correction to the items its users'
            histories are read through (needs ``adapter_text_rank > 0``; no extra parameters);
            `adapt` can set it per new scenario.

    Interactions without scenarios all fall in one scenario, ``"all"`` (with a warning).

    Attributes:
        scenario_names_: scenario names, position = scenario id.
        scenario_weights_: (n_scenarios,) resolved loss weights.
        adapt_reports_: one dict per `adapt` call (scenario, mode, trainable counts, seconds).
    """

    is_scenario_aware = True

    def __init__(
        self,
        adapter_rank: int = 8,
        scenario_weights: Mapping[str, float] | Literal["balanced"] | None = None,
        shared_dropout: float = 0.1,
        adapter_text_rank: int = 0,
        adapter_text_history: bool = False,
        **lm_params: Any,
    ) -> None:
        super().__init__(**lm_params)
        self.adapter_rank, self.scenario_weights, self.shared_dropout = adapter_rank, scenario_weights, shared_dropout
        self.adapter_text_rank = adapter_text_rank
        self.adapter_text_history = adapter_text_history

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        super()._check_params()
        rank = self.adapter_rank
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
            raise ValueError(f"LMScenarioRecommender adapter_rank must be an integer >= 1, got {self.adapter_rank!r}")
        check_text_rank(self.adapter_text_rank, self.item_repr, "adapter_text_rank")
        check_text_history(self.adapter_text_history, self.adapter_text_rank, "adapter_text_history")
        if not 0.0 <= self.shared_dropout < 1.0:
            raise ValueError(f"LMScenarioRecommender shared_dropout must be in [0, 1), got {self.shared_dropout!r}")
        if self.loss not in ("auto", "full"):
            raise ValueError(
                f"LMScenarioRecommender trains with the full softmax; loss must be 'auto' or 'full', got {self.loss!r}"
            )
        if self.content_weight:
            raise ValueError(
                "LMScenarioRecommender does not support the content channel yet (its adapters act on the "
                f"learned width only); content_weight must be 0, got {self.content_weight!r}"
            )
        if self.finetune_lm != "none":
            raise ValueError(
                "LMScenarioRecommender does not fine-tune the language model; finetune_lm must be 'none', "
                f"got {self.finetune_lm!r}"
            )
        if self.event_weight > 0:
            raise ValueError("LMScenarioRecommender has no event head; event_weight must be 0")
        sw = self.scenario_weights
        if sw is not None and sw != "balanced" and not isinstance(sw, Mapping):
            raise ValueError(f"scenario_weights must be a dict name -> weight, 'balanced' or None, got {sw!r}")
        if isinstance(sw, Mapping) and any(not float(w) >= 0 for w in sw.values()):
            raise ValueError(f"scenario_weights must be >= 0, got {dict(sw)!r}")

    def _fit(self, dataset: Dataset) -> None:
        inter = dataset.interactions
        self._check_params()
        if inter.scenarios is None:
            log.warning("lm-scenario: the interactions carry no scenarios, so all are in one scenario %r "
                        "(on the command line: --scenario-field COLUMN)", ONE_SCENARIO)
            names = np.full(len(inter), ONE_SCENARIO, dtype=object)
        else:
            names = inter.scenarios.astype(str)
        self.scenario_names_: list[str] = sorted(set(names.tolist()))
        lookup = {n: i for i, n in enumerate(self.scenario_names_)}
        self._row_scenarios = np.array([lookup[n] for n in names], dtype=np.int64)
        counts = np.bincount(self._row_scenarios, minlength=len(lookup)).astype(np.float64)
        self.scenario_weights_ = self._resolve_weights(counts)
        self.adapt_reports_: list[dict[str, Any]] = []
        try:
            super()._fit(dataset)
        finally:
            del self._row_scenarios

    def _resolve_weights(self, counts: np.ndarray) -> np.ndarray:
        sw = self.scenario_weights
        if sw is None:
            return np.ones(len(counts), np.float32)
        if sw == "balanced":
            return np.sqrt(counts.mean() / np.maximum(counts, 1.0)).astype(np.float32)
        unknown = sorted(set(sw) - set(self.scenario_names_))
        if unknown:
            raise ValueError(f"scenario_weights names unknown scenario(s) {unknown}; scenarios: {self.scenario_names_}")
        return np.array([float(sw.get(n, 1.0)) for n in self.scenario_names_], np.float32)

    def _build_net(self, *args: Any) -> LMNet:
        net = super()._build_net(*args)
        seed = 0 if self.random_state is None else int(self.random_state)
        n = len(self.scenario_names_)
        ranks = getattr(self, "_text_ranks", None) or [int(self.adapter_text_rank or 0)] * n
        flags = getattr(self, "_text_history", None) or [bool(self.adapter_text_history)] * n
        shapes = getattr(self, "_id_shapes", None)  # item-ID residuals of adapt, when loading a saved model
        tower = net.item_tower
        text_dim = int(tower.white_proj.shape[1]) if tower.uses_text else 0
        net.scenario = ScenarioAdapters(n, self.dim, int(self.adapter_rank), torch.Generator().manual_seed(seed),
                                        text_ranks=ranks, text_dim=text_dim, text_history=flags, id_shapes=shapes)
        return net

    def _train(self, inter: Interactions, valid: Interactions | None, seed: int) -> None:
        split = None
        if valid is not None and len(valid):
            split = Split(inter, valid, valid.subset(np.zeros(0, np.int64)), "valid")
        self.train_history_ = train_positions(
            self, inter, self._row_scenarios, self.scenario_weights_, split, seed,
            params=list(self.net_.parameters()), epochs=int(self.epochs), lr=self.lr, patience=int(self.patience),
            shared_dropout=self.shared_dropout,
        )
        self.net_.eval()
        self._refresh()

    # ------------------------------------------------------------------ vectors
    @torch.no_grad()
    def _refresh(self) -> None:
        super()._refresh()
        net = self.net_
        was_training = net.training
        net.eval()
        self._scenario_items = [
            net.scenario.items(self._item_raw, s, net.project, net.item_tower).numpy().astype(np.float32)
            for s in range(len(net.scenario))
        ]
        # the item vectors each scenario's user histories are read through (None: the shared ones)
        self._scenario_history = [
            a.history(self._item_raw, net.item_tower) if a.text_history else None for a in net.scenario.adapters
        ]
        net.train(was_training)

    def scenario_ids(self, scenario: int | str | np.ndarray | Sequence | None, n: int) -> np.ndarray:
        """(n,) scenario ids from None (shared path, -1), one id or name, or n ids / names
        (unknown names map to -1, the shared path; ids must be in [-1, n_scenarios))."""
        self._check_fitted()
        if scenario is None:
            return np.full(n, -1, np.int64)
        lookup = {name: i for i, name in enumerate(self.scenario_names_)}
        if isinstance(scenario, str):
            return np.full(n, lookup.get(scenario, -1), np.int64)
        arr = np.asarray(scenario)
        if arr.dtype.kind in "OUS":
            arr = np.array([lookup.get(str(s), -1) for s in arr.reshape(-1)], np.int64)
        arr = np.broadcast_to(arr.astype(np.int64), (n,)) if arr.ndim == 0 else arr.astype(np.int64)
        if arr.shape != (n,):
            raise ValueError(f"scenario must be one id or an ({n},) array, got shape {arr.shape}")
        bad = (arr < -1) | (arr >= len(self.scenario_names_))
        if bad.any():
            raise ValueError(f"scenario id {int(arr[bad][0])} out of range [-1, {len(self.scenario_names_)})")
        return np.ascontiguousarray(arr)

    def scenario_item_vectors(self, scenario: int | str | None) -> np.ndarray:
        """(n_items, d) item vectors under one scenario (None: the shared ones, `item_vectors`)."""
        s = int(self.scenario_ids(scenario, 1)[0])
        return self.item_vectors() if s < 0 else self._scenario_items[s]

    @torch.no_grad()
    def encode_users(
        self,
        histories: Sequence[Sequence[int]],
        texts: Sequence[str] | None = None,
        timestamps: Sequence[Sequence[float]] | None = None,
        *,
        known_users: np.ndarray | None = None,
        scenario: int | str | np.ndarray | None = None,
        batch_size: int = 1024,
    ) -> np.ndarray:
        """`LMRecommender.encode_users` read out under ``scenario`` (see `scenario_ids`); (n, d).

        Users of a scenario whose adapter corrects the history (``text_history``) are encoded from
        that scenario's corrected item vectors.
        """
        ids = self.scenario_ids(scenario, len(histories))
        # rows read through a scenario's corrected items, by scenario; every other row reads the shared ones
        corrected = [s for s in np.unique(ids[ids >= 0]).tolist() if self._scenario_history[s] is not None]
        if not corrected:
            shared = super().encode_users(histories, texts, timestamps, known_users=known_users, batch_size=batch_size)
        else:
            groups = [(np.flatnonzero(~np.isin(ids, corrected)), None)]
            groups += [(np.flatnonzero(ids == s), self._scenario_history[s]) for s in corrected]
            shared = np.empty((len(ids), self.item_vectors_.shape[1]), np.float32)
            for rows, table in groups:
                if len(rows):
                    shared[rows] = super().encode_users(
                        [histories[r] for r in rows], None if texts is None else [texts[r] for r in rows],
                        None if timestamps is None else [timestamps[r] for r in rows],
                        known_users=None if known_users is None else np.asarray(known_users)[rows],
                        batch_size=batch_size, item_raw=table,
                    )
        if (ids < 0).all():
            return shared
        net = self.net_
        return net.scenario.users(torch.from_numpy(shared), torch.from_numpy(ids), net.project).numpy()

    def user_vectors(self, user_idx: np.ndarray, scenario: int | str | np.ndarray | None = None) -> np.ndarray:
        """(n, d) vectors of known users under ``scenario`` (None: the shared path)."""
        self._check_fitted()
        user_idx = self._check_users(user_idx)
        histories = [self.hist_items_[u] for u in user_idx]
        times = [self.hist_times_[u] for u in user_idx]
        return self.encode_users(histories, None, times, known_users=user_idx, scenario=scenario)

    def score_all(self, user_idx: np.ndarray, scenario: int | str | np.ndarray | None = None) -> np.ndarray:
        """(n, n_items) scores, each user's row under their scenario (an id, a name or an (n,) array)."""
        user_idx = self._check_users(user_idx)
        ids = self.scenario_ids(scenario, len(user_idx))
        users = self.user_vectors(user_idx, ids)
        out = np.empty((len(user_idx), self.n_items), np.float32)
        for s in np.unique(ids):
            rows = ids == s
            out[rows] = users[rows] @ self.scenario_item_vectors(int(s)).T
        return out

    def recommend(
        self,
        user_idx: np.ndarray | int,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        batch_size: int = 1024,
        scenario: int | str | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`Recommender.recommend` under ``scenario`` (None: the shared path)."""
        if scenario is None:
            return super().recommend(
                user_idx, k, exclude_seen=exclude_seen, candidates=candidates, batch_size=batch_size
            )
        user_idx = self._check_users(user_idx)
        ids = self.scenario_ids(scenario, len(user_idx))
        scores = self.score_all(user_idx, ids)
        if exclude_seen:
            r, c = self.seen_[user_idx].nonzero()
            scores[r, c] = -np.inf
        if candidates is not None:
            allowed = np.zeros(self.n_items, dtype=bool)
            allowed[np.asarray(candidates, dtype=np.int64)] = True
            scores[:, ~allowed] = -np.inf
        return top_k(scores, k)

    # ------------------------------------------------------------------ a new scenario or domain
    def adapt(
        self,
        dataset: Dataset | Interactions,
        scenario: str,
        *,
        valid: Split | Interactions | None = None,
        mode: Literal["adapter", "full"] = "adapter",
        new_item_ids: bool = False,
        epochs: int | None = None,
        lr: float | None = None,
        patience: int | None = None,
        text_rank: int | None = None,
        text_history: bool | None = None,
        id_rank: int = 0,
        refit_whitening: bool | None = None,
        anchor: float = 0.0,
        reset: str | Sequence[str] = (),
    ) -> dict[str, Any]:
        """Learn a new scenario: a fresh adapter (+ scenario embedding) trained on its data.

        The given interactions become the model's history (``seen_``, sequences). Positions whose
        target belongs to ``scenario`` (all rows when the interactions carry no scenarios) are
        trained on; the others are read as history only. On the same id maps this is a new scenario
        of the same domain. On other id maps it is a new domain: the backbone moves to the new
        users and items, new items entering through the frozen text path (encoder, whitening and
        adaptor of the backbone), so nothing about an item needs to be learned to score it.

        Args:
            dataset: interactions (with the catalogue for a new domain).
            scenario: the new scenario's name (an existing name is re-trained from a fresh adapter).
            valid: validation interactions on the new id maps (or a `Split`); early stopping on
                NDCG@10 of the scenario's validation users.
            mode: ``"adapter"`` trains only the new adapter (plus the item-ID table with
                ``new_item_ids``); ``"full"`` fine-tunes the backbone and the new adapter together
                (with item IDs on for every item with training data).
            new_item_ids: in adapter mode, also train item-ID embeddings of the items with data.
            epochs / lr / patience: default to the model's own settings.
            text_rank: rank of the new adapter's text-path correction (None: ``adapter_text_rank``);
                it lets the scenario's items move by their full text vector, which matters for items
                that have no trained ID row (a held-out scenario's items).
            text_history: also read the scenario's user histories through the corrected items
                (None: ``adapter_text_history``; needs a text rank > 0).
            id_rank: rank of the new adapter's item-ID residual (adapter mode; 0: none): a low-rank
                ID row for each item with a training row in the scenario, ``id_rank * (n_items_s + d)``
                parameters (see `lmrec.models.lm.adapters`), added to the history side too with
                ``text_history``. Office Electronics held out (benchmarks/RESULTS.md §8): text rank 28
                + ID rank 4 on the history too reach 90.2 % of full fine-tuning's NDCG@10 over seven
                seeds at 4.84 % of its parameters, against 81.4 % for text rank 32 alone.
            refit_whitening: for a new domain, re-fit the text whitening on the new catalogue's
                (and users') text vectors before anything is trained (`lmrec.models.lm.domain`);
                False keeps the old domain's statistics. None (default): re-fit with
                ``mode="full"``, where the adaptor after it is trained, and keep the old statistics
                in adapter mode, where it stays frozen (Office -> MovieLens-100K, validation
                NDCG@10 on all users: full fine-tuning 0.1095 re-fitted vs 0.0962 kept; adapter
                0.0195 vs 0.0257). Ignored within the same domain.
            anchor: with ``mode="full"``, the strength of an L2-SP pull toward the weights the
                adaptation starts from (0: off). After every optimiser step each carried-over weight
                moves ``min(1, lr * anchor)`` of the way back to its starting value (the decoupled
                form used by `partial_fit`, `lmrec.models.lm.continual.pull_toward_anchor`); the
                item-ID table and the new adapter, which have no learned start, are not pulled.
            reset: with ``mode="full"``, parts of the carried-over network to re-initialise before
                training (`lmrec.models.lm.domain.reset_parts`): ``"user_tower"`` and/or
                ``"adaptor"``. Office -> MovieLens-100K (RESULTS.md §8): with a fresh user tower the
                fine-tune reaches 0.94x of training from scratch on 10 % of the users (20 draws;
                0.93x without the reset) and 1.01x on all of them (1.04x without); no difference
                from scratch is significant.

        Returns:
            The report (also appended to ``adapt_reports_``): ``scenario``, ``scenario_id``,
            ``mode``, ``text_rank``, ``id_rank``, ``id_items``, ``trainable_params``, ``full_finetune_params`` (what ``mode="full"`` trains),
            ``trainable_share``, ``n_train_positions``, ``fit_s``, ``epochs_run`` and
            ``best_valid_ndcg@10`` (None without ``valid``).
        """
        self._check_fitted()
        if mode not in ("adapter", "full"):
            raise ValueError(f"adapt mode must be 'adapter' or 'full', got {mode!r}")
        t_rank = int(self.adapter_text_rank or 0) if text_rank is None else text_rank
        check_text_rank(t_rank, self.item_repr, "adapt text_rank")
        t_hist = bool(self.adapter_text_history) if text_history is None else text_history
        check_text_history(t_hist, t_rank, "adapt text_history")
        if isinstance(id_rank, bool) or not isinstance(id_rank, (int, np.integer)) or id_rank < 0:
            raise ValueError(f"adapt id_rank must be an integer >= 0, got {id_rank!r}")
        if id_rank and mode == "full":
            raise ValueError("adapt id_rank is for adapter mode; mode='full' trains every item's ID row already")
        if isinstance(anchor, bool) or not isinstance(anchor, (int, float)) or not np.isfinite(anchor) or anchor < 0:
            raise ValueError(f"adapt anchor must be a finite number >= 0, got {anchor!r}")
        if anchor and mode != "full":
            raise ValueError("adapt anchor pulls the fine-tuned backbone toward its start; it needs mode='full'")
        from lmrec.models.lm.domain import check_reset, move_to, reset_parts

        reset = check_reset(reset)
        if reset and mode != "full":
            raise ValueError("adapt reset re-initialises parts of the backbone, which only mode='full' trains")
        if isinstance(dataset, Interactions):
            dataset = Dataset(dataset)
        inter = dataset.interactions
        if len(inter) == 0:
            raise ValueError("adapt got no interactions")
        valid_inter = valid.valid if isinstance(valid, Split) else valid
        if valid_inter is not None and (
            valid_inter.user_map != inter.user_map or valid_inter.item_map != inter.item_map
        ):
            raise ValueError("adapt: valid interactions use different id maps from the adaptation data")
        in_scen = np.ones(len(inter), bool) if inter.scenarios is None else inter.scenarios.astype(str) == str(scenario)
        if not in_scen.any():
            raise ValueError(f"adapt: no interaction has scenario {scenario!r}")
        same_domain = inter.item_map == self.item_map_
        if same_domain and inter.user_map != self.user_map_:
            raise ValueError(
                "adapt on the model's items needs the model's user map too (add new users with partial_fit first); "
                "other items are a new domain"
            )
        seed = 0 if self.random_state is None else int(self.random_state)
        old_threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                if refit_whitening is None:
                    refit_whitening = mode == "full"
                if not same_domain:
                    move_to(self, dataset, refit_whitening=refit_whitening)
                self.user_map_, self.item_map_ = inter.user_map, inter.item_map
                self.seen_ = inter.to_csr("binary")
                self.counts_ = inter.item_counts()
                self._set_histories(inter)
                net = self.net_
                was_reset = set(reset_parts(self, reset))
                id_rows = np.unique(inter.items[in_scen]) if id_rank else None
                if scenario in self.scenario_names_:
                    sid = self.scenario_names_.index(scenario)
                    net.scenario.adapters[sid] = net.scenario.make(torch.Generator().manual_seed(seed + sid), t_rank,
                                                                   t_hist, id_rows, int(id_rank))
                else:
                    sid = len(self.scenario_names_)
                    net.scenario.add(torch.Generator().manual_seed(seed + sid), t_rank, t_hist, id_rows, int(id_rank))
                    self.scenario_names_.append(str(scenario))
                    self.scenario_weights_ = np.append(self.scenario_weights_, np.float32(1.0))
                tower = net.item_tower
                ids_on = mode == "full" or new_item_ids
                if ids_on and hasattr(tower, "id_emb"):
                    tower.id_mask = torch.as_tensor((self.counts_ > 0).astype(np.float32))
                adapter_params = list(net.scenario.adapters[sid].parameters())
                other = {id(p) for i, a in enumerate(net.scenario.adapters) if i != sid for p in a.parameters()}
                new = net.scenario.adapters[sid]
                own_ids = {id(new.id_u), id(new.id_v)} if new.id_rank else set()  # mode="full" trains no residual
                full = [p for p in net.parameters() if id(p) not in other and id(p) not in own_ids]
                if mode == "full":
                    params = full
                else:
                    params = adapter_params + ([tower.id_emb.weight] if ids_on and hasattr(tower, "id_emb") else [])
                keep = {id(p) for p in params}
                for p in net.parameters():
                    p.requires_grad_(id(p) in keep)
                rows = np.where(in_scen, sid, NO_LOSS).astype(np.int64)
                split = None
                if valid_inter is not None and len(valid_inter):
                    split = Split(inter, valid_inter, valid_inter.subset(np.zeros(0, np.int64)), "valid")
                start_weights = None
                if anchor:
                    fresh = {id(p) for p in adapter_params} | was_reset
                    if hasattr(tower, "id_emb"):
                        fresh.add(id(tower.id_emb.weight))
                    start_weights = {n: p.detach().clone() for n, p in net.named_parameters()
                                     if id(p) in keep and id(p) not in fresh}
                start = time.perf_counter()
                try:
                    history = train_positions(
                        self, inter, rows, self.scenario_weights_, split, seed, params=params,
                        epochs=int(epochs or self.epochs), lr=float(lr or self.lr),
                        patience=int(patience or self.patience),
                        shared_dropout=0.0, focus=str(scenario),
                        anchor=start_weights, anchor_strength=float(anchor),
                    )
                finally:
                    for p in net.parameters():
                        p.requires_grad_(True)
                fit_s = time.perf_counter() - start
        finally:
            torch.set_num_threads(old_threads)
        self.net_.eval()
        self._refresh()
        n_full = sum(p.numel() for p in full)
        n_train = sum(p.numel() for p in params)
        report = {
            "scenario": str(scenario), "scenario_id": sid, "mode": mode, "new_domain": not same_domain,
            "refit_whitening": bool(refit_whitening and not same_domain and self.whiten),
            "text_rank": int(t_rank), "text_history": t_hist, "anchor": float(anchor), "reset": list(reset),
            "id_rank": int(id_rank), "id_items": 0 if id_rows is None else len(id_rows),
            "trainable_params": int(n_train), "full_finetune_params": int(n_full),
            "trainable_share": n_train / n_full, "n_train_positions": int(in_scen.sum()), "fit_s": fit_s,
            "epochs_run": len(history),
            "best_valid_ndcg@10": max((float(h["ndcg@10"]) for h in history if "ndcg@10" in h), default=None),
        }
        self.adapt_reports_.append(report)
        log.info("adapted scenario %r (%s): %d of %d parameters trained, %.1f s",
                 scenario, mode, n_train, n_full, fit_s)
        return report

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = super()._state()
        arrays["scenario_weights"] = np.asarray(self.scenario_weights_, np.float32)
        meta["scenario_names"] = list(self.scenario_names_)
        meta["adapt_reports"] = list(getattr(self, "adapt_reports_", []))
        meta["adapter_text_history"] = [bool(a.text_history) for a in self.net_.scenario.adapters]
        return arrays, meta

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.scenario_names_ = list(meta["scenario_names"])
        self.scenario_weights_ = arrays.pop("scenario_weights")
        self.adapt_reports_ = list(meta.get("adapt_reports", []))
        # each adapter's text rank, from its saved correction (absent: 0), so _build_net rebuilds the same shapes
        keys = [f"net/scenario.adapters.{i}.text_b" for i in range(len(self.scenario_names_))]
        self._text_ranks = [int(arrays[k].shape[1]) if k in arrays else 0 for k in keys]
        self._text_history = list(meta.get("adapter_text_history", [False] * len(keys)))  # absent: saved before it
        ids = [arrays.get(f"net/scenario.adapters.{i}.id_u") for i in range(len(self.scenario_names_))]
        self._id_shapes = [(0, 0) if u is None else (int(u.shape[0]), int(u.shape[1])) for u in ids]
        try:
            super()._set_state(arrays, meta)
        finally:
            del self._text_ranks, self._text_history, self._id_shapes


# the constructor takes every LMRecommender argument by name: expose them in its signature, so that
# get_params (save / load), make_model's parameter check and help() see the full list
_OWN = list(inspect.signature(LMScenarioRecommender.__init__).parameters.values())[:-1]  # self + own, no **
_LM = list(inspect.signature(LMRecommender.__init__).parameters.values())[1:]
LMScenarioRecommender.__init__.__signature__ = inspect.Signature([*_OWN, *_LM])  # type: ignore[attr-defined]


def train_positions(
    model: LMScenarioRecommender,
    inter: Interactions,
    row_scenarios: np.ndarray,
    weights: np.ndarray,
    split: Split | None,
    seed: int,
    *,
    params: list[torch.nn.Parameter],
    epochs: int,
    lr: float,
    patience: int,
    shared_dropout: float,
    focus: str | None = None,
    anchor: dict[str, torch.Tensor] | None = None,
    anchor_strength: float = 0.0,
) -> list[dict[str, float]]:
    """Train ``params`` of ``model.net_`` on ``inter`` with each position scored under its target's scenario.

    Args:
        model: a model whose network, histories (from ``inter``) and counts are set.
        inter: the training interactions.
        row_scenarios: (len(inter),) scenario id per interaction (-1 shared, -100 history only).
        weights: (n_scenarios,) loss weights.
        split: train / valid for early stopping on NDCG@10, or None.
        seed: seeds shuffling, dropout and sampling.
        params / epochs / lr / patience: what to train and how.
        shared_dropout: share of positions moved to the shared path.
        focus: early-stop on this scenario's validation NDCG@10 (its ``by_scenario`` entry).
        anchor / anchor_strength: parameter name -> start value, pulled toward after every step at
            rate ``lr * anchor_strength`` (L2-SP, decoupled); None: no pull.
    """
    from lmrec.models.lm.training import Windows, batches_of, make_windows, user_columns
    from lmrec.train.callbacks import EarlyStopping, LogMetrics
    from lmrec.train.loop import fit_loop

    per_user, ratings = user_columns(model, inter)
    # the windows' event slot carries each target's scenario id
    windows = make_windows(model.hist_items_, model.hist_times_, model.max_len, model.n_time_buckets, ratings,
                           per_user(np.asarray(row_scenarios, np.int64)))
    trained = ((windows.events != NO_LOSS) & (windows.targets >= 0)).any(axis=1)  # windows of history only: skip
    windows = Windows(**{f.name: getattr(windows, f.name)[trained] for f in fields(Windows)})
    generator = torch.Generator().manual_seed(seed)
    objective = ScenarioObjective(model.counts_, weights, shared_dropout=shared_dropout,
                                  rating_weight=model.rating_weight, generator=generator)
    callbacks: list = [LogMetrics(logging.getLogger("lmrec.models.lm.model"))]
    validate = None
    if split is not None:
        callbacks.append(EarlyStopping("ndcg@10", mode="max", patience=patience))

        def validate() -> dict[str, float]:
            from lmrec.eval.evaluator import evaluate

            model._refresh()
            res = evaluate(model, split, phase="valid", ks=(10,), metrics=("ndcg", "recall"), user_groups=())
            got = res.by_scenario.get(focus, {}) if focus is not None else res.metrics
            return {k: float(got.get(k, 0.0)) for k in ("ndcg@10", "recall@10")}

    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=model.weight_decay)
    if anchor and anchor_strength > 0:
        from lmrec.models.lm.continual import pull_toward_anchor

        net, rate = model.net_, float(lr) * float(anchor_strength)
        optimizer.register_step_post_hook(lambda *_: pull_toward_anchor(net, anchor, rate))
    state = fit_loop(
        model.net_, batches_of(windows, int(model.batch_size), seed), objective, optimizer, epochs=epochs,
        callbacks=callbacks, validate=validate, grad_clip=model.grad_clip, show_progress=model.show_progress,
    )
    return state.history
