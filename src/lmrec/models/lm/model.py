"""The language-model user-interest model: ``I(u, i) = cos(v_u, v_i)`` in one space opened by a
pretrained language model.

Items enter through the frozen LM embedding of their text (whitened, then a learned adaptor),
optionally plus a learned ID embedding; users through a causal transformer over their recent
item vectors, gated with the embedding of their own text; queries and brand-new items through the
item tower's text path. Everything that scores lives in one space, so the evaluator and the server
treat this model like any other, and text-only entities (cold items, new users, queries) still get
vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset
from lmrec.data.interactions import Interactions
from lmrec.data.splits import Split
from lmrec.encoders.base import TextEncoder
from lmrec.models.base import Recommender, register
from lmrec.models.lm import persist
from lmrec.models.lm.item_tower import ItemTower, fit_whitening
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.text import (
    encode_texts,
    format_item_text,
    item_fields,
    item_texts,
    user_texts,
)
from lmrec.models.lm.training import history_tokens, score_users, train_network, user_content, with_content
from lmrec.models.lm.user_tower import UserTower

__all__ = ["LMRecommender"]

log = logging.getLogger(__name__)


@register("lm")
class LMRecommender(Recommender):
    """Language-model user-interest model (two towers in a pretrained LM's space).

    Args:
        dim: width ``d`` of the shared space.
        max_len: longest history the user tower reads.
        n_layers / n_heads / dropout: user-tower transformer.
        item_repr: ``"hybrid"`` (text + ID), ``"text"`` (text only) or ``"id"`` (ID only, ablation).
        adaptor: ``"moe"``, ``"mlp"`` or ``"linear"`` map from the whitened text vector to ``d``.
        n_experts: experts of the MoE adaptor.
        adaptor_dropout: dropout on the whitened text vector.
        id_dropout: share of items whose ID part is dropped in each training step (hybrid), so that
            text alone must carry the signal for rare and unseen items.
        whiten: PCA-whiten text vectors (fitted on the whole catalogue) before the adaptor.
        whiten_eps: eigenvalue ridge of the whitening, relative to the mean eigenvalue.
        n_time_buckets: log time-gap buckets (0: no time encoding).
        use_user_text: gate in the user's own text (reviews, queries, profile sentence).
        user_text_kinds: which kinds of user text to read (None: all).
        text_fields: catalogue columns that make up item text (None: text fields then categories).
        loss: "full" softmax, "sampled" softmax with log-Q, "bpr", or "auto" (full up to
            ``full_softmax_max_items`` items, sampled above).
        full_softmax_max_items: the "auto" threshold.
        n_negatives: sampled negatives per step for "sampled".
        similarity: ``"cosine"`` (unit vectors; logits over ``temperature``) or ``"dot"`` (raw inner
            products, where vector norms can carry popularity).
        temperature: temperature of the cosine logits; ``learn_temperature`` makes it a parameter.
        content_weight: weight beta of the frozen content channel (0: off). Every score becomes
            ``sim(v_u, v_i) + beta * cos(c_u, c_i)``, with ``c_i`` the item's whitened frozen text
            vector and ``c_u`` the mean of the ``c_i`` of the user's last ``max_len`` items, in
            training too, so the learned towers fit what content similarity leaves unexplained. The
            adaptor, trained on warm items only, can lose the pretrained model's content similarity
            for items it never saw; this channel keeps it, which is what cold items are scored by.
            Item, user and query vectors are then ``[v, sqrt(beta) * c]`` (width ``dim`` + the
            whitened text width), so one inner product still scores, in the evaluator and in FAISS.
        rating_weight: weight of the rating head (log(1 + r) regression) when ratings exist.
        event_weight: weight of the event-type head when events exist.
        lr / weight_decay / batch_size / epochs / patience: optimisation; early stopping on
            validation NDCG@10 when ``fit`` gets ``valid``.
        grad_clip: clip the gradient norm (None: off).
        finetune_lm: ``"lora"`` fine-tunes the language model with LoRA adapters during training
            (see `lmrec.models.lm.finetune`; slow on a CPU, hence off by default).
        lora_rank / lora_items_per_step / lora_lr: adapter rank, targets re-encoded with gradients
            per step, and the adapters' learning rate.
        encoder: a `TextEncoder` object to use (not saved; tests inject a `HashingEncoder`).
        encoder_model / encoder_backend: how to build the encoder when ``encoder`` is None (the
            packaged MiniLM by default); saved, so a loaded model rebuilds the same encoder.
        cache_dir: on-disk embedding cache for the text vectors (None: no cache).
        num_threads: torch threads while fitting (None: leave torch's setting).
        show_progress: progress bars for encoding and training.
        random_state: seed of weights, dropout, sampling and shuffling (the global RNG is untouched).
        replay: continual updates (`partial_fit`) replay a sample of earlier interactions:
            ``"reservoir"`` (uniform), ``"recency"`` (weight ``2^(t / replay_half_life)``) or ``"none"``.
        replay_size: rows in the replay buffer.
        replay_half_life: seconds for ``"recency"`` (None: a quarter of the history's time span).
        regularizer: pull toward the weights before each update: ``"l2sp"``, ``"ewc"`` (Fisher-weighted)
            or ``"none"``, decoupled from the loss: after each optimiser step the distance to the
            previous weights shrinks by the share ``update lr * reg_strength`` (times the Fisher
            weight for EWC; capped at 1).
        update_epochs: epochs of each `partial_fit`; ``update_lr``: its learning rate (None: ``lr``).
        distill: weight of the distillation term of each `partial_fit` (learning without forgetting,
            LwF; 0: off): the KL divergence from the model before the update to the model being
            trained, over each training position's next-item distribution (all trainable items with
            the full softmax; the step's targets and sampled negatives otherwise).
        distill_rows: the positions distilled: ``"all"`` the update trains on, or only the
            ``"replayed"`` rows' (the new rows then learn freely; needs ``replay``).
        fusion: fuse the item text with other modalities: ``"concat"`` (+ projection), ``"mean"``
            or ``"gated"`` (attention over modalities); ``"none"`` (default) is text (+ ID) only.
            A missing modality is masked, not averaged in as zeros (`lmrec.models.lm.fusion`).
        fusion_categorical / fusion_numeric: catalogue columns fused as embedding bags / z-scored numbers.
        fusion_image: fuse image vectors: the catalogue's ``vector_col``, else its ``image_col``
            through ``image_encoder`` (an object, not saved) or a local CLIP directory ``image_model``.
            No real images ship with lmrec.
    """

    is_sequential = True

    def __init__(
        self,
        dim: int = 64,
        max_len: int = 50,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.2,
        item_repr: Literal["hybrid", "text", "id"] = "hybrid",
        adaptor: Literal["moe", "mlp", "linear"] = "moe",
        n_experts: int = 4,
        adaptor_dropout: float = 0.1,
        id_dropout: float = 0.3,
        whiten: bool = True,
        whiten_eps: float = 0.1,
        n_time_buckets: int = 20,
        use_user_text: bool = True,
        user_text_kinds: list[str] | None = None,
        text_fields: list[str] | None = None,
        loss: Literal["auto", "full", "sampled", "bpr"] = "auto",
        full_softmax_max_items: int = 50_000,
        n_negatives: int = 512,
        similarity: Literal["cosine", "dot"] = "cosine",
        temperature: float = 0.07,
        learn_temperature: bool = False,
        content_weight: float = 0.0,
        rating_weight: float = 0.0,
        event_weight: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 128,
        epochs: int = 200,
        patience: int = 10,
        grad_clip: float | None = 5.0,
        finetune_lm: Literal["none", "lora"] = "none",
        lora_rank: int = 8,
        lora_items_per_step: int = 32,
        lora_lr: float = 1e-4,
        encoder: TextEncoder | None = None,
        encoder_model: str | None = None,
        encoder_backend: str = "torch",
        cache_dir: str | None = None,
        num_threads: int | None = None,
        show_progress: bool = False,
        random_state: int | None = 0,
        replay: Literal["none", "reservoir", "recency"] = "reservoir",
        replay_size: int = 1000,
        replay_half_life: float | None = None,
        regularizer: Literal["none", "l2sp", "ewc"] = "l2sp",
        reg_strength: float = 1.0,
        update_epochs: int = 5,
        update_lr: float | None = None,
        distill: float = 0.0,
        distill_rows: Literal["all", "replayed"] = "all",
        fusion: Literal["none", "concat", "mean", "gated"] = "none",
        fusion_categorical: list[str] | None = None,
        fusion_numeric: list[str] | None = None,
        fusion_image: bool = False,
        image_model: str | None = None,
        image_encoder: Any = None,
    ) -> None:
        self.dim, self.max_len, self.n_layers, self.n_heads, self.dropout = dim, max_len, n_layers, n_heads, dropout
        self.item_repr, self.adaptor, self.n_experts = item_repr, adaptor, n_experts
        self.adaptor_dropout, self.id_dropout = adaptor_dropout, id_dropout
        self.whiten, self.whiten_eps, self.n_time_buckets = whiten, whiten_eps, n_time_buckets
        self.use_user_text, self.user_text_kinds, self.text_fields = use_user_text, user_text_kinds, text_fields
        self.loss, self.full_softmax_max_items, self.n_negatives = loss, full_softmax_max_items, n_negatives
        self.similarity, self.temperature, self.learn_temperature = similarity, temperature, learn_temperature
        self.content_weight = content_weight
        self.rating_weight, self.event_weight = rating_weight, event_weight
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.epochs, self.patience, self.grad_clip = epochs, patience, grad_clip
        self.finetune_lm, self.lora_rank = finetune_lm, lora_rank
        self.lora_items_per_step, self.lora_lr = lora_items_per_step, lora_lr
        self.encoder, self.encoder_model, self.encoder_backend = encoder, encoder_model, encoder_backend
        self.cache_dir, self.num_threads = cache_dir, num_threads
        self.show_progress, self.random_state = show_progress, random_state
        self.replay, self.replay_size, self.replay_half_life = replay, replay_size, replay_half_life
        self.regularizer, self.reg_strength = regularizer, reg_strength
        self.update_epochs, self.update_lr, self.distill = update_epochs, update_lr, distill
        self.distill_rows = distill_rows
        self.fusion, self.fusion_categorical, self.fusion_numeric = fusion, fusion_categorical, fusion_numeric
        self.fusion_image, self.image_model, self.image_encoder = fusion_image, image_model, image_encoder

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments except the encoder object (its spec is saved instead)."""
        params = super().get_params()
        params.pop("encoder", None)
        params.pop("image_encoder", None)
        return params

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Dataset | Interactions, valid: Split | Interactions | None = None) -> LMRecommender:
        """Reset and train.

        Args:
            dataset: training interactions with their item catalogue (and user texts).
            valid: a `Split` (its ``valid`` part is used) or validation interactions on the same id
                maps; training stops early on their NDCG@10 (full ranking, training items masked)
                and keeps the best weights. Without it, ``epochs`` epochs are run.
        """
        self._valid = valid.valid if isinstance(valid, Split) else valid
        if getattr(self, "_built_encoder", False):
            self.encoder, self._built_encoder = None, False  # a refit starts from the untuned encoder
        try:
            super().fit(dataset)
        finally:
            self._valid = None
        return self

    def _check_params(self) -> None:
        for name, low in (("dim", 1), ("max_len", 1), ("n_layers", 1), ("n_heads", 1), ("n_experts", 1),
                          ("batch_size", 1), ("epochs", 1), ("patience", 1), ("n_negatives", 1), ("n_time_buckets", 0),
                          ("lora_rank", 1), ("lora_items_per_step", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"LMRecommender {name} must be an integer >= {low}, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"LMRecommender dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        choices = {"item_repr": ("hybrid", "text", "id"), "adaptor": ("moe", "mlp", "linear"),
                   "loss": ("auto", "full", "sampled", "bpr"), "finetune_lm": ("none", "lora"),
                   "similarity": ("cosine", "dot")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"LMRecommender {name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("dropout", "adaptor_dropout", "id_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"LMRecommender {name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.content_weight > 0 and self.item_repr == "id":
            raise ValueError("LMRecommender content_weight > 0 needs item text; item_repr is 'id'")
        if self.finetune_lm == "lora" and self.item_repr == "id":
            raise ValueError("LMRecommender finetune_lm='lora' needs item text; item_repr is 'id'")
        for name in ("temperature", "lr", "lora_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LMRecommender {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("rating_weight", "event_weight", "weight_decay", "whiten_eps", "content_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"LMRecommender {name} must be >= 0, got {getattr(self, name)!r}")
        self._check_continual_params()
        from lmrec.models.lm.fusion import check_fusion_params

        check_fusion_params(self)

    def _check_continual_params(self) -> None:
        for name, allowed in (("replay", ("none", "reservoir", "recency")), ("regularizer", ("none", "l2sp", "ewc")),
                              ("distill_rows", ("all", "replayed"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"LMRecommender {name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("replay_size", "update_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"LMRecommender {name} must be an integer >= 1, got {value!r}")
        for name in ("reg_strength", "distill"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"LMRecommender {name} must be a number >= 0, got {value!r}")
        if self.distill and self.distill_rows == "replayed" and self.replay == "none":
            raise ValueError("LMRecommender distill_rows='replayed' distils the replayed rows, but replay='none' "
                             "replays none; set replay or distill_rows='all'")
        for name in ("replay_half_life", "update_lr"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise ValueError(f"LMRecommender {name} must be None or a number > 0, got {value!r}")

    def _resolved_loss(self, n_items: int) -> str:
        if self.loss != "auto":
            return self.loss
        return "full" if n_items <= self.full_softmax_max_items else "sampled"

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        inter = dataset.interactions
        valid = getattr(self, "_valid", None)
        if valid is not None and (valid.user_map != inter.user_map or valid.item_map != inter.item_map):
            raise ValueError("LMRecommender.fit: valid interactions use different id maps from the training data")
        seed = 0 if self.random_state is None else int(self.random_state)
        old_threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self._prepare(dataset)
                self._train(inter, valid, seed)
        finally:
            torch.set_num_threads(old_threads)

    def _prepare(self, dataset: Dataset) -> None:
        """Text vectors (once), histories, and the network."""
        inter = dataset.interactions
        n_users = inter.n_users
        uses_text = self.item_repr in ("hybrid", "text")
        self.item_fields_: dict[str, list[str]] = {}
        item_text_vecs = None
        self.encoder_spec_: dict[str, Any] = {"model": self.encoder_model, "backend": self.encoder_backend}
        if uses_text:
            if dataset.items is None:
                raise ValueError(f"item_repr={self.item_repr!r} needs an item catalogue with text; the dataset has none")
            fields = item_fields(dataset.items, self.text_fields)
            texts, self.item_fields_ = item_texts(dataset.items, inter.item_map, fields)
            log.info("encoding %d item texts (fields %s)", len(texts), fields)
            if self.finetune_lm == "lora":
                self._item_texts = texts
                if self.encoder is None or not hasattr(self.encoder, "train_mode"):
                    from lmrec.models.lm.finetune import make_lora_encoder

                    self.encoder, self._built_encoder = make_lora_encoder(self.encoder_model, self.lora_rank), True
                elif getattr(self.encoder, "mode_", None) is None:
                    self.encoder.train_mode(lora=True, r=self.lora_rank, alpha=2 * self.lora_rank)
            encoder = self._get_encoder()
            item_text_vecs = encode_texts(encoder, texts, cache_dir=self.cache_dir, show_progress=self.show_progress)
        utexts = user_texts(dataset.users, inter.user_map, self.user_text_kinds) if self.use_user_text else []
        has_text = np.array([bool(t) for t in utexts], dtype=bool)
        user_vecs, user_white = None, None
        if has_text.any():
            user_vecs = np.zeros((n_users, self._get_encoder().dim), np.float32)
            user_vecs[has_text] = encode_texts(
                self._get_encoder(), [t for t in utexts if t], cache_dir=self.cache_dir, show_progress=self.show_progress
            )
            if self.whiten:
                user_white = fit_whitening(user_vecs[has_text], eps=self.whiten_eps)
        self.counts_ = inter.item_counts()
        self._set_histories(inter)
        whitening = fit_whitening(item_text_vecs, eps=self.whiten_eps) if uses_text and self.whiten else None
        self.net_ = self._build_net(
            item_text_vecs, self.counts_ > 0, whitening, user_vecs, has_text if user_vecs is not None else None,
            user_white, self._event_classes(inter),
        )
        if uses_text and getattr(self, "fusion", "none") != "none":
            from lmrec.models.lm.fusion import make_fusion

            self.net_.item_tower.fusion = make_fusion(self, dataset, texts)

    def _event_classes(self, inter: Interactions) -> list[str]:
        if inter.events is None or self.event_weight <= 0:
            return []
        return sorted(set(inter.events.astype(str).tolist()))

    def _build_net(self, item_text_vecs, id_mask, whitening, user_vecs, has_text, user_white, events) -> LMNet:
        self.event_classes_ = list(events)
        item_tower = ItemTower(
            item_text_vecs, id_mask, self.dim, item_repr=self.item_repr, adaptor=self.adaptor,
            n_experts=self.n_experts, dropout=self.adaptor_dropout, id_dropout=self.id_dropout, whitening=whitening,
        )
        text_dim = 0 if user_vecs is None else (user_white[1].shape[1] if user_white is not None else user_vecs.shape[1])
        return LMNet(
            item_tower, self._make_user_tower(text_dim), user_text=user_vecs, has_text=has_text, user_whitening=user_white,
            similarity=self.similarity, temperature=self.temperature, learn_temperature=self.learn_temperature,
            rating_head=self.rating_weight > 0, n_event_classes=len(events),
        )

    def _make_user_tower(self, text_dim: int) -> UserTower:
        """A freshly initialised user tower of this model's shape (``text_dim`` 0: no user text)."""
        return UserTower(
            self.dim, self.max_len, n_layers=self.n_layers, n_heads=self.n_heads, dropout=self.dropout,
            n_time_buckets=self.n_time_buckets, text_dim=text_dim,
        )

    def _set_histories(self, inter: Interactions) -> None:
        order = inter.time_order()
        users, items, times = inter.users[order], inter.items[order], inter.timestamps[order]
        bounds = np.searchsorted(users, np.arange(inter.n_users + 1))
        self.hist_items_ = [items[bounds[u] : bounds[u + 1]].astype(np.int64) for u in range(inter.n_users)]
        self.hist_times_ = [times[bounds[u] : bounds[u + 1]].astype(np.float64) for u in range(inter.n_users)]

    def _train(self, inter: Interactions, valid: Interactions | None, seed: int) -> None:
        self.train_history_ = train_network(self, inter, valid, seed)
        self.net_.eval()
        if self.finetune_lm == "lora":
            self.encoder_spec_["name"] = self.encoder.name  # the tuned weights' name
            del self._item_texts
        self._refresh()

    # ------------------------------------------------------------------ encoder
    def _get_encoder(self) -> TextEncoder:
        """The injected encoder, or one rebuilt from the saved spec (built lazily, once)."""
        if self.encoder is None:
            self._built_encoder = True
            self.encoder = persist.build_encoder(
                getattr(self, "encoder_spec_", None), self.encoder_model, self.encoder_backend,
                getattr(self, "_lora_arrays", None),
            )
        spec = getattr(self, "encoder_spec_", None)
        if spec is not None:
            saved = spec.get("name")
            if saved is not None and saved != self.encoder.name:
                log.warning("encoder %r differs from the one the model was trained with (%r)", self.encoder.name, saved)
            spec.setdefault("name", self.encoder.name)
            spec.setdefault("dim", self.encoder.dim)
            spec.setdefault("class", type(self.encoder).__name__)
        return self.encoder

    # ------------------------------------------------------------------ vectors
    @torch.no_grad()
    def _refresh(self) -> None:
        """Recompute the cached (normalised) item vectors in eval mode."""
        was_training = self.net_.training
        self.net_.eval()
        self._item_raw = self.net_.item_tower()
        self._content = self.net_.item_tower.content() if self.content_weight > 0 else None
        learned = self.net_.project(self._item_raw)
        self.item_vectors_ = with_content(learned, self._content, self.content_weight).numpy().astype(np.float32)
        self.net_.train(was_training)

    def item_vectors(self) -> np.ndarray:
        """(n_items, d) item vectors (unit length for cosine; ``[v, sqrt(beta) c]`` with a content
        channel); ``score_all(u) = user_vectors(u) @ item_vectors().T``."""
        self._check_fitted()
        return self.item_vectors_

    @torch.no_grad()
    def encode_users(
        self,
        histories: Sequence[Sequence[int]],
        texts: Sequence[str] | None = None,
        timestamps: Sequence[Sequence[float]] | None = None,
        *,
        known_users: np.ndarray | None = None,
        batch_size: int = 1024,
        item_raw: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Vectors of users given by their item histories (oldest first) and optional text.

        Unknown item indices in a history are skipped; an empty history with no text gives the
        learned "empty user" vector.

        Args:
            histories: n lists of item indices.
            texts: n user texts ("" for none), or None.
            timestamps: n lists of seconds matching ``histories`` (None: no gaps).
            known_users: (n,) indices of known users whose stored text to use when ``texts`` is None.
            batch_size: users per forward pass.
            item_raw: (n_items, d) item vectors the histories are read through (None: the model's
                own; the multi-scenario model passes a scenario's corrected ones).

        Returns:
            (n, d) float32 unit vectors (``[v_u, sqrt(beta) c_u]`` with a content channel; ``c_u`` is
            zero for an empty history).
        """
        self._check_fitted()
        n = len(histories)
        if texts is not None and len(texts) != n:
            raise ValueError(f"encode_users: {len(texts)} texts for {n} histories")
        items, times = [], []
        for j, hist in enumerate(histories):
            h = np.asarray(hist, dtype=np.int64).reshape(-1)
            t = np.asarray(timestamps[j], dtype=np.float64) if timestamps is not None else np.zeros(len(h))
            ok = (h >= 0) & (h < self.n_items)
            items.append(h[ok])
            times.append(t[ok] if len(t) == len(h) else np.zeros(int(ok.sum())))
        raw_text, flags = None, None
        if hasattr(self.net_, "user_text"):
            if texts is not None:
                flags = np.array([bool(t) for t in texts])
                raw = np.zeros((n, self.net_.user_text.shape[1]), np.float32)
                if flags.any():
                    raw[flags] = encode_texts(self._get_encoder(), [t for t in texts if t])
                raw_text = torch.from_numpy(raw)
            elif known_users is not None:
                raw_text = self.net_.user_text[torch.from_numpy(np.asarray(known_users, dtype=np.int64))]
                flags = self.net_.has_text[torch.from_numpy(np.asarray(known_users, dtype=np.int64))].numpy()
        self.net_.eval()
        out = np.empty((n, self.item_vectors_.shape[1]), np.float32)
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            tokens, buckets, lengths = history_tokens(items[sl], times[sl], self.max_len, self.n_time_buckets)
            text = has = None
            if raw_text is not None:
                text = self.net_.whiten_user_text(raw_text[sl])
                has = torch.from_numpy(np.asarray(flags[sl], dtype=bool))
            tokens_t, lengths_t = torch.from_numpy(tokens), torch.from_numpy(lengths)
            learned = score_users(
                self.net_, self._item_raw if item_raw is None else item_raw, tokens_t, torch.from_numpy(buckets),
                lengths_t, text, has,
            )
            content = user_content(self._content, tokens_t, last=True) if self._content is not None else None
            out[sl] = with_content(learned, content, self.content_weight).numpy()
        return out

    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """(n, d) unit vectors of known users (history + stored text).

        Users unknown to the model have no index: map raw ids at the edge and send unknown users to
        `encode_users` (their text, query or live history; an empty one gives the learned
        "empty user" vector), which never raises.
        """
        self._check_fitted()
        user_idx = self._check_users(user_idx)
        histories = [self.hist_items_[u] for u in user_idx]
        times = [self.hist_times_[u] for u in user_idx]
        return self.encode_users(histories, None, times, known_users=user_idx)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        """(n, n_items) scores ``user_vectors @ item_vectors.T`` (the temperature does not change rankings)."""
        return self.user_vectors(user_idx) @ self.item_vectors().T

    def item_text(self, values: Mapping[str, object]) -> str:
        """The text of an item from its catalogue fields, written as the training texts were
        (pass it to `encode_items` or `add_items` for a new item)."""
        self._check_fitted()
        return format_item_text(values, list(self.item_fields_))

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) unit vectors of items known only by their text (the ID part is off, as for cold items);
        write the texts with `item_text` to match the training texts."""
        return self._encode_text_path(texts, "passage")

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) unit vectors of natural-language queries, through the item tower's text path: a query
        describes the item wanted, so it enters where item text enters."""
        return self._encode_text_path(texts, "query")

    @torch.no_grad()
    def _encode_text_path(self, texts: Sequence[str], kind: str) -> np.ndarray:
        self._check_fitted()
        if self.item_repr == "id":
            raise ValueError("this model was fit with item_repr='id': it has no text path for new items or queries")
        raw = torch.from_numpy(encode_texts(self._get_encoder(), list(texts), kind=kind))
        self.net_.eval()
        learned = self.net_.project(self.net_.item_tower.encode_text(raw))
        content = self.net_.item_tower.content(raw) if self._content is not None else None
        return with_content(learned, content, self.content_weight).numpy()

    # ------------------------------------------------------------------ continual learning
    def partial_fit(
        self,
        new_interactions: Interactions | Any,
        new_items: ItemCatalog | None = None,
        new_users: UserTexts | None = None,
        *,
        epochs: int | None = None,
        valid: Interactions | Any | None = None,
    ) -> LMRecommender:
        """Continue training on new interactions (warm start; see `lmrec.models.lm.continual`).

        The id maps grow (existing indices never change); unknown items enter through their text in
        ``new_items`` (every catalogue row not yet known is added, with or without interactions),
        unknown users with their new history (and text from ``new_users``). The network keeps its
        weights, a fresh optimiser trains ``update_epochs`` epochs with the new rows plus the replay
        buffer's rows as targets and the ``regularizer`` pulling toward the previous weights.

        Args:
            new_interactions: raw-id rows: an `Interactions` on any id maps (its maps give the raw
                ids) or a DataFrame with ``user_id``, ``item_id`` and optionally ``timestamp``.
            new_items: catalogue rows of new items (same text fields as the training catalogue).
            new_users: texts of new users.
            epochs: override ``update_epochs``; 0 only absorbs the rows (maps, histories, counts)
                without training.
            valid: raw-id validation rows from the same window (for example each user's last row, as
                `lmrec.eval.stream.last_row_split` cuts it), not in ``new_interactions``. The update
                then validates NDCG@10 on them after every epoch (every row the model holds masked),
                stops after ``patience`` epochs without a gain and keeps the best of epochs 0 (the
                weights before the update) to ``update_epochs``; afterwards the rows join the
                history, as in ``lmrec train``. ``last_update_`` reports ``best_epoch``,
                ``valid_ndcg@10`` and ``valid_ndcg@10_before``.
        """
        from lmrec.models.lm.continual import partial_fit_lm

        return partial_fit_lm(self, new_interactions, new_items, new_users, epochs=epochs, valid=valid)

    # ------------------------------------------------------------------ history and cold start
    def observe(self, interactions: Interactions) -> LMRecommender:
        """Append interactions to the users' histories (kept in time order) and to ``seen_``."""
        super().observe(interactions)
        order = interactions.time_order()
        for u, i, t in zip(interactions.users[order], interactions.items[order], interactions.timestamps[order]):
            self.hist_items_[u] = np.append(self.hist_items_[u], i)
            self.hist_times_[u] = np.append(self.hist_times_[u], t)
        for u in np.unique(interactions.users):
            o = np.argsort(self.hist_times_[u], kind="stable")
            self.hist_items_[u], self.hist_times_[u] = self.hist_items_[u][o], self.hist_times_[u][o]
        return self

    def add_items(self, item_ids: Sequence[object], texts: Sequence[str]) -> np.ndarray:
        """Add brand-new items, scored from their text alone; returns their indices (existing ids are
        left as they are and their current indices returned)."""
        self._check_fitted()
        if len(item_ids) != len(texts):
            raise ValueError(f"add_items: {len(item_ids)} ids but {len(texts)} texts")
        new = [(str(i), t) for i, t in zip(item_ids, texts) if str(i) not in self.item_map_]
        if new:
            raw = encode_texts(self._get_encoder(), [t for _, t in new]) if self.item_repr != "id" else None
            self.item_map_ = self.item_map_.copy().fit_partial([i for i, _ in new])
            self.net_.item_tower.grow(raw, len(new))
            import scipy.sparse as sp

            self.seen_ = sp.hstack([self.seen_, sp.csr_matrix((self.n_users, len(new)), dtype=np.float32)]).tocsr()
            self.counts_ = np.concatenate([self.counts_, np.zeros(len(new), self.counts_.dtype)])
            for f in self.item_fields_:
                self.item_fields_[f].extend([""] * len(new))
            self._refresh()
        return self.item_map_.to_index([str(i) for i in item_ids])

    def explain(self, user_idx: int, item_idx: int, query: str | None = None, k: int = 3) -> dict[str, Any]:
        """Why ``item_idx`` is recommended to ``user_idx``; see `lmrec.models.lm.explain.explain`."""
        from lmrec.models.lm.explain import explain

        return explain(self, user_idx, item_idx, query=query, k=k)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return persist.model_state(self)

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        persist.set_model_state(self, arrays, meta)
