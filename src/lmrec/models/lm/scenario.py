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
stays a trained answer. Scenario id ``-1`` is the shared path everywhere. ``partial_fit`` updates
the backbone on the shared path and keeps the adapters as they are.

Scoring under a scenario lives in `lmrec.models.lm.scenario_scoring` (the `ScenarioReadout` base),
the steps of `LMScenarioRecommender.adapt` in `lmrec.models.lm.adapt_steps`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset
from lmrec.data.interactions import Interactions
from lmrec.data.splits import Split
from lmrec.encoders.base import TextEncoder
from lmrec.models.base import register
from lmrec.models.lm.adapt_steps import adapt_data, adapt_plan, adapt_report, fresh_adapter, take_over, trainable
from lmrec.models.lm.adapters import (
    NO_LOSS,
    check_text_history,
    check_text_rank,
    scenario_adapters,
    scenario_loss_weights,
    train_positions,
)
from lmrec.models.lm.config import (
    ComponentConfig,
    ContinualConfig,
    EncoderConfig,
    FusionConfig,
    ItemTowerConfig,
    ObjectiveConfig,
    OptimConfig,
    ScenarioConfig,
    UserTowerConfig,
    coerce,
)
from lmrec.models.lm.domain import reset_parts
from lmrec.models.lm.model import LMRecommender
from lmrec.models.lm.params import FORMAT_VERSION, ComponentParams
from lmrec.models.lm.scenario_scoring import ScenarioReadout
from lmrec.models.lm.validation import Validator, ndcg_validator
from lmrec.train.seeding import seeded

__all__ = ["LMScenarioRecommender"]

log = logging.getLogger(__name__)

_SCENARIO_FIELDS = tuple(ScenarioConfig.field_names())
ONE_SCENARIO = "all"  # the scenario of interactions that carry none


class _FromBackbone:
    """An attribute of the composed `LMRecommender`, read and written through (settings and fitted state)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj.backbone, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj.backbone, self.name, value)


@register("lm-scenario")
class LMScenarioRecommender(ComponentParams, ScenarioReadout):
    """The ``lm`` model with a scenario embedding and low-rank adapters per scenario.

    It composes an `LMRecommender` (``backbone``): the backbone owns the settings, the network and
    the histories; this model adds the scenario adapters to the backbone's network (``net_.scenario``),
    trains every position under its target's scenario, and reads users and items out under a
    scenario. The backbone's settings and fitted state are reachable here under the same names.

    Takes every `LMRecommender` argument (same names, same defaults) plus ``scenarios``, a
    `ScenarioConfig` (or dict) of this model's own settings (dotted keys ``scenarios.adapter_rank``,
    ...; `from_params` also reads the flat names ``adapter_rank``, ``scenario_weights``,
    ``shared_dropout``, ``adapter_text_rank`` and ``adapter_text_history``): the rank of each scenario's
    user and item maps, the per-scenario loss weights, the share of positions scored on the shared
    path, and the rank (and history use) of each adapter's text-path correction, which `adapt` can
    set per new scenario.

    Interactions without scenarios all fall in one scenario, ``"all"`` (with a warning).

    Attributes:
        backbone: the composed `LMRecommender`.
        scenario_names_: scenario names, position = scenario id.
        scenario_weights_: (n_scenarios,) resolved loss weights.
        adapt_reports_: one dict per `adapt` call (scenario, mode, trainable counts, seconds).
    """

    is_sequential = True
    is_scenario_aware = True
    format_version: ClassVar[int | None] = FORMAT_VERSION
    components: ClassVar[dict[str, type[ComponentConfig]]] = {**LMRecommender.components, "scenarios": ScenarioConfig}
    top_level: ClassVar[tuple[str, ...]] = LMRecommender.top_level

    # the backbone's settings ...
    item_tower = _FromBackbone()
    user_tower = _FromBackbone()
    objective = _FromBackbone()
    optim = _FromBackbone()
    encoder = _FromBackbone()
    fusion = _FromBackbone()
    continual = _FromBackbone()
    dim = _FromBackbone()
    num_threads = _FromBackbone()
    show_progress = _FromBackbone()
    random_state = _FromBackbone()
    text_encoder = _FromBackbone()
    image_encoder = _FromBackbone()
    # ... and its fitted state
    seen_ = _FromBackbone()
    user_map_ = _FromBackbone()
    item_map_ = _FromBackbone()
    net_ = _FromBackbone()
    hist_items_ = _FromBackbone()
    hist_times_ = _FromBackbone()
    counts_ = _FromBackbone()
    item_vectors_ = _FromBackbone()
    item_raw_ = _FromBackbone()
    item_fields_ = _FromBackbone()
    event_classes_ = _FromBackbone()
    encoder_spec_ = _FromBackbone()
    fusion_spec_ = _FromBackbone()
    train_history_ = _FromBackbone()
    last_update_ = _FromBackbone()
    n_updates_ = _FromBackbone()
    update_history_ = _FromBackbone()
    replay_buffer_ = _FromBackbone()

    scenarios: ScenarioConfig

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
        scenarios: ScenarioConfig | Mapping[str, Any] | None = None,
        text_encoder: TextEncoder | None = None,
        image_encoder: Any = None,
        num_threads: int | None = None,
        show_progress: bool = False,
        random_state: int | None = 0,
    ) -> None:
        self.backbone = LMRecommender(
            dim,
            item_tower,
            user_tower,
            objective,
            optim,
            encoder,
            fusion,
            continual,
            text_encoder,
            image_encoder,
            num_threads,
            show_progress,
            random_state,
            cold_start={"enabled": False},  # the scenario adapters score the learned width only
        )
        self.scenarios = coerce(ScenarioConfig, scenarios)

    @classmethod
    def flat_names(cls) -> dict[str, str]:
        """The flat names of `LMRecommender` plus this model's own (``adapter_rank`` -> ``scenarios.adapter_rank``, ...)."""
        return {**super().flat_names(), **{f: f"scenarios.{f}" for f in _SCENARIO_FIELDS}}

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        dataset: Dataset | Interactions,
        valid: Split | Interactions | None = None,
        *,
        validator: Validator | None = None,
    ) -> LMScenarioRecommender:
        """Reset and train (arguments as `LMRecommender.fit`; validation scores each user under the
        scenario of their latest validation row)."""
        self._valid = valid.valid if isinstance(valid, Split) else valid
        self._validator = validator
        try:
            super().fit(dataset)
        finally:
            self._valid = self._validator = None
        return self

    def check_params(self) -> None:
        """The backbone's checks plus what the adapters need."""
        self.backbone.check_params()
        sc = self.scenarios
        check_text_rank(sc.adapter_text_rank, self.item_tower.repr, "adapter_text_rank")
        check_text_history(sc.adapter_text_history, sc.adapter_text_rank, "adapter_text_history")
        if self.objective.loss not in ("auto", "full"):
            raise ValueError(
                "LMScenarioRecommender trains with the full softmax; objective.loss must be 'auto' or 'full', "
                f"got {self.objective.loss!r}"
            )
        if self.item_tower.content_weight:
            raise ValueError(
                "LMScenarioRecommender does not support the content channel yet (its adapters act on the "
                f"learned width only); item_tower.content_weight must be 0, got {self.item_tower.content_weight!r}"
            )
        if self.encoder.finetune != "none":
            raise ValueError(
                "LMScenarioRecommender does not fine-tune the language model; encoder.finetune must be 'none', "
                f"got {self.encoder.finetune!r}"
            )
        if self.objective.event_weight > 0:
            raise ValueError("LMScenarioRecommender has no event head; objective.event_weight must be 0")
        if self.fusion.graph:
            raise ValueError(
                "LMScenarioRecommender does not support the knowledge-graph part; fusion.graph must be False"
            )

    def _fit(self, dataset: Dataset) -> None:
        inter = dataset.interactions
        self.check_params()
        valid = self._valid
        if valid is not None and (valid.user_map != inter.user_map or valid.item_map != inter.item_map):
            raise ValueError(
                "LMScenarioRecommender.fit: valid interactions use different id maps from the training data"
            )
        if inter.scenarios is None:
            log.warning(
                "lm-scenario: the interactions carry no scenarios, so all are in one scenario %r "
                "(on the command line: --scenario-field COLUMN)",
                ONE_SCENARIO,
            )
            names = np.full(len(inter), ONE_SCENARIO, dtype=object)
        else:
            names = inter.scenarios.astype(str)
        self.scenario_names_: list[str] = sorted(set(names.tolist()))
        lookup = {n: i for i, n in enumerate(self.scenario_names_)}
        row_scenarios = np.array([lookup[n] for n in names], dtype=np.int64)
        counts = np.bincount(row_scenarios, minlength=len(lookup)).astype(np.float64)
        self.scenario_weights_ = scenario_loss_weights(self.scenarios.scenario_weights, self.scenario_names_, counts)
        self.adapt_reports_: list[dict[str, Any]] = []
        seed = 0 if self.random_state is None else int(self.random_state)
        with seeded(seed, self.num_threads):
            self.backbone.prepare(dataset)
            self._attach_adapters()
            validate = None
            if valid is not None and len(valid):
                validate = self.epoch_validator(inter, valid, self._validator)
            self.train_history_ = train_positions(
                self.backbone,
                inter,
                row_scenarios,
                self.scenario_weights_,
                validate,
                seed,
                params=list(self.net_.parameters()),
                epochs=int(self.optim.epochs),
                lr=self.optim.lr,
                patience=int(self.optim.patience),
                shared_dropout=self.scenarios.shared_dropout,
            )
            self.net_.eval()
            self.refresh_vectors()

    def _attach_adapters(
        self,
        text_ranks: list[int] | None = None,
        text_history: list[bool] | None = None,
        id_shapes: list[tuple[int, int]] | None = None,
    ) -> None:
        """Give the backbone's network one fresh adapter per scenario (``net_.scenario``); the shapes
        default to the settings (a loaded model passes its saved adapters' shapes)."""
        seed = 0 if self.random_state is None else int(self.random_state)
        n = len(self.scenario_names_)
        self.net_.scenario = scenario_adapters(
            self.net_, n, self.dim, self.scenarios, seed, text_ranks, text_history, id_shapes
        )

    def epoch_validator(
        self, known: Interactions, valid: Interactions, validator: Validator | None = None, **options: Any
    ) -> Callable[[], dict[str, float]]:
        """As `LMRecommender.epoch_validator`, with this model's vectors and scenario-aware scoring."""
        check = validator if validator is not None else ndcg_validator

        def validate() -> dict[str, float]:
            self.refresh_vectors()
            return check(self, known, valid, **options)

        return validate

    # ------------------------------------------------------------------ updates through the backbone
    def observe(self, interactions: Interactions) -> LMScenarioRecommender:
        """Add known history (`LMRecommender.observe`)."""
        self.backbone.observe(interactions)
        return self

    def add_items(self, item_ids: Sequence[object], texts: Sequence[str]) -> np.ndarray:
        """Add items known only by their text (`LMRecommender.add_items`), under every scenario too."""
        n_before = self.n_items
        out = self.backbone.add_items(item_ids, texts)
        if self.n_items != n_before:
            self.refresh_vectors()
        return out

    def partial_fit(
        self,
        new_interactions: Interactions | Any,
        new_items: ItemCatalog | None = None,
        new_users: UserTexts | None = None,
        *,
        epochs: int | None = None,
        valid: Interactions | Any | None = None,
        validator: Validator | None = None,
    ) -> LMScenarioRecommender:
        """Update the backbone on the shared path (`LMRecommender.partial_fit`); the adapters stay as they are."""
        self.backbone.partial_fit(
            new_interactions, new_items, new_users, epochs=epochs, valid=valid, validator=validator
        )
        self.refresh_vectors()
        return self

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
        validator: Validator | None = None,
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
                ``text_history``. With a text rank it lets a held-out scenario's items get per-item
                scenario vectors at a small share of full fine-tuning's parameters (benchmarks/RESULTS.md
                compares it with text rank alone).
            refit_whitening: for a new domain, re-fit the text whitening on the new catalogue's
                (and users') text vectors before anything is trained (`lmrec.models.lm.domain`);
                False keeps the old domain's statistics. None (default): re-fit with
                ``mode="full"``, where the adaptor after it is trained, and keep the old statistics
                in adapter mode, where it stays frozen (the better choice in each mode on a
                cross-domain transfer; benchmarks/RESULTS.md). Ignored within the same domain.
            anchor: with ``mode="full"``, the strength of an L2-SP pull toward the weights the
                adaptation starts from (0: off). After every optimiser step each carried-over weight
                moves ``min(1, lr * anchor)`` of the way back to its starting value (the decoupled
                form used by `partial_fit`, `lmrec.train.anchor.pull_toward_anchor`); the
                item-ID table and the new adapter, which have no learned start, are not pulled.
            reset: with ``mode="full"``, parts of the carried-over network to re-initialise before
                training (`lmrec.models.lm.domain.reset_parts`): ``"user_tower"`` and/or
                ``"adaptor"`` (for experiments: a fresh user tower made no significant difference
                on a cross-domain transfer; benchmarks/RESULTS.md).
            validator: the validation measure (as in `fit`; None: `ndcg_validator` over the scenario's
                validation users).

        Returns:
            The report (also appended to ``adapt_reports_``): ``scenario``, ``scenario_id``,
            ``mode``, ``text_rank``, ``id_rank``, ``id_items``, ``trainable_params``, ``full_finetune_params`` (what ``mode="full"`` trains),
            ``trainable_share``, ``n_train_positions``, ``fit_s``, ``epochs_run`` and
            ``best_valid_ndcg@10`` (None without ``valid``).
        """
        self._check_fitted()
        plan = adapt_plan(
            self.scenarios,
            self.item_tower.repr,
            scenario,
            mode,
            new_item_ids,
            text_rank,
            text_history,
            id_rank,
            anchor,
            reset,
            refit_whitening,
        )
        data = adapt_data(dataset, scenario, valid, self.user_map_, self.item_map_)
        inter, in_scen = data.inter, data.in_scenario
        seed = 0 if self.random_state is None else int(self.random_state)
        with seeded(seed, self.num_threads):
            take_over(self.backbone, data, refit_whitening=plan.refit_whitening)
            was_reset = set(reset_parts(self.backbone, plan.reset))
            n_before = len(self.scenario_names_)
            sid, id_rows = fresh_adapter(self.net_, self.scenario_names_, plan, inter.items[in_scen], seed)
            if len(self.scenario_names_) > n_before:  # a new scenario: loss weight 1
                self.scenario_weights_ = np.append(self.scenario_weights_, np.float32(1.0))
            params, full, start_weights = trainable(self.net_, self.counts_, sid, plan, was_reset)
            validate = None
            if data.valid is not None and len(data.valid):
                validate = self.epoch_validator(inter, data.valid, validator, focus=plan.scenario)
            start = time.perf_counter()
            try:
                history = train_positions(
                    self.backbone,
                    inter,
                    np.where(in_scen, sid, NO_LOSS).astype(np.int64),
                    self.scenario_weights_,
                    validate,
                    seed,
                    params=params,
                    epochs=int(epochs or self.optim.epochs),
                    lr=float(lr or self.optim.lr),
                    patience=int(patience or self.optim.patience),
                    shared_dropout=0.0,
                    anchor=start_weights,
                    anchor_strength=plan.anchor,
                )
            finally:
                for p in self.net_.parameters():
                    p.requires_grad_(True)
            fit_s = time.perf_counter() - start
        self.net_.eval()
        self.refresh_vectors()
        n_full = sum(p.numel() for p in full)
        n_train = sum(p.numel() for p in params)
        report = adapt_report(plan, data, sid, id_rows, n_train, n_full, history, fit_s, whiten=self.item_tower.whiten)
        self.adapt_reports_.append(report)
        log.info(
            "adapted scenario %r (%s): %d of %d parameters trained, %.1f s", scenario, plan.mode, n_train, n_full, fit_s
        )
        return report

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = self.backbone.state_dict()  # the network's state holds the adapters (net/scenario.*)
        arrays["scenario_weights"] = np.asarray(self.scenario_weights_, np.float32)
        meta["scenario_names"] = list(self.scenario_names_)
        meta["adapt_reports"] = list(getattr(self, "adapt_reports_", []))
        meta["adapter_text_history"] = [bool(a.text_history) for a in self.net_.scenario.adapters]
        return arrays, meta

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.scenario_names_ = list(meta["scenario_names"])
        self.scenario_weights_ = arrays.pop("scenario_weights")
        self.adapt_reports_ = list(meta.get("adapt_reports", []))
        adapters = {k: v for k, v in arrays.items() if k.startswith("net/scenario.")}
        self.backbone.load_state_dict({k: v for k, v in arrays.items() if k not in adapters}, meta)
        # each adapter's shapes from its saved arrays (no text correction or ID residual: rank 0)
        n = len(self.scenario_names_)
        text_b = [adapters.get(f"net/scenario.adapters.{i}.text_b") for i in range(n)]
        id_u = [adapters.get(f"net/scenario.adapters.{i}.id_u") for i in range(n)]
        self._attach_adapters(
            [0 if t is None else int(t.shape[1]) for t in text_b],
            list(meta.get("adapter_text_history", [False] * n)),  # absent: saved before it existed
            [(0, 0) if u is None else (int(u.shape[0]), int(u.shape[1])) for u in id_u],
        )
        self.net_.scenario.load_state_dict(
            {k[len("net/scenario.") :]: torch.from_numpy(np.asarray(v)) for k, v in adapters.items()}
        )
        self.net_.eval()
        self.refresh_vectors()
