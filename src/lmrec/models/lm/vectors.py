"""Reading vectors out of a trained network of the language-model interest model.

Item vectors (cached after every change of the network), user vectors from item histories and
optional text, and the item tower's text path for items known only by their text and for queries.
`LMVectors`, the base of `LMRecommender` that holds its read-out methods (they check their input
and call these functions), reads the model's fitted state; each function takes the network and the
settings it needs as arguments. With a content channel (``content_weight`` ``beta > 0``) a
vector is ``[v, sqrt(beta) c]`` (`lmrec.models.lm.training.with_content`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from lmrec.encoders.base import TextEncoder
from lmrec.models.base import Recommender
from lmrec.models.lm import persist
from lmrec.models.lm.cold import ColdStart, ColdState
from lmrec.models.lm.config import EncoderConfig, ItemTowerConfig, UserTowerConfig
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.text import encode_texts, format_item_text
from lmrec.models.lm.training import history_tokens, score_users, user_content, with_content

__all__ = [
    "LMVectors",
    "cached_item_vectors",
    "clean_histories",
    "encode_histories",
    "text_path_vectors",
    "user_text_rows",
]

log = logging.getLogger(__name__)


@torch.no_grad()
def cached_item_vectors(net: LMNet, content_weight: float) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
    """``(item_raw, content, item_vectors)`` computed in eval mode (the training mode is restored).

    Returns:
        item_raw: (n_items, d) the item tower's output before the projection.
        content: (n_items, k) the frozen content vectors (None without a content channel).
        item_vectors: (n_items, d [+ k]) float32 scoring vectors.
    """
    was_training = net.training
    net.eval()
    item_raw = net.item_tower()
    content = net.item_tower.content() if content_weight > 0 else None
    learned = net.project(item_raw)
    vectors = with_content(learned, content, content_weight).numpy().astype(np.float32)
    net.train(was_training)
    return item_raw, content, vectors


def clean_histories(
    histories: Sequence[Sequence[int]], timestamps: Sequence[Sequence[float]] | None, n_items: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Histories as int64 arrays without unknown item indices, with their timestamps (zeros when
    ``timestamps`` is None or a user's list does not match their history's length)."""
    items, times = [], []
    for j, hist in enumerate(histories):
        h = np.asarray(hist, dtype=np.int64).reshape(-1)
        t = np.asarray(timestamps[j], dtype=np.float64) if timestamps is not None else np.zeros(len(h))
        ok = (h >= 0) & (h < n_items)
        items.append(h[ok])
        times.append(t[ok] if len(t) == len(h) else np.zeros(int(ok.sum())))
    return items, times


def user_text_rows(
    net: LMNet,
    n: int,
    texts: Sequence[str] | None,
    known_users: np.ndarray | None,
    encoder: Callable[[], TextEncoder],
) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """``(raw_text, flags)``: (n, k) raw user-text vectors and (n,) which users have text, from
    ``texts`` (encoded) or else the stored text of ``known_users``; ``(None, None)`` when the
    network has no user text or neither is given."""
    if not hasattr(net, "user_text"):
        return None, None
    if texts is not None:
        flags = np.array([bool(t) for t in texts])
        raw = np.zeros((n, net.user_text.shape[1]), np.float32)
        if flags.any():
            raw[flags] = encode_texts(encoder(), [t for t in texts if t])
        return torch.from_numpy(raw), flags
    if known_users is not None:
        rows = torch.from_numpy(np.asarray(known_users, dtype=np.int64))
        return net.user_text[rows], net.has_text[rows].numpy()
    return None, None


@torch.no_grad()
def encode_histories(
    net: LMNet,
    item_raw: torch.Tensor,
    content: torch.Tensor | None,
    items: list[np.ndarray],
    times: list[np.ndarray],
    user_text: tuple[torch.Tensor | None, np.ndarray | None],
    *,
    user_tower: UserTowerConfig,
    content_weight: float,
    width: int,
    batch_size: int = 1024,
) -> np.ndarray:
    """(n, width) float32 user vectors from cleaned histories (`clean_histories`), in batches.

    Args:
        net: the network (put in eval mode).
        item_raw: (n_items, d) item vectors the histories are read through.
        content: (n_items, k) content vectors (None: no content channel).
        items / times: n histories and their timestamps.
        user_text: ``(raw_text, flags)`` from `user_text_rows`.
        user_tower: its ``max_len`` and ``n_time_buckets`` cut the histories.
        content_weight: ``beta`` of the content channel.
        width: the width of a user vector (that of the item vectors).
        batch_size: users per forward pass.
    """
    raw_text, flags = user_text
    net.eval()
    n = len(items)
    out = np.empty((n, width), np.float32)
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        tokens, buckets, lengths = history_tokens(items[sl], times[sl], user_tower.max_len, user_tower.n_time_buckets)
        text = has = None
        if raw_text is not None and flags is not None:
            text = net.whiten_user_text(raw_text[sl])
            has = torch.from_numpy(np.asarray(flags[sl], dtype=bool))
        tokens_t, lengths_t = torch.from_numpy(tokens), torch.from_numpy(lengths)
        learned = score_users(net, item_raw, tokens_t, torch.from_numpy(buckets), lengths_t, text, has)
        user_c = user_content(content, tokens_t, last=True) if content is not None else None
        out[sl] = with_content(learned, user_c, content_weight).numpy()
    return out


@torch.no_grad()
def text_path_vectors(net: LMNet, raw: torch.Tensor, content_on: bool, content_weight: float) -> np.ndarray:
    """(n, d [+ k]) vectors of raw text vectors ``raw`` (n, k) through the item tower's text path
    (the ID part off, as for cold items), in eval mode."""
    net.eval()
    learned = net.project(net.item_tower.encode_text(raw))
    content = net.item_tower.content(raw) if content_on else None
    return with_content(learned, content, content_weight).numpy()


class LMVectors(Recommender):
    """The read-out side of `LMRecommender`: its text encoder, cached item vectors, user vectors and
    the text path, over the fitted network ``net_`` (the model sets the state these read)."""

    item_tower: ItemTowerConfig
    user_tower: UserTowerConfig
    encoder: EncoderConfig
    text_encoder: TextEncoder | None
    net_: LMNet
    item_raw_: torch.Tensor
    item_vectors_: np.ndarray
    learned_item_vectors_: np.ndarray
    hist_items_: list[np.ndarray]
    hist_times_: list[np.ndarray]
    item_fields_: dict[str, list[str]]
    _content: torch.Tensor | None

    # ------------------------------------------------------------------ encoder
    def get_text_encoder(self) -> TextEncoder:
        """The injected encoder, or one rebuilt from the saved spec (built lazily, once)."""
        if self.text_encoder is None:
            self._built_encoder = True
            self.text_encoder = persist.build_encoder(
                getattr(self, "encoder_spec_", None),
                self.encoder.model,
                self.encoder.backend,
                getattr(self, "_lora_arrays", None),
            )
        spec = getattr(self, "encoder_spec_", None)
        if spec is not None:
            saved = spec.get("name")
            if saved is not None and saved != self.text_encoder.name:
                log.warning(
                    "encoder %r differs from the one the model was trained with (%r)", self.text_encoder.name, saved
                )
            spec.setdefault("name", self.text_encoder.name)
            spec.setdefault("dim", self.text_encoder.dim)
            spec.setdefault("class", type(self.text_encoder).__name__)
        return self.text_encoder

    # ------------------------------------------------------------------ vectors
    @torch.no_grad()
    def refresh_vectors(self) -> None:
        """Recompute the cached (normalised) item vectors in eval mode."""
        self.item_raw_, self._content, self.item_vectors_ = cached_item_vectors(
            self.net_, self.item_tower.content_weight
        )
        self.learned_item_vectors_ = self.item_vectors_
        self.cold_paths_ = self.make_cold_paths()
        if self.cold_paths_ is not None:
            self.item_vectors_ = self.cold_paths_.item_vectors()
            self.item_raw_ = torch.from_numpy(self.cold_paths_.history_inputs(self.item_raw_.numpy()))

    @torch.no_grad()
    def make_cold_paths(self, state: ColdState | None = None) -> ColdStart | None:
        """The cold-start paths (`lmrec.models.lm.cold`) over the learned item vectors, under ``state``
        (None: the fitted ``cold_state_``); None when they do not apply (no ``cold_start`` component or
        it is off, no fitted state yet (during training), no item text, the content channel on, or
        private training)."""
        config = getattr(self, "cold_start", None)
        state = getattr(self, "cold_state_", None) if state is None else state
        privacy = getattr(self, "privacy", None)
        if config is None or state is None or not config.enabled or not self.item_tower.uses_text:
            return None
        if self.item_tower.content_weight > 0 or (privacy is not None and privacy.enabled):
            return None
        content = self.net_.item_tower.content().numpy()
        counts = np.asarray(getattr(self, "counts_", np.zeros(len(content))))
        unit = self.net_.similarity == "cosine"
        raw = self.net_.item_tower.text.numpy()
        return ColdStart(config, state, self.learned_item_vectors_, content, counts, raw, unit=unit)

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
        items, times = clean_histories(histories, timestamps, self.n_items)
        user_text = user_text_rows(self.net_, n, texts, known_users, self.get_text_encoder)
        learned = encode_histories(
            self.net_,
            self.item_raw_ if item_raw is None else item_raw,
            self._content,
            items,
            times,
            user_text,
            user_tower=self.user_tower,
            content_weight=self.item_tower.content_weight,
            width=self.learned_item_vectors_.shape[1],
            batch_size=batch_size,
        )
        paths = getattr(self, "cold_paths_", None)
        return learned if paths is None else paths.user_vectors(learned, items, self.user_tower.max_len)

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
        if self.item_tower.repr == "id":
            raise ValueError("this model was fit with item_repr='id': it has no text path for new items or queries")
        raw = torch.from_numpy(encode_texts(self.get_text_encoder(), list(texts), kind=kind))
        learned = text_path_vectors(self.net_, raw, self._content is not None, self.item_tower.content_weight)
        paths = getattr(self, "cold_paths_", None)
        if paths is None:
            return learned
        content = self.net_.item_tower.content(raw).numpy()
        return paths.text_vectors(learned, content, raw.numpy(), "query" if kind == "query" else "passage")
