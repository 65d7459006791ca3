"""Moving a fitted language-model interest model to a new domain (other users, other items).

Item text is the bridge: the new catalogue is encoded by the same frozen language model, whitened
with the *old* whitening and mapped by the *old* adaptor, so every new item has a vector in the
learned space before any training. The new items start without ID embeddings (their ID part is
masked, as for cold items); the user tower, the heads, the temperature and the scenario adapters are
carried over as they are. What is trained afterwards is the caller's choice (see
`LMScenarioRecommender.adapt`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lmrec.data.dataset import Dataset
from lmrec.models.lm.item_tower import ItemTower
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.text import encode_texts, item_fields, item_texts, user_texts

if TYPE_CHECKING:
    from lmrec.models.lm.model import LMRecommender

__all__ = ["move_to"]


def move_to(model: LMRecommender, dataset: Dataset) -> None:
    """Replace ``model.net_`` by one over ``dataset``'s items and users, sharing the old modules.

    Only the network and the item field texts change; id maps, histories and ``seen_`` are the
    caller's to set.

    Raises:
        ValueError: the model has no text path (``item_repr="id"``), fuses other modalities (their
            columns need not exist in the new domain) or the data set has no catalogue.
    """
    if model.item_repr == "id":
        raise ValueError("a new domain enters through item text, but this model was fit with item_repr='id'")
    if dataset.items is None:
        raise ValueError(f"moving to a new domain needs its item catalogue; {dataset.name} has none")
    inter = dataset.interactions
    net = model.net_
    old = net.item_tower
    if getattr(old, "fusion", None) is not None:
        raise ValueError(
            "moving a model with multimodal fusion to a new domain is not supported; fit it with fusion='none'"
        )
    fields = item_fields(dataset.items, model.text_fields)
    texts, model.item_fields_ = item_texts(dataset.items, inter.item_map, fields)
    vecs = encode_texts(model._get_encoder(), texts, cache_dir=model.cache_dir, show_progress=model.show_progress)
    tower = ItemTower(
        vecs, np.zeros(inter.n_items, bool), model.dim, item_repr=model.item_repr, adaptor=model.adaptor,
        n_experts=model.n_experts, dropout=model.adaptor_dropout, id_dropout=model.id_dropout,
        whitening=(old.white_mean.numpy(), old.white_proj.numpy()),
    )
    tower.adaptor.load_state_dict(old.adaptor.state_dict())
    user_vecs = has_text = white = None
    if hasattr(net, "user_text"):
        # the user tower has a text gate: new users' texts enter it through the old whitening
        utexts = user_texts(dataset.users, inter.user_map, model.user_text_kinds) if model.use_user_text else []
        utexts = utexts or [""] * inter.n_users
        has_text = np.array([bool(t) for t in utexts], dtype=bool)
        user_vecs = np.zeros((inter.n_users, net.user_text.shape[1]), np.float32)
        if has_text.any():
            user_vecs[has_text] = encode_texts(
                model._get_encoder(), [t for t in utexts if t], cache_dir=model.cache_dir
            )
        white = (net.ut_mean.numpy(), net.ut_proj.numpy())
    new = LMNet(
        tower, net.user_tower, user_text=user_vecs, has_text=has_text, user_whitening=white,
        similarity=net.similarity, temperature=model.temperature, learn_temperature=model.learn_temperature,
    )
    new.rating_head, new.event_head = net.rating_head, net.event_head
    if net.log_tau is not None:
        new.log_tau = net.log_tau
    if hasattr(net, "scenario"):
        new.scenario = net.scenario
    model.net_ = new
