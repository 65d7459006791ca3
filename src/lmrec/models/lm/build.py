"""Assembling the network of the language-model interest model from its component configs and data.

`LMRecommender.prepare` (a fresh fit) and `LMRecommender.load_state_dict` (a saved model) both
build an `LMNet` here: the item tower over the frozen text vectors, the user tower, the user-text
inputs and the heads the objective asks for. Every function takes what it needs as arguments.
Building draws the initial weights from torch's global RNG, so callers run it under
`lmrec.train.seeding.seeded`; the towers are built in a fixed order (item tower, then user tower).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from lmrec.data.interactions import Interactions
from lmrec.encoders.base import TextEncoder
from lmrec.models.lm.config import ItemTowerConfig, ObjectiveConfig, UserTowerConfig
from lmrec.models.lm.graph import fusion_from_state
from lmrec.models.lm.item_tower import ItemTower, fit_whitening
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.text import encode_texts
from lmrec.models.lm.user_tower import UserTower

__all__ = [
    "UserTextInputs",
    "build_net",
    "event_classes",
    "make_user_tower",
    "net_from_arrays",
    "time_ordered_histories",
    "user_text_inputs",
]

#: ``(user_vecs, has_text, user_whitening)``: (n_users, k) raw text vectors (None: no user has
#: text), (n_users,) which users have one, and the whitening fitted on them (None: off)
UserTextInputs = tuple[np.ndarray | None, np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]


def event_classes(inter: Interactions, objective: ObjectiveConfig) -> list[str]:
    """The sorted event kinds the event head predicts (none without events or ``event_weight``)."""
    if inter.events is None or objective.event_weight <= 0:
        return []
    return sorted(set(inter.events.astype(str).tolist()))


def time_ordered_histories(inter: Interactions) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(items, times)``: each user's item indices (int64) and timestamps (float64) in time order."""
    order = inter.time_order()
    users, items, times = inter.users[order], inter.items[order], inter.timestamps[order]
    bounds = np.searchsorted(users, np.arange(inter.n_users + 1))
    hist_items = [items[bounds[u] : bounds[u + 1]].astype(np.int64) for u in range(inter.n_users)]
    hist_times = [times[bounds[u] : bounds[u + 1]].astype(np.float64) for u in range(inter.n_users)]
    return hist_items, hist_times


def user_text_inputs(
    utexts: Sequence[str],
    n_users: int,
    encoder: Callable[[], TextEncoder],
    item_tower: ItemTowerConfig,
    *,
    cache_dir: str | None,
    show_progress: bool,
) -> UserTextInputs:
    """Encode the users' texts (``""`` for none) into the user tower's text inputs.

    Args:
        utexts: one text per user (an empty list: user text is off).
        n_users: rows of the returned matrix.
        encoder: returns the text encoder (called only when some user has text).
        item_tower: its ``whiten`` / ``whiten_eps`` apply to the user texts too.
        cache_dir: the text-vector cache.
        show_progress: a progress bar while encoding.

    Returns:
        ``(user_vecs, has_text, user_whitening)`` (`UserTextInputs`); all None when no user has text.
    """
    has_text = np.array([bool(t) for t in utexts], dtype=bool)
    if not has_text.any():
        return None, None, None
    user_vecs = np.zeros((n_users, encoder().dim), np.float32)
    user_vecs[has_text] = encode_texts(
        encoder(), [t for t in utexts if t], cache_dir=cache_dir, show_progress=show_progress
    )
    user_white = fit_whitening(user_vecs[has_text], eps=item_tower.whiten_eps) if item_tower.whiten else None
    return user_vecs, has_text, user_white


def make_user_tower(dim: int, user_tower: UserTowerConfig, text_dim: int) -> UserTower:
    """A freshly initialised user tower of width ``dim`` (``text_dim`` 0: no user text)."""
    return UserTower(
        dim,
        user_tower.max_len,
        n_layers=user_tower.n_layers,
        n_heads=user_tower.n_heads,
        dropout=user_tower.dropout,
        n_time_buckets=user_tower.n_time_buckets,
        text_dim=text_dim,
    )


def build_net(
    dim: int,
    item_tower: ItemTowerConfig,
    user_tower: UserTowerConfig,
    objective: ObjectiveConfig,
    item_text_vecs: np.ndarray | None,
    id_mask: np.ndarray,
    whitening: tuple[np.ndarray, np.ndarray] | None,
    user_inputs: UserTextInputs,
    n_event_classes: int,
) -> LMNet:
    """A freshly initialised network.

    Args:
        dim: width ``d`` of the shared space.
        item_tower / user_tower / objective: the model's component configs.
        item_text_vecs: (n_items, k) raw text vectors (None: ``item_tower.repr == "id"``).
        id_mask: (n_items,) bool, items whose ID embedding is used (those with training rows).
        whitening: ``(mean, proj)`` of the item text vectors (None: off).
        user_inputs: the user-text inputs (`user_text_inputs`).
        n_event_classes: classes of the event head (0: none).
    """
    user_vecs, has_text, user_white = user_inputs
    items = ItemTower(
        item_text_vecs,
        id_mask,
        dim,
        item_repr=item_tower.repr,
        adaptor=item_tower.adaptor,
        n_experts=item_tower.n_experts,
        dropout=item_tower.adaptor_dropout,
        id_dropout=item_tower.id_dropout,
        whitening=whitening,
    )
    text_dim = 0 if user_vecs is None else (user_white[1].shape[1] if user_white is not None else user_vecs.shape[1])
    return LMNet(
        items,
        make_user_tower(dim, user_tower, text_dim),
        user_text=user_vecs,
        has_text=has_text,
        user_whitening=user_white,
        similarity=objective.similarity,
        temperature=objective.temperature,
        learn_temperature=objective.learn_temperature,
        rating_head=objective.rating_weight > 0,
        n_event_classes=n_event_classes,
    )


def net_from_arrays(
    net: dict[str, np.ndarray],
    dim: int,
    item_tower: ItemTowerConfig,
    user_tower: UserTowerConfig,
    objective: ObjectiveConfig,
    n_event_classes: int,
    fusion_spec: dict | None,
) -> LMNet:
    """The network a saved ``state_dict`` describes (shapes read off the arrays), weights loaded, in eval mode."""
    text = net.get("item_tower.text")
    whitening = (net["item_tower.white_mean"], net["item_tower.white_proj"]) if text is not None else None
    user_text = net.get("user_text")
    user_white = (net["ut_mean"], net["ut_proj"]) if user_text is not None else None
    model = build_net(
        dim,
        item_tower,
        user_tower,
        objective,
        text,
        net["item_tower.id_mask"] > 0,
        whitening,
        (user_text, net.get("has_text"), user_white),
        n_event_classes,
    )
    if fusion_spec:
        model.item_tower.fusion = fusion_from_state(fusion_spec, net, dim)  # modality fusion, graph or both
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in net.items()})
    model.eval()
    return model
