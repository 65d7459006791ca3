"""Typed settings of the language-model interest model, one small frozen dataclass per component.

Each component owns its defaults and validates itself when built: a bad value is a ``ValueError``
that names the field, the value and what is allowed; an unknown key given to ``from_dict`` names the
key and the valid ones. `LMRecommender` takes one of each (a dataclass, a plain dict or None for the
defaults), so a setting is reachable by a dotted key such as ``lm.objective.loss``.

`FLAT_NAMES` maps every flat constructor argument of the model before the components existed
(``loss``, ``item_repr``, ``fusion_categorical``, ...) to its dotted place, so old ``--param``
lines, YAML files and saved ``config.json`` files keep working through
`lmrec.models.lm.params.ComponentParams.from_params` (the constructors take components only).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from lmrec.encoders.device import check_device, check_precision

__all__ = [
    "COMPONENTS",
    "ColdStartConfig",
    "ComponentConfig",
    "ContinualConfig",
    "EncoderConfig",
    "FLAT_NAMES",
    "FusionConfig",
    "ItemTowerConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "PrivacyConfig",
    "ScenarioConfig",
    "UserTowerConfig",
    "coerce",
]

C = TypeVar("C", bound="ComponentConfig")


# ---------------------------------------------------------------------- checks
def _name(obj: Any, field: str) -> str:
    return f"{type(obj).__name__}.{field}"


def _choice(obj: Any, field: str, allowed: Sequence[Any]) -> None:
    value = getattr(obj, field)
    if value not in allowed:
        raise ValueError(f"{_name(obj, field)} must be one of {list(allowed)}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _int_at_least(obj: Any, field: str, low: int) -> None:
    value = getattr(obj, field)
    if not _is_int(value) or value < low:
        raise ValueError(f"{_name(obj, field)} must be an integer >= {low}, got {value!r}")


def _number(obj: Any, field: str, *, low: float = 0.0, strict: bool = False, optional: bool = False) -> None:
    """A finite number ``>= low`` (``> low`` with ``strict``); None too with ``optional``."""
    value = getattr(obj, field)
    if value is None and optional:
        return
    ok = _is_number(value) and math.isfinite(float(value)) and (value > low if strict else value >= low)
    if not ok:
        what = f"{'> ' if strict else '>= '}{low:g}"
        raise ValueError(f"{_name(obj, field)} must be {'None or ' if optional else ''}a number {what}, got {value!r}")


def _share(obj: Any, field: str) -> None:
    value = getattr(obj, field)
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{_name(obj, field)} must be a number in [0, 1), got {value!r}")


def _flag(obj: Any, field: str) -> None:
    value = getattr(obj, field)
    if not isinstance(value, bool):
        raise ValueError(f"{_name(obj, field)} must be True or False, got {value!r}")


def _names(obj: Any, field: str) -> None:
    """None or a list of strings; stored as a tuple (the config is frozen)."""
    value = getattr(obj, field)
    if value is None:
        return
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{_name(obj, field)} must be None or a list of column names, got {value!r}")
    object.__setattr__(obj, field, tuple(value))


class ComponentConfig:
    """Shared ``from_dict`` / ``to_dict`` of the component configs."""

    #: the key of the component in `LMRecommender` (``lm.<key>.<field>``)
    key: ClassVar[str] = ""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """Build from a plain dict; an unknown key is a ValueError naming it and the valid keys."""
        valid = cls.field_names()
        for key in values:
            if key not in valid:
                raise ValueError(f"{cls.__name__} has no field {key!r} (lm.{cls.key}.{key}); valid: {valid}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able field values (tuples as lists), for ``get_params`` and ``config.json``."""
        return {
            f: list(v) if isinstance(v, tuple) else v for f, v in ((f, getattr(self, f)) for f in self.field_names())
        }

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


# ---------------------------------------------------------------------- components
@dataclass(frozen=True)
class ItemTowerConfig(ComponentConfig):
    """How items enter the space.

    Attributes:
        repr: ``"hybrid"`` (text + ID), ``"text"`` (text only) or ``"id"`` (ID only, ablation).
        adaptor: ``"moe"``, ``"mlp"`` or ``"linear"`` map from the whitened text vector to ``dim``.
        n_experts: experts of the MoE adaptor.
        adaptor_dropout: dropout on the whitened text vector.
        id_dropout: share of items whose ID part is dropped in each training step (hybrid), so that
            text alone must carry the signal for rare and unseen items.
        whiten: PCA-whiten text vectors (fitted on the whole catalogue) before the adaptor.
        whiten_eps: eigenvalue ridge of the whitening, relative to the mean eigenvalue.
        text_fields: catalogue columns that make up item text (None: text fields then categories).
        content_weight: weight beta of the frozen content channel (0: off). Every score becomes
            ``sim(v_u, v_i) + beta * cos(c_u, c_i)``, with ``c_i`` the item's whitened frozen text
            vector and ``c_u`` the mean of the ``c_i`` of the user's last ``max_len`` items, in
            training too, so the learned towers fit what content similarity leaves unexplained; cold
            items keep the pretrained model's content similarity. Vectors are then
            ``[v, sqrt(beta) * c]``, so one inner product still scores.
    """

    key: ClassVar[str] = "item_tower"

    repr: Literal["hybrid", "text", "id"] = "hybrid"
    adaptor: Literal["moe", "mlp", "linear"] = "moe"
    n_experts: int = 4
    adaptor_dropout: float = 0.1
    id_dropout: float = 0.3
    whiten: bool = True
    whiten_eps: float = 0.1
    text_fields: Sequence[str] | None = None
    content_weight: float = 0.0

    def __post_init__(self) -> None:
        _choice(self, "repr", ("hybrid", "text", "id"))
        _choice(self, "adaptor", ("moe", "mlp", "linear"))
        _int_at_least(self, "n_experts", 1)
        _share(self, "adaptor_dropout")
        _share(self, "id_dropout")
        _flag(self, "whiten")
        _number(self, "whiten_eps")
        _names(self, "text_fields")
        _number(self, "content_weight")
        if self.content_weight > 0 and self.repr == "id":
            raise ValueError(
                "ItemTowerConfig.content_weight > 0 needs item text, but repr is 'id' (choose repr 'hybrid' or 'text')"
            )

    @property
    def uses_text(self) -> bool:
        return self.repr in ("hybrid", "text")


@dataclass(frozen=True)
class UserTowerConfig(ComponentConfig):
    """The causal transformer that reads a user's history (and gates in their own text).

    Attributes:
        max_len: longest history read.
        n_layers / n_heads / dropout: the transformer (``dim`` must be divisible by ``n_heads``).
        n_time_buckets: log time-gap buckets (0: no time encoding).
        use_user_text: gate in the user's own text (reviews, queries, profile sentence).
        user_text_kinds: which kinds of user text to read (None: all).
    """

    key: ClassVar[str] = "user_tower"

    max_len: int = 50
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    n_time_buckets: int = 20
    use_user_text: bool = True
    user_text_kinds: Sequence[str] | None = None

    def __post_init__(self) -> None:
        for name in ("max_len", "n_layers", "n_heads"):
            _int_at_least(self, name, 1)
        _share(self, "dropout")
        _int_at_least(self, "n_time_buckets", 0)
        _flag(self, "use_user_text")
        _names(self, "user_text_kinds")


@dataclass(frozen=True)
class ObjectiveConfig(ComponentConfig):
    """What training optimises (see `lmrec.models.lm.training`).

    Attributes:
        loss: ``"full"`` softmax, ``"sampled"`` softmax with log-Q, ``"bpr"``, or ``"auto"`` (full
            up to ``full_softmax_max_items`` items, sampled above).
        full_softmax_max_items: the ``"auto"`` threshold.
        n_negatives: sampled negatives per step for ``"sampled"``.
        similarity: ``"cosine"`` (unit vectors; logits over ``temperature``) or ``"dot"`` (raw inner
            products, where vector norms can carry popularity).
        temperature: temperature of the cosine logits; ``learn_temperature`` makes it a parameter.
        rating_weight: weight of the rating head (log(1 + r) regression) when ratings exist.
        event_weight: weight of the event-type head when events exist.
    """

    key: ClassVar[str] = "objective"

    loss: Literal["auto", "full", "sampled", "bpr"] = "auto"
    full_softmax_max_items: int = 50_000
    n_negatives: int = 512
    similarity: Literal["cosine", "dot"] = "cosine"
    temperature: float = 0.07
    learn_temperature: bool = False
    rating_weight: float = 0.0
    event_weight: float = 0.0

    def __post_init__(self) -> None:
        _choice(self, "loss", ("auto", "full", "sampled", "bpr"))
        _int_at_least(self, "full_softmax_max_items", 1)
        _int_at_least(self, "n_negatives", 1)
        _choice(self, "similarity", ("cosine", "dot"))
        _number(self, "temperature", strict=True)
        _flag(self, "learn_temperature")
        _number(self, "rating_weight")
        _number(self, "event_weight")

    def resolved_loss(self, n_items: int) -> Literal["full", "sampled", "bpr"]:
        """The loss actually used for a catalogue of ``n_items`` items (``"auto"`` resolved)."""
        if self.loss == "auto":
            return "full" if n_items <= self.full_softmax_max_items else "sampled"
        return self.loss


@dataclass(frozen=True)
class OptimConfig(ComponentConfig):
    """Optimisation of ``fit``: AdamW, early stopping on validation NDCG@10 when ``fit`` gets ``valid``.

    Attributes:
        lr / weight_decay: AdamW.
        batch_size: training windows per step.
        epochs: most epochs; patience: epochs without a validation gain before stopping.
        grad_clip: clip the gradient norm (None: off).
        device: where ``fit`` trains (`lmrec.encoders.device`): ``"auto"`` (a CUDA GPU when there is
            one, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; the fitted network
            returns to the CPU for scoring and saving, so a model loads on any machine.
        precision: ``"auto"`` (bf16 / fp16 autocast on a GPU, fp32 on the CPU), ``"fp32"``,
            ``"bf16"`` or ``"fp16"``.
    """

    key: ClassVar[str] = "optim"

    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 200
    patience: int = 10
    grad_clip: float | None = 5.0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"

    def __post_init__(self) -> None:
        _number(self, "lr", strict=True)
        _number(self, "weight_decay")
        for name in ("batch_size", "epochs", "patience"):
            _int_at_least(self, name, 1)
        _number(self, "grad_clip", strict=True, optional=True)
        object.__setattr__(self, "device", check_device(self.device, _name(self, "device")))
        check_precision(self.precision, _name(self, "precision"))


@dataclass(frozen=True)
class EncoderConfig(ComponentConfig):
    """The pretrained language model that opens the space (its spec is saved, the object is not).

    Attributes:
        model / backend: how to build the encoder when none is injected (None: the packaged
            MiniLM); a loaded model rebuilds the same one.
        cache_dir: on-disk embedding cache for the text vectors (None: no cache).
        finetune: ``"lora"`` fine-tunes the language model with LoRA adapters during training (see
            `lmrec.models.lm.finetune`; slow on a CPU, hence ``"none"`` by default).
        lora_rank / lora_items_per_step / lora_lr: adapter rank, targets re-encoded with gradients
            per step, and the adapters' learning rate.
        item_vectors / item_vector_ids: bring your own item text vectors (`lmrec.encoders.byo`): a
            ``.npy`` file (row ids from ``item_vector_ids`` or ``NAME.ids.txt``) or a parquet file
            keyed by ``item_id``; ``fit`` reads them instead of encoding the catalogue. Queries,
            new items and user texts still go through ``model``: bring vectors of that model (same
            space and dimension) when those paths are used.
    """

    key: ClassVar[str] = "encoder"

    model: str | None = None
    backend: str = "torch"
    cache_dir: str | None = None
    finetune: Literal["none", "lora"] = "none"
    lora_rank: int = 8
    lora_items_per_step: int = 32
    lora_lr: float = 1e-4
    item_vectors: str | None = None
    item_vector_ids: str | None = None

    def __post_init__(self) -> None:
        for name in ("model", "cache_dir", "item_vectors", "item_vector_ids"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{_name(self, name)} must be None or a string, got {value!r}")
        if not isinstance(self.backend, str):
            raise ValueError(f"{_name(self, 'backend')} must be a string, got {self.backend!r}")
        _choice(self, "finetune", ("none", "lora"))
        _int_at_least(self, "lora_rank", 1)
        _int_at_least(self, "lora_items_per_step", 1)
        _number(self, "lora_lr", strict=True)
        if self.item_vectors is not None and self.finetune == "lora":
            what = f"{_name(self, 'item_vectors')} brings fixed item vectors"
            raise ValueError(f"{what}; finetune='lora' re-encodes the texts")


@dataclass(frozen=True)
class FusionConfig(ComponentConfig):
    """Other modalities fused with the item text (`lmrec.models.lm.fusion`).

    Attributes:
        mode: ``"concat"`` (+ projection), ``"mean"`` or ``"gated"`` (attention over modalities);
            ``"none"`` is text (+ ID) only. A missing modality is masked, not averaged in as zeros.
        categorical / numeric: catalogue columns fused as embedding bags / z-scored numbers.
        image: fuse image vectors: the catalogue's ``vector_col``, else its ``image_col`` through the
            model's ``image_encoder`` (an object, not saved) or a local CLIP directory ``image_model``.
        graph: add each item's knowledge-graph part (`lmrec.models.lm.graph`; needs a data set with
            ``kg`` and item text; works with any ``mode``, ``"none"`` included); off by default.
        graph_relations: the relations used (None: all the graph has).
        graph_hops: 0 uses the ``(relation, entity)`` pairs items point to; 1 also the pairs one
            step further over entity-entity triples.
        graph_hop_weight: weight of a one-hop pair relative to a direct one (1).
        graph_min_items: a pair met on fewer items than this is dropped.
        graph_neighbor_text: add the mean text part of the items an item relates to (item-valued tails).
    """

    key: ClassVar[str] = "fusion"

    mode: Literal["none", "concat", "mean", "gated"] = "none"
    categorical: Sequence[str] | None = None
    numeric: Sequence[str] | None = None
    image: bool = False
    image_model: str | None = None
    graph: bool = False
    graph_relations: Sequence[str] | None = None
    graph_hops: int = 1
    graph_hop_weight: float = 0.5
    graph_min_items: int = 2
    graph_neighbor_text: bool = True

    def __post_init__(self) -> None:
        _choice(self, "mode", ("none", "concat", "mean", "gated"))
        _names(self, "categorical")
        _names(self, "numeric")
        _flag(self, "image")
        _flag(self, "graph")
        _names(self, "graph_relations")
        _choice(self, "graph_hops", (0, 1))
        _number(self, "graph_hop_weight")
        _int_at_least(self, "graph_min_items", 1)
        _flag(self, "graph_neighbor_text")
        if self.image_model is not None and not isinstance(self.image_model, str):
            raise ValueError(f"FusionConfig.image_model must be None or a string, got {self.image_model!r}")
        asked = [f for f in ("categorical", "numeric", "image") if getattr(self, f)]
        if self.mode == "none" and asked:
            raise ValueError(f"FusionConfig {asked} need mode='concat', 'mean' or 'gated'; mode is 'none'")


@dataclass(frozen=True)
class ContinualConfig(ComponentConfig):
    """Continual updates (`LMRecommender.partial_fit`, `lmrec.models.lm.continual`).

    Attributes:
        replay: replay a sample of earlier interactions: ``"reservoir"`` (uniform), ``"recency"``
            (weight ``2^(t / replay_half_life)``) or ``"none"``.
        replay_size: rows in the replay buffer.
        replay_half_life: seconds for ``"recency"`` (None: a quarter of the history's time span).
        replay_share: rows replayed per update as a share of the update's new training rows: an
            update replays a random ``ceil(replay_share * rows)`` of the buffer's rows (all of them
            when it holds fewer), so that old rows weigh the same against new ones whatever the
            window's size (None: the whole buffer in every update).
        regularizer: pull toward the weights before each update: ``"l2sp"``, ``"ewc"``
            (Fisher-weighted) or ``"none"``, decoupled from the loss: after each optimiser step the
            distance to the previous weights shrinks by the share ``update lr * reg_strength``
            (times the Fisher weight for EWC; capped at 1).
        update_epochs: epochs of an update without validation rows; update_lr: the update's
            learning rate (None: ``update_lr_scale * optim.lr``).
        update_lr_scale: the update's learning rate as a share of the fit's when ``update_lr`` is
            None. Below 1 because an update starts near an optimum and sees one window: at the fit's
            rate, how far an update over-fits its window swings with its seed; the L2-SP pull,
            ``update lr * reg_strength`` per step, scales with it.
        update_max_epochs: most epochs of an update with validation rows (``partial_fit(valid=...)``,
            as `lmrec.eval.stream` gives it): it keeps its best epoch and stops earlier after
            ``update_patience`` epochs without a gain or when its time budget runs out.
        update_patience: epochs without a validation gain before an update stops (None:
            ``optim.patience``); shorter than a fit's, as an update starts near its optimum.
        update_budget: the time an update may take, as a share of the model's last fresh fit
            (``fit_s_``): after each epoch the update stops when one more epoch (at its mean epoch
            time so far, validation included) would overrun it; at least one epoch always runs.
            Tied to the fit so that an update stays a fraction of what a retrain costs on the same
            machine; it makes the number of epochs depend on the machine's speed (None: no time
            bound, fully reproducible updates). No bound either when the fit time is unknown.
        distill: weight of the distillation term (learning without forgetting; 0: off): the KL
            divergence from the model before the update to the model being trained, over each
            training position's next-item distribution.
        distill_rows: the positions distilled: ``"all"`` the update trains on, or only the
            ``"replayed"`` rows' (needs ``replay``).
    """

    key: ClassVar[str] = "continual"

    replay: Literal["none", "reservoir", "recency"] = "reservoir"
    replay_size: int = 1000
    replay_half_life: float | None = None
    replay_share: float | None = None
    regularizer: Literal["none", "l2sp", "ewc"] = "l2sp"
    reg_strength: float = 1.0
    update_epochs: int = 5
    update_lr: float | None = None
    update_lr_scale: float = 0.3
    update_max_epochs: int = 50
    update_patience: int | None = 5
    update_budget: float | None = 0.2
    distill: float = 0.0
    distill_rows: Literal["all", "replayed"] = "all"

    def __post_init__(self) -> None:
        _choice(self, "replay", ("none", "reservoir", "recency"))
        _int_at_least(self, "replay_size", 1)
        _number(self, "replay_half_life", strict=True, optional=True)
        _number(self, "replay_share", strict=True, optional=True)
        _choice(self, "regularizer", ("none", "l2sp", "ewc"))
        _number(self, "reg_strength")
        _int_at_least(self, "update_epochs", 1)
        _number(self, "update_lr", strict=True, optional=True)
        _number(self, "update_lr_scale", strict=True)
        _int_at_least(self, "update_max_epochs", 1)
        if self.update_patience is not None:
            _int_at_least(self, "update_patience", 1)
        _number(self, "update_budget", strict=True, optional=True)
        _number(self, "distill")
        _choice(self, "distill_rows", ("all", "replayed"))
        if self.distill and self.distill_rows == "replayed" and self.replay == "none":
            raise ValueError(
                "ContinualConfig distill_rows='replayed' distils the replayed rows, but replay='none' "
                "replays none; set replay or distill_rows='all'"
            )


@dataclass(frozen=True)
class ScenarioConfig(ComponentConfig):
    """The per-scenario adapters of the multi-scenario model (`LMScenarioRecommender`).

    Attributes:
        adapter_rank: rank ``r`` of each scenario's user and item maps.
        scenario_weights: loss weight per scenario: a dict name -> weight (scenarios not named get
            1.0), ``"balanced"`` (weight ``sqrt(n_mean / n_s)`` for a scenario with ``n_s`` training
            interactions), or None (every interaction counts the same).
        shared_dropout: share of training positions scored on the shared path.
        adapter_text_rank: rank ``r_t`` of each adapter's low-rank correction of the text path (0: none).
        adapter_text_history: also apply each adapter's text correction to the items its users'
            histories are read through (needs ``adapter_text_rank > 0``).
    """

    key: ClassVar[str] = "scenarios"

    adapter_rank: int = 8
    scenario_weights: Mapping[str, float] | Literal["balanced"] | None = None
    shared_dropout: float = 0.1
    adapter_text_rank: int = 0
    adapter_text_history: bool = False

    def __post_init__(self) -> None:
        _int_at_least(self, "adapter_rank", 1)
        sw = self.scenario_weights
        if sw is not None and sw != "balanced" and not isinstance(sw, Mapping):
            raise ValueError(
                f"ScenarioConfig.scenario_weights must be a dict name -> weight, 'balanced' or None, got {sw!r}"
            )
        if isinstance(sw, Mapping):
            if any(not _is_number(w) or not float(w) >= 0 for w in sw.values()):
                raise ValueError(f"ScenarioConfig.scenario_weights must be >= 0, got {dict(sw)!r}")
            object.__setattr__(self, "scenario_weights", dict(sw))
        _share(self, "shared_dropout")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if isinstance(out["scenario_weights"], Mapping):
            out["scenario_weights"] = dict(out["scenario_weights"])
        return out


@dataclass(frozen=True)
class PrivacyConfig(ComponentConfig):
    """Differentially private training with DP-SGD at the level of a user (`lmrec.models.lm.privacy`).

    Off by default (``epsilon`` None): training is then exactly the non-private one. With ``epsilon``
    set, ``fit`` samples users by Poisson sampling at rate ``optim.batch_size / n_users``, clips each
    user's whole gradient to ``max_grad_norm``, adds Gaussian noise calibrated by Opacus so that
    ``optim.epochs`` epochs spend at most ``(epsilon, delta)``, and runs those epochs without early
    stopping. Needs Opacus (the ``privacy`` extra).

    Attributes:
        epsilon: the privacy budget of the whole training run (None: not private).
        delta: the delta of the guarantee; keep it below ``1 / n_users``.
        max_grad_norm: the L2 bound ``C`` of each user's gradient (all parameters together).
        accountant: Opacus' ``"rdp"`` (Renyi DP) or ``"prv"`` (privacy random variables, tighter).
        chunk_size: users whose per-user gradients are held at once (memory only; the result does
            not depend on it beyond float rounding).
    """

    key: ClassVar[str] = "privacy"

    epsilon: float | None = None
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: Literal["rdp", "prv"] = "rdp"
    chunk_size: int = 32

    def __post_init__(self) -> None:
        _number(self, "epsilon", strict=True, optional=True)
        d = self.delta
        if not _is_number(d) or not 0.0 < d < 1.0:
            raise ValueError(f"PrivacyConfig.delta must be a number in (0, 1), got {d!r}")
        _number(self, "max_grad_norm", strict=True)
        _choice(self, "accountant", ("rdp", "prv"))
        _int_at_least(self, "chunk_size", 1)

    @property
    def enabled(self) -> bool:
        """True when training is private (``epsilon`` is set)."""
        return self.epsilon is not None


@dataclass(frozen=True)
class ColdStartConfig(ComponentConfig):
    """Cold start: items scored by how much the model knows of them (`lmrec.models.lm.cold`).

    After training, an item with few training interactions gets the frozen content similarity
    ``w(n) * cos(c_u, c_i)`` added to its learned score, and an item with none a learned vector
    borrowed from its nearest warm items by content; queries get the same content term. Vectors stay
    one inner product (``[v, w(n) c, query_weight c]`` for items). Off for a private model, for
    ``repr='id'`` and when ``item_tower.content_weight`` > 0 (that channel already adds content).

    Attributes:
        enabled: apply the cold-start paths.
        calibrate: choose ``item_weight``, ``half_count`` and ``borrow`` on the validation rows
            ``fit`` gets (NDCG@10 over a small grid; all 0 when no candidate beats the learned
            vectors alone there); the paths stay off without validation rows. False: use the values
            below.
        neighbours: warm items a cold item (or query) borrows its learned vector from.
        tau: softmax temperature over the neighbours' content cosines.
        item_weight: content weight ``w(0)`` of an item without training interactions.
        half_count: ``h`` of the gate ``w(n) = item_weight * h / (h + n)`` (0: cold items only).
        borrow: share of the neighbours' learned vector in a cold item's learned vector, in [0, 1].
        query_weight: weight of the raw text cosine of a query to every item, against its learned
            score (a query is text without behaviour: its text carries most of what it asks).
    """

    key: ClassVar[str] = "cold_start"

    enabled: bool = True
    calibrate: bool = True
    neighbours: int = 20
    tau: float = 0.05
    item_weight: float = 1.0
    half_count: float = 0.0
    borrow: float = 1.0
    query_weight: float = 8.0

    def __post_init__(self) -> None:
        _flag(self, "enabled")
        _flag(self, "calibrate")
        _int_at_least(self, "neighbours", 1)
        _number(self, "tau", strict=True)
        _number(self, "item_weight")
        _number(self, "half_count")
        _number(self, "query_weight")
        b = self.borrow
        if not _is_number(b) or not 0.0 <= b <= 1.0:
            raise ValueError(f"ColdStartConfig.borrow must be a number in [0, 1], got {b!r}")


#: component key -> config class, in constructor order
COMPONENTS: dict[str, type[ComponentConfig]] = {
    c.key: c
    for c in (
        ItemTowerConfig,
        UserTowerConfig,
        ObjectiveConfig,
        OptimConfig,
        EncoderConfig,
        FusionConfig,
        ContinualConfig,
    )
}


def coerce(cls: type[C], value: C | Mapping[str, Any] | None) -> C:
    """``value`` as a ``cls``: the dataclass itself, a plain dict (`from_dict`) or None (defaults)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls.from_dict(value)
    raise ValueError(f"lm {cls.key} must be a {cls.__name__}, a dict or None, got {type(value).__name__}")


# ---------------------------------------------------------------------- the flat names of before
#: fields added after the flat constructor was retired: reachable by their dotted key only
_NO_FLAT_NAME = frozenset(
    {
        "device",
        "precision",
        "item_vectors",
        "item_vector_ids",
        "update_max_epochs",
        "update_patience",
        "update_budget",
        "replay_share",
        "update_lr_scale",
        "graph",
        "graph_relations",
        "graph_hops",
        "graph_hop_weight",
        "graph_min_items",
        "graph_neighbor_text",
    }
)


def _table() -> dict[str, str]:
    renamed = {
        "item_repr": "item_tower.repr",
        "encoder_model": "encoder.model",
        "encoder_backend": "encoder.backend",
        "finetune_lm": "encoder.finetune",
        "fusion": "fusion.mode",
        "fusion_categorical": "fusion.categorical",
        "fusion_numeric": "fusion.numeric",
        "fusion_image": "fusion.image",
    }
    table: dict[str, str] = {}
    for key, cls in COMPONENTS.items():
        for name in cls.field_names():
            table.setdefault(name, f"{key}.{name}")
    table = {
        k: v
        for k, v in table.items()
        if k not in {"repr", "model", "backend", "finetune", "mode", "categorical", "numeric", "image"}
        and k not in _NO_FLAT_NAME
    }
    table.update(renamed)
    return table


#: old flat argument name -> dotted key of its component field (top-level names are not listed)
FLAT_NAMES: dict[str, str] = _table()
