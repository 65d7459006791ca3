"""The language-model user-interest model: ``I(u, i) = cos(v_u, v_i)`` in one space opened by a
pretrained language model.

Items enter through the frozen LM embedding of their text (whitened, then a learned adaptor),
optionally plus a learned ID embedding; users through a causal transformer over their recent
item vectors, gated with the embedding of their own text; queries and brand-new items through the
item tower's text path. Everything that scores lives in one space, so the evaluator and the server
treat this model like any other, and text-only entities (cold items, new users, queries) still get
vectors.

The model is assembled from small typed components (`lmrec.models.lm.config`): item tower, user
tower, objective, optimisation, encoder, fusion and continual policy, each a frozen dataclass that
validates itself. A setting is reachable by a dotted key (``lm.objective.loss``) from the command
line and YAML through `LMRecommender.from_params`.

This module holds the settings, fitting, continual updates, cold start and persistence; the network
is assembled in `lmrec.models.lm.build` and read out (item, user and text-path vectors) by the
`lmrec.models.lm.vectors.LMVectors` base.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset
from lmrec.data.interactions import Interactions
from lmrec.data.splits import Split
from lmrec.encoders.base import TextEncoder
from lmrec.encoders.byo import load_item_vectors
from lmrec.encoders.device import resolve_device
from lmrec.models.base import register
from lmrec.models.lm import persist
from lmrec.models.lm.build import (
    build_net,
    event_classes,
    make_user_tower,
    net_from_arrays,
    time_ordered_histories,
    user_text_inputs,
)
from lmrec.models.lm.cold import ColdState, fit_state, state_from_meta
from lmrec.models.lm.config import (
    COMPONENTS,
    ColdStartConfig,
    ComponentConfig,
    ContinualConfig,
    EncoderConfig,
    FusionConfig,
    ItemTowerConfig,
    ObjectiveConfig,
    OptimConfig,
    PrivacyConfig,
    UserTowerConfig,
    coerce,
)
from lmrec.models.lm.continual import ContinualUpdater, UpdateHooks, UpdateState
from lmrec.models.lm.explain import explain_recommendation
from lmrec.models.lm.finetune import lora_arrays, make_lora_encoder
from lmrec.models.lm.fusion import make_fusion
from lmrec.models.lm.graph import attach_graph, check_graph
from lmrec.models.lm.item_tower import fit_whitening
from lmrec.models.lm.params import FORMAT_VERSION, ComponentParams
from lmrec.models.lm.privacy import check_private_settings, train_private
from lmrec.models.lm.text import encode_texts, item_fields, item_texts, user_texts
from lmrec.models.lm.training import LoraSetup, append_histories, train_network, training_windows
from lmrec.models.lm.user_tower import UserTower
from lmrec.models.lm.validation import Validator, ndcg_validator
from lmrec.models.lm.vectors import LMVectors
from lmrec.train.distributed import data_parallel
from lmrec.train.seeding import seeded

__all__ = ["LMRecommender"]

log = logging.getLogger(__name__)


@register("lm")
class LMRecommender(ComponentParams, LMVectors):
    """Language-model user-interest model (two towers in a pretrained LM's space).

    Every component argument takes its config dataclass, a plain dict of its fields, or None for
    its defaults (`lmrec.models.lm.config` documents each field).

    Args:
        dim: width ``d`` of the shared space.
        item_tower: `ItemTowerConfig`: text / ID representation, adaptor, whitening, content channel.
        user_tower: `UserTowerConfig`: history length, transformer, time buckets, user text.
        objective: `ObjectiveConfig`: loss, negatives, similarity, temperature, head weights.
        optim: `OptimConfig`: learning rate, batch size, epochs, early-stopping patience, clipping.
        encoder: `EncoderConfig`: which language model to build (saved), its cache, LoRA fine-tuning.
        fusion: `FusionConfig`: other modalities fused with the item text.
        continual: `ContinualConfig`: replay, weight pull and distillation of `partial_fit`.
        text_encoder: a `TextEncoder` object to use (not saved; tests inject a `HashingEncoder`);
            None builds the one ``encoder`` names.
        image_encoder: an image encoder object for ``fusion.image`` (not saved).
        num_threads: torch threads while fitting (None: leave torch's setting).
        show_progress: progress bars for encoding and training.
        random_state: seed of weights, dropout, sampling and shuffling (the global RNG is untouched).
        privacy: `PrivacyConfig`: user-level DP-SGD (`lmrec.models.lm.privacy`); off unless
            ``epsilon`` is set. Last, so that positional calls of before keep their meaning.
        cold_start: `ColdStartConfig`: items scored by how much the model knows of them
            (`lmrec.models.lm.cold`); on by default, its weights fitted on ``fit``'s validation rows.

    With privacy on, ``fit`` trains exactly ``optim.epochs`` epochs (no early stopping: validation
    users' data is private too) and sets ``privacy_report_`` (the ``(epsilon, delta)`` spent, the
    noise multiplier, sample rate, steps, clipping bound and accountant), which is also saved.

    The flat argument names of before the components (``loss="bpr"``, ``item_repr="text"``, ...;
    `lmrec.models.lm.config.FLAT_NAMES`) are read by `from_params` (command line, YAML, format-1
    saved models), not by the constructor.
    """

    is_sequential = True
    format_version: ClassVar[int | None] = FORMAT_VERSION
    #: component key -> config class (the multi-scenario model adds its own)
    components: ClassVar[dict[str, type[ComponentConfig]]] = dict(COMPONENTS)
    #: components of this model alone (the multi-scenario model copies ``components`` only)
    own_components: ClassVar[dict[str, type[ComponentConfig]]] = {
        "privacy": PrivacyConfig,
        "cold_start": ColdStartConfig,
    }
    #: the parameter ``lmrec train/evaluate --device`` sets
    device_key: ClassVar[str] = "optim.device"
    #: ``fit`` trains data-parallel inside torch.distributed (``lmrec train --ray``; not with privacy)
    trains_data_parallel: ClassVar[bool] = True
    #: top-level arguments that are saved (the encoder objects are not)
    top_level: ClassVar[tuple[str, ...]] = ("dim", "num_threads", "show_progress", "random_state")

    item_tower: ItemTowerConfig
    user_tower: UserTowerConfig
    objective: ObjectiveConfig
    optim: OptimConfig
    encoder: EncoderConfig
    fusion: FusionConfig
    continual: ContinualConfig
    privacy: PrivacyConfig
    cold_start: ColdStartConfig
    #: the fitted weights of the cold-start paths (None while training, or without the component)
    cold_state_: ColdState | None
    #: what private training spent (`lmrec.models.lm.privacy.train_private`); None when not private
    privacy_report_: dict[str, Any] | None

    def __init__(
        self,
        dim: int = 64,
        item_tower: ItemTowerConfig | Mapping[str, Any] | None = None,
        user_tower: UserTowerConfig | Mapping[str, Any] | None = None,
        objective: ObjectiveConfig | Mapping[str, Any] | None = None,
        optim: OptimConfig | Mapping[str, Any] | None = None,
        encoder: EncoderConfig | Mapping[str, Any] | None = None,
        fusion: FusionConfig | Mapping[str, Any] | None = None,
        continual: ContinualConfig | Mapping[str, Any] | None = None,
        text_encoder: TextEncoder | None = None,
        image_encoder: Any = None,
        num_threads: int | None = None,
        show_progress: bool = False,
        random_state: int | None = 0,
        privacy: PrivacyConfig | Mapping[str, Any] | None = None,
        cold_start: ColdStartConfig | Mapping[str, Any] | None = None,
    ) -> None:
        self.item_tower = coerce(ItemTowerConfig, item_tower)
        self.user_tower = coerce(UserTowerConfig, user_tower)
        self.objective = coerce(ObjectiveConfig, objective)
        self.optim = coerce(OptimConfig, optim)
        self.encoder = coerce(EncoderConfig, encoder)
        self.fusion = coerce(FusionConfig, fusion)
        self.continual = coerce(ContinualConfig, continual)
        self.privacy = coerce(PrivacyConfig, privacy)
        self.cold_start = coerce(ColdStartConfig, cold_start)
        self.dim, self.num_threads, self.show_progress, self.random_state = (
            dim,
            num_threads,
            show_progress,
            random_state,
        )
        self.text_encoder, self.image_encoder = text_encoder, image_encoder

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        dataset: Dataset | Interactions,
        valid: Split | Interactions | None = None,
        *,
        validator: Validator | None = None,
    ) -> LMRecommender:
        """Reset and train.

        Args:
            dataset: training interactions with their item catalogue (and user texts).
            valid: a `Split` (its ``valid`` part is used) or validation interactions on the same id
                maps; training stops early on their NDCG@10 (full ranking, training items masked)
                and keeps the best weights. Without it, ``optim.epochs`` epochs are run.
            validator: ``(model, known, valid) -> {"ndcg@10", ...}``, called after every epoch
                (None: `lmrec.models.lm.validation.ndcg_validator`, which computes what
                ``lmrec.eval.evaluate`` reports).
        """
        self._valid = valid.valid if isinstance(valid, Split) else valid
        self._validator = validator
        if getattr(self, "_built_encoder", False):
            self.text_encoder, self._built_encoder = None, False  # a refit starts from the untuned encoder
        started = time.perf_counter()
        try:
            super().fit(dataset)
        finally:
            self._valid = self._validator = None
        self.fit_s_: float | None = time.perf_counter() - started  # the base of continual.update_budget
        return self

    def epoch_validator(
        self, known: Interactions, valid: Interactions, validator: Validator | None = None, **options: Any
    ) -> Callable[[], dict[str, float]]:
        """``validate()`` for training: refreshes the cached vectors, then runs ``validator`` (None:
        `ndcg_validator`) on ``valid`` with the items of ``known`` masked."""
        check = validator if validator is not None else ndcg_validator

        def validate() -> dict[str, float]:
            self.refresh_vectors()
            return check(self, known, valid, **options)

        return validate

    def check_params(self) -> None:
        """Checks across components (each component checked itself when it was built)."""
        for key, cls in self.all_components().items():
            if not isinstance(getattr(self, key), cls):
                raise ValueError(f"LMRecommender {key} must be a {cls.__name__}, got {getattr(self, key)!r}")
        dim = self.dim
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"LMRecommender dim must be an integer >= 1, got {dim!r}")
        if self.dim % self.user_tower.n_heads:
            raise ValueError(f"LMRecommender dim ({self.dim}) must be divisible by n_heads ({self.user_tower.n_heads})")
        if self.encoder.finetune == "lora" and self.item_tower.repr == "id":
            raise ValueError("LMRecommender encoder.finetune='lora' needs item text; item_tower.repr is 'id'")
        if self.fusion.mode != "none" and self.item_tower.repr == "id":
            raise ValueError("LMRecommender fusion.mode fuses with the item text; item_tower.repr is 'id'")
        if self.privacy.enabled:
            check_private_settings(self.objective, self.fusion, self.encoder.finetune)
        check_graph(self.fusion, self.item_tower)

    def _fit(self, dataset: Dataset) -> None:
        self.check_params()
        inter = dataset.interactions
        valid = getattr(self, "_valid", None)
        if valid is not None and (valid.user_map != inter.user_map or valid.item_map != inter.item_map):
            raise ValueError("LMRecommender.fit: valid interactions use different id maps from the training data")
        seed = 0 if self.random_state is None else int(self.random_state)
        resolve_device(self.optim.device)  # a device this machine lacks fails before the encoding
        with seeded(seed, self.num_threads):
            self.prepare(dataset)
            self._train(inter, valid, seed)
            self.calibrate_cold_start(inter, valid)

    def prepare(self, dataset: Dataset) -> None:
        """The first step of ``fit``: text vectors (once), histories, counts and a fresh network for
        ``dataset`` (draws from torch's global RNG: run it under `seeded`)."""
        inter = dataset.interactions
        n_users = inter.n_users
        it, enc = self.item_tower, self.encoder
        self.cold_state_ = None  # training and early stopping see the learned vectors alone
        uses_text = it.uses_text
        self.item_fields_: dict[str, list[str]] = {}
        item_text_vecs = None
        self.encoder_spec_: dict[str, Any] = {"model": enc.model, "backend": enc.backend}
        if uses_text:
            if dataset.items is None:
                raise ValueError(f"item_repr={it.repr!r} needs an item catalogue with text; the dataset has none")
            fields = item_fields(dataset.items, it.text_fields)
            texts, self.item_fields_ = item_texts(dataset.items, inter.item_map, fields)
            if enc.item_vectors is None:
                log.info("encoding %d item texts (fields %s)", len(texts), fields)
            if enc.finetune == "lora":
                self._item_texts = texts
                if self.text_encoder is None or not hasattr(self.text_encoder, "train_mode"):
                    self.text_encoder, self._built_encoder = make_lora_encoder(enc.model, enc.lora_rank), True
                elif getattr(self.text_encoder, "mode_", None) is None:
                    self.text_encoder.train_mode(lora=True, r=enc.lora_rank, alpha=2 * enc.lora_rank)
            if enc.item_vectors is not None:  # brought by the user: no encoding
                item_text_vecs = load_item_vectors(enc.item_vectors, inter.item_map.ids, ids=enc.item_vector_ids)
            else:
                encoder = self.get_text_encoder()
                item_text_vecs = encode_texts(encoder, texts, cache_dir=enc.cache_dir, show_progress=self.show_progress)
        ut = self.user_tower
        utexts = user_texts(dataset.users, inter.user_map, ut.user_text_kinds) if ut.use_user_text else []
        user_inputs = user_text_inputs(
            utexts, n_users, self.get_text_encoder, it, cache_dir=enc.cache_dir, show_progress=self.show_progress
        )
        self.counts_ = inter.item_counts()
        self.set_histories(inter)
        whitening = None
        if uses_text and it.whiten:
            assert item_text_vecs is not None  # encoded above
            whitening = fit_whitening(item_text_vecs, eps=it.whiten_eps)
        id_mask = self.counts_ > 0
        if self.privacy.enabled:
            # nothing fitted on all users enters a private model: every item keeps its ID part (which
            # items have training rows is a count over users), and user texts are whitened with the
            # item whitening (item text is public) instead of one fitted on every user's text
            check_private_settings(self.objective, self.fusion, enc.finetune, inter.n_items)
            id_mask = np.ones(inter.n_items, dtype=bool)
            if user_inputs[0] is not None and user_inputs[2] is not None:
                user_inputs = (user_inputs[0], user_inputs[1], whitening)
        self.event_classes_ = event_classes(inter, self.objective)
        self.net_ = build_net(
            self.dim,
            it,
            ut,
            self.objective,
            item_text_vecs,
            id_mask,
            whitening,
            user_inputs,
            len(self.event_classes_),
        )
        if uses_text and self.fusion.mode != "none":
            self.net_.item_tower.fusion, self.fusion_spec_ = make_fusion(
                self.fusion,
                dataset,
                texts,
                self.dim,
                image_encoder=self.image_encoder,
                show_progress=self.show_progress,
            )
        else:
            self.fusion_spec_ = None
        self.fusion_spec_ = attach_graph(self.net_, self.fusion, dataset, self.dim, self.fusion_spec_)

    def calibrate_cold_start(self, known: Interactions, valid: Interactions | None) -> None:
        """Set the cold-start weights (`lmrec.models.lm.cold.fit_state`): chosen on ``valid`` (rows on
        the model's maps, ``known`` masked), None (paths off) without it, or the config's with
        ``cold_start.calibrate`` False; refreshes the vectors."""
        self._check_fitted()
        self.cold_state_ = ColdState.from_config(self.cold_start)
        self.refresh_vectors()
        if self.cold_paths_ is not None:

            def paths(state: Any) -> Any:
                return self.make_cold_paths(state)

            self.cold_state_, self.cold_calibration_ = fit_state(
                self.cold_start, paths, self.user_vectors, known, valid
            )
            self.refresh_vectors()

    def make_user_tower(self, text_dim: int) -> UserTower:
        """A freshly initialised user tower of this model's shape (``text_dim`` 0: no user text)."""
        return make_user_tower(self.dim, self.user_tower, text_dim)

    def set_histories(self, inter: Interactions) -> None:
        """Make each user's history (``hist_items_`` / ``hist_times_``) their rows of ``inter`` in time order."""
        self.hist_items_, self.hist_times_ = time_ordered_histories(inter)

    def _train(self, inter: Interactions, valid: Interactions | None, seed: int) -> None:
        windows = training_windows(
            inter,
            self.hist_items_,
            self.hist_times_,
            self.user_tower,
            self.objective.rating_weight,
            self.event_classes_,
        )
        if self.privacy.enabled:
            if data_parallel()[1] > 1:
                raise ValueError("LMRecommender: private training (privacy.epsilon) is not data-parallel")
            if valid is not None and len(valid):
                log.info("privacy on: %d validation rows are not used (fixed %d epochs)", len(valid), self.optim.epochs)
            self.train_history_, self.privacy_report_ = train_private(
                self.net_,
                windows,
                privacy=self.privacy,
                optim=self.optim,
                content_weight=self.item_tower.content_weight,
                seed=seed,
                show_progress=self.show_progress,
            )
            log.info("privacy report: %s", self.privacy_report_)
            self.refresh_vectors()
            return
        self.privacy_report_ = None
        validate = None
        if valid is not None and len(valid):
            validate = self.epoch_validator(inter, valid, getattr(self, "_validator", None))
        lora = LoraSetup(self.text_encoder, self._item_texts, self.encoder) if self.encoder.finetune == "lora" else None
        self.train_history_ = train_network(
            self.net_,
            windows,
            self.counts_,
            objective=self.objective,
            optim=self.optim,
            content_weight=self.item_tower.content_weight,
            seed=seed,
            validate=validate,
            lora=lora,
            show_progress=self.show_progress,
        )
        self.net_.eval()
        if self.encoder.finetune == "lora":
            assert self.text_encoder is not None  # the tuned encoder
            self.encoder_spec_["name"] = self.text_encoder.name  # the tuned weights' name
            del self._item_texts
        self.refresh_vectors()

    # ------------------------------------------------------------------ continual learning
    def partial_fit(
        self,
        new_interactions: Interactions | Any,
        new_items: ItemCatalog | None = None,
        new_users: UserTexts | None = None,
        *,
        epochs: int | None = None,
        valid: Interactions | Any | None = None,
        validator: Validator | None = None,
    ) -> LMRecommender:
        """Continue training on new interactions (warm start; see `lmrec.models.lm.continual`).

        The id maps grow (existing indices never change); unknown items enter through their text in
        ``new_items`` (every catalogue row not yet known is added, with or without interactions),
        unknown users with their new history (and text from ``new_users``). The network keeps its
        weights, a fresh optimiser trains ``continual.update_epochs`` epochs with the new rows plus the
        replay buffer's rows as targets and ``continual.regularizer`` pulling toward the previous weights.
        The update takes at most ``continual.update_budget`` times the last fit's time (``fit_s_``);
        ``last_update_`` reports ``epochs_run``, ``budget_s``, ``budget_bound`` and ``stopped_by``.

        Args:
            new_interactions: raw-id rows: an `Interactions` on any id maps (its maps give the raw
                ids) or a DataFrame with ``user_id``, ``item_id`` and optionally ``timestamp``.
            new_items: catalogue rows of new items (same text fields as the training catalogue).
            new_users: texts of new users.
            epochs: override ``continual.update_epochs`` (``update_max_epochs`` with ``valid``); 0 only
                absorbs the rows (maps, histories, counts) without training.
            valid: raw-id validation rows from the same window (for example each user's last row, as
                `lmrec.eval.stream.last_row_split` cuts it), not in ``new_interactions``. The update
                then validates NDCG@10 on them after every epoch (every row the model holds masked),
                stops after ``continual.update_patience`` epochs without a gain and keeps the best of
                epochs 0 (the weights before the update) to ``continual.update_max_epochs``; afterwards the rows join the
                history, as in ``lmrec train``. ``last_update_`` reports ``best_epoch``,
                ``valid_ndcg@10`` and ``valid_ndcg@10_before``.
            validator: the validation measure (as in `fit`; None: `ndcg_validator`).
        """
        self._check_fitted()
        self.check_params()
        if self.encoder.finetune == "lora":
            raise ValueError("LMRecommender.partial_fit does not support encoder.finetune='lora'; refit instead")
        if self.privacy.enabled:
            raise ValueError(
                "LMRecommender.partial_fit is not private (its updates are not accounted); with "
                "privacy.epsilon set, refit instead"
            )
        updater = ContinualUpdater(
            self.continual,
            objective=self.objective,
            optim=self.optim,
            user_tower=self.user_tower,
            item_tower=self.item_tower,
            cache_dir=self.encoder.cache_dir,
            random_state=self.random_state,
            num_threads=self.num_threads,
            show_progress=self.show_progress,
            fit_s=getattr(self, "fit_s_", None),
        )
        hooks = UpdateHooks(
            encoder=self.get_text_encoder,
            sync=self.set_update_state,
            refresh=self.refresh_vectors,
            validator=lambda known, rows: self.epoch_validator(known, rows, validator),
        )
        self.last_update_ = updater.update(
            self.update_state(), new_interactions, new_items, new_users, hooks=hooks, epochs=epochs, valid=valid
        )
        return self

    def update_state(self) -> UpdateState:
        """The state a continual update works on (shares the network, histories and field lists)."""
        replay = self.replay_buffer_ if getattr(self, "_replay_net", None) is self.net_ else None
        return UpdateState(
            self.net_,
            self.user_map_,
            self.item_map_,
            self.seen_,
            self.counts_,
            self.hist_items_,
            self.hist_times_,
            self.item_fields_,
            replay=replay,
            n_updates=getattr(self, "n_updates_", 0),
            update_history=getattr(self, "update_history_", None),
        )

    def set_update_state(self, state: UpdateState) -> None:
        """Take back a state `update_state` handed out (after or during an update)."""
        self.net_, self.user_map_, self.item_map_, self.seen_ = state.net, state.user_map, state.item_map, state.seen
        self.counts_, self.hist_items_, self.hist_times_ = state.counts, state.hist_items, state.hist_times
        self.item_fields_, self.n_updates_ = state.item_fields, state.n_updates
        self.replay_buffer_, self._replay_net = state.replay, state.net
        if state.update_history is not None:
            self.update_history_ = state.update_history

    # ------------------------------------------------------------------ history and cold start
    def observe(self, interactions: Interactions) -> LMRecommender:
        """Append interactions to the users' histories (kept in time order) and to ``seen_``."""
        super().observe(interactions)
        append_histories(self.hist_items_, self.hist_times_, interactions)
        return self

    def add_items(self, item_ids: Sequence[object], texts: Sequence[str]) -> np.ndarray:
        """Add brand-new items, scored from their text alone; returns their indices (existing ids are
        left as they are and their current indices returned)."""
        self._check_fitted()
        if len(item_ids) != len(texts):
            raise ValueError(f"add_items: {len(item_ids)} ids but {len(texts)} texts")
        new = [(str(i), t) for i, t in zip(item_ids, texts) if str(i) not in self.item_map_]
        if new:
            raw = encode_texts(self.get_text_encoder(), [t for _, t in new]) if self.item_tower.repr != "id" else None
            self.item_map_ = self.item_map_.copy().fit_partial([i for i, _ in new])
            self.net_.item_tower.grow(raw, len(new))
            self.seen_ = sp.hstack([self.seen_, sp.csr_matrix((self.n_users, len(new)), dtype=np.float32)]).tocsr()
            self.counts_ = np.concatenate([self.counts_, np.zeros(len(new), self.counts_.dtype)])
            for f in self.item_fields_:
                self.item_fields_[f].extend([""] * len(new))
            self.refresh_vectors()
        return self.item_map_.to_index([str(i) for i in item_ids])

    def explain(self, user_idx: int, item_idx: int, query: str | None = None, k: int = 3) -> dict[str, Any]:
        """Why ``item_idx`` is recommended to ``user_idx`` (optionally under ``query``); see
        `lmrec.models.lm.explain.explain_recommendation` for the returned dict.

        Args:
            user_idx: the user (an index outside the model means an unknown user: no history).
            item_idx: the recommended item.
            query: the query the recommendation answered, if any.
            k: how many history items to return.

        Raises:
            ValueError: ``item_idx`` is not an item of the model.
        """
        self._check_fitted()
        item_idx, user_idx = int(item_idx), int(user_idx)
        if not 0 <= item_idx < self.n_items:
            raise ValueError(f"explain: item_idx {item_idx} is not an item of this model (0..{self.n_items - 1})")
        known = 0 <= user_idx < self.n_users
        history = self.hist_items_[user_idx][-self.user_tower.max_len :] if known else np.zeros(0, np.int64)
        user = self.user_vectors(np.array([user_idx]))[0] if known else self.encode_users([[]])[0]
        query_vector = None
        if query and self.item_tower.repr != "id":
            query_vector = self.encode_queries([query])[0]
        return explain_recommendation(
            user_idx,
            item_idx,
            self.item_vectors(),
            user,
            history,
            self.item_map_,
            self.item_fields_,
            k=k,
            query=query,
            query_vector=query_vector,
            encoder=self.get_text_encoder,
        )

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, meta)`` of the fitted state (`lmrec.models.lm.persist`); `load_state_dict` restores it."""
        spec = dict(getattr(self, "encoder_spec_", {}) or {})
        lora = None
        if self.encoder.finetune == "lora":
            lora, spec["lora"] = lora_arrays(self.get_text_encoder())
        saved = persist.SavedState(
            net={k: v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()},
            hist_items=self.hist_items_,
            hist_times=self.hist_times_,
            counts=self.counts_,
            item_vectors=self.item_vectors_,
            item_fields=self.item_fields_,
            encoder=spec,
            lora=lora,
            event_classes=list(self.event_classes_),
            train_history=list(getattr(self, "train_history_", []) or []),
            fusion=getattr(self, "fusion_spec_", None),
        )
        arrays, meta = persist.pack(saved)
        report = getattr(self, "privacy_report_", None)
        if report:
            meta["privacy_report"] = dict(report)
        fit_s = getattr(self, "fit_s_", None)
        if fit_s is not None:
            meta["fit_s"] = float(fit_s)  # the update budget's base survives save / load
        cold_state = getattr(self, "cold_state_", None)
        if cold_state is not None:
            meta["cold_state"] = cold_state.to_dict()
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (the id maps and ``seen_`` are set by ``load``)."""
        saved = persist.unpack(arrays, meta)
        self.encoder_spec_ = saved.encoder
        self._lora_arrays = saved.lora
        self.event_classes_ = list(saved.event_classes)
        self.fusion_spec_ = saved.fusion
        self.net_ = net_from_arrays(
            saved.net,
            self.dim,
            self.item_tower,
            self.user_tower,
            self.objective,
            len(self.event_classes_),
            self.fusion_spec_,
        )
        self.hist_items_, self.hist_times_ = saved.hist_items, saved.hist_times
        self.counts_ = saved.counts
        self.item_fields_ = saved.item_fields
        self.train_history_ = saved.train_history
        self.privacy_report_ = meta.get("privacy_report")
        self.fit_s_ = meta.get("fit_s")
        self.cold_state_ = state_from_meta(meta, self.cold_start)
        self.refresh_vectors()

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return self.state_dict()

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.load_state_dict(arrays, meta)
