"""Moving a fitted language-model interest model to a new domain (other users, other items).

Item text is the bridge: the new catalogue is encoded by the same frozen language model, whitened
and mapped by the *old* adaptor, so every new item has a vector in the learned space before any
training. The whitening is by default re-fitted on the new catalogue's text vectors (its mean and
covariance; no labels), as batch-norm statistics are re-estimated for a new domain: the adaptor was
learned on whitened inputs, and another domain's texts sit elsewhere in the language model's space,
so the old statistics hand the adaptor off-centre, badly scaled inputs that it has to be re-trained
around; on a cross-domain transfer with full fine-tuning re-fitting helped (benchmarks/RESULTS.md
reports how much). Where the adaptor stays frozen (adapter-only training) the old statistics did
better, so `LMScenarioRecommender.adapt` re-fits
only when it fine-tunes; ``refit_whitening=False`` keeps the old statistics.

The new items start without ID embeddings (their ID part is masked, as for cold items); the user
tower, the heads, the temperature and the scenario adapters are carried over as they are. What is
trained afterwards is the caller's choice (see `LMScenarioRecommender.adapt`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from lmrec.data.dataset import Dataset
from lmrec.models.lm.item_tower import ItemTower, fit_whitening, make_adaptor
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.text import encode_texts, item_fields, item_texts, user_texts

if TYPE_CHECKING:
    from lmrec.models.lm.model import LMRecommender

__all__ = ["RESETTABLE", "move_to", "refit_whitening_like", "reset_parts"]

#: the parts of a carried-over network that `reset_parts` can return to a fresh initialisation
RESETTABLE = ("user_tower", "adaptor")


def refit_whitening_like(
    vectors: np.ndarray, old: tuple[np.ndarray, np.ndarray], eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Whitening fitted on ``vectors`` with the old one's output width, so the modules after it fit.

    Args:
        vectors: (n, D) raw text vectors of the new domain.
        old: ``(mean, proj)`` of the old whitening, (D,) and (D, k).
        eps: eigenvalue ridge (`fit_whitening`).

    Returns:
        ``(mean, proj)``, (D,) and (D, k). When the new vectors span fewer than ``k`` directions the
        missing columns are zero (those inputs of the adaptor then read 0).
    """
    k = old[1].shape[1]
    mean, proj = fit_whitening(np.asarray(vectors, np.float32), eps=eps, max_dim=k)
    if proj.shape[1] < k:
        proj = np.concatenate([proj, np.zeros((proj.shape[0], k - proj.shape[1]), np.float32)], axis=1)
    return mean, proj


def move_to(model: LMRecommender, dataset: Dataset, *, refit_whitening: bool = True) -> None:
    """Replace ``model.net_`` by one over ``dataset``'s items and users, sharing the old modules.

    Only the network and the item field texts change; id maps, histories and ``seen_`` are the
    caller's to set.

    Args:
        model: the fitted model (changed in place).
        dataset: the new domain's interactions, catalogue and (optionally) user texts.
        refit_whitening: re-fit the item (and user) text whitening on the new domain's text
            vectors (see the module docstring); False keeps the old statistics. A model fit with
            ``whiten=False`` has none to re-fit.

    Raises:
        ValueError: the model has no text path (``item_repr="id"``), fuses other modalities (their
            columns need not exist in the new domain) or the data set has no catalogue.
    """
    if model.item_tower.repr == "id":
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
    fields = item_fields(dataset.items, model.item_tower.text_fields)
    texts, model.item_fields_ = item_texts(dataset.items, inter.item_map, fields)
    vecs = encode_texts(
        model.get_text_encoder(), texts, cache_dir=model.encoder.cache_dir, show_progress=model.show_progress
    )
    whitening = (old.white_mean.numpy(), old.white_proj.numpy())
    if refit_whitening and model.item_tower.whiten:
        whitening = refit_whitening_like(vecs, whitening, model.item_tower.whiten_eps)
    tower = ItemTower(
        vecs,
        np.zeros(inter.n_items, bool),
        model.dim,
        item_repr=model.item_tower.repr,
        adaptor=model.item_tower.adaptor,
        n_experts=model.item_tower.n_experts,
        dropout=model.item_tower.adaptor_dropout,
        id_dropout=model.item_tower.id_dropout,
        whitening=whitening,
    )
    tower.adaptor.load_state_dict(old.adaptor.state_dict())
    user_vecs = has_text = white = None
    if hasattr(net, "user_text"):
        # the user tower has a text gate: new users' texts enter it through the old whitening, or one
        # re-fitted on them (at least two texts are needed for a covariance)
        utexts = (
            user_texts(dataset.users, inter.user_map, model.user_tower.user_text_kinds)
            if model.user_tower.use_user_text
            else []
        )
        utexts = utexts or [""] * inter.n_users
        has_text = np.array([bool(t) for t in utexts], dtype=bool)
        user_vecs = np.zeros((inter.n_users, net.user_text.shape[1]), np.float32)
        if has_text.any():
            user_vecs[has_text] = encode_texts(
                model.get_text_encoder(), [t for t in utexts if t], cache_dir=model.encoder.cache_dir
            )
        white = (net.ut_mean.numpy(), net.ut_proj.numpy())
        if refit_whitening and model.item_tower.whiten and has_text.sum() >= 2:
            white = refit_whitening_like(user_vecs[has_text], white, model.item_tower.whiten_eps)
    new = LMNet(
        tower,
        net.user_tower,
        user_text=user_vecs,
        has_text=has_text,
        user_whitening=white,
        similarity=net.similarity,
        temperature=model.objective.temperature,
        learn_temperature=model.objective.learn_temperature,
    )
    new.rating_head, new.event_head = net.rating_head, net.event_head
    if net.log_tau is not None:
        new.log_tau = net.log_tau
    if hasattr(net, "scenario"):
        for adapter in net.scenario.adapters:  # item-ID residuals name the old catalogue's rows
            adapter.drop_ids()
        new.scenario = net.scenario
    model.net_ = new


def check_reset(reset: str | Sequence[str]) -> tuple[str, ...]:
    """``reset`` as a tuple of known part names; a ValueError names an unknown one."""
    parts = (reset,) if isinstance(reset, str) else tuple(reset)
    for part in parts:
        if part not in RESETTABLE:
            raise ValueError(f"adapt reset names unknown part {part!r}; choose from {list(RESETTABLE)}")
    return tuple(dict.fromkeys(parts))


def reset_parts(model: LMRecommender, parts: tuple[str, ...]) -> list[int]:
    """Return the named parts of ``model.net_`` to the initialisation a fresh fit would give them.

    The new weights are copied into the existing parameters, so optimiser parameter lists and
    module sharing stay valid. Draws from torch's global generator: seed it (under
    ``torch.random.fork_rng``) for a reproducible reset.

    Which parts carry over is an empirical question (benchmarks/RESULTS.md has the figures): on a
    cross-domain transfer a fresh adaptor under the carried-over transformer did clearly worse, while
    a fresh user tower made no significant difference. The two parts work as a pair, and resetting
    one of them is for experiments, not a default.

    Args:
        model: a fitted model.
        parts: names from `RESETTABLE`: ``"user_tower"`` (transformer, position / time embeddings,
            text gate) and ``"adaptor"`` (the item text adaptor after the whitening).

    Returns:
        ``id()`` of every parameter that was reset (these have no learned start to be pulled toward).
    """
    net = model.net_
    reset: list[int] = []
    target: nn.Module
    fresh: nn.Module
    for part in check_reset(parts):
        if part == "user_tower":
            target = net.user_tower
            fresh = model.make_user_tower(target.text_dim)
        else:
            adaptor = getattr(net.item_tower, "adaptor", None)
            if adaptor is None:
                raise ValueError("adapt reset 'adaptor': this model has no text adaptor (item_repr='id')")
            target = adaptor
            first = next(p for p in target.parameters() if p.dim() == 2)
            fresh = make_adaptor(
                model.item_tower.adaptor,
                first.shape[1],
                model.dim,
                model.item_tower.n_experts,
                model.item_tower.adaptor_dropout,
            )
        target.load_state_dict(fresh.state_dict())
        reset.extend(id(p) for p in target.parameters())
    return reset
