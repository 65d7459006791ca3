"""The steps of `LMScenarioRecommender.adapt` that need no model: resolving its settings, checking its
data, choosing what is trained and writing its report.

Each function takes what it needs as arguments (the scenario settings, id maps, the network), so
`adapt` reads as its steps: plan, data, take over the domain, a fresh adapter, what trains, train,
report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.data.splits import Split
from lmrec.models.lm.adapters import check_text_history, check_text_rank
from lmrec.models.lm.config import ScenarioConfig
from lmrec.models.lm.domain import check_reset, move_to
from lmrec.models.lm.model import LMRecommender
from lmrec.models.lm.net import LMNet

__all__ = [
    "AdaptData",
    "AdaptPlan",
    "adapt_data",
    "adapt_plan",
    "adapt_report",
    "fresh_adapter",
    "take_over",
    "trainable",
]


@dataclass(frozen=True)
class AdaptPlan:
    """`LMScenarioRecommender.adapt`'s settings, checked and resolved (see `adapt` for each)."""

    scenario: str
    mode: Literal["adapter", "full"]
    new_item_ids: bool
    text_rank: int
    text_history: bool
    id_rank: int
    anchor: float
    reset: tuple[str, ...]
    refit_whitening: bool


@dataclass(frozen=True)
class AdaptData:
    """The adaptation data, checked: ``in_scenario`` marks the rows of the scenario (all rows when
    the interactions carry no scenarios); ``same_domain`` is True when they use the model's item map."""

    dataset: Dataset
    inter: Interactions
    valid: Interactions | None
    in_scenario: np.ndarray
    same_domain: bool


def adapt_plan(
    scenarios: ScenarioConfig,
    item_repr: str,
    scenario: str,
    mode: str,
    new_item_ids: bool,
    text_rank: int | None,
    text_history: bool | None,
    id_rank: int,
    anchor: float,
    reset: str | Sequence[str],
    refit_whitening: bool | None,
) -> AdaptPlan:
    """`adapt`'s settings, checked and resolved against the model's ``scenarios`` config (a
    ValueError names the bad one)."""
    if mode not in ("adapter", "full"):
        raise ValueError(f"adapt mode must be 'adapter' or 'full', got {mode!r}")
    t_rank = int(scenarios.adapter_text_rank or 0) if text_rank is None else text_rank
    check_text_rank(t_rank, item_repr, "adapt text_rank")
    t_hist = bool(scenarios.adapter_text_history) if text_history is None else text_history
    check_text_history(t_hist, t_rank, "adapt text_history")
    if isinstance(id_rank, bool) or not isinstance(id_rank, (int, np.integer)) or id_rank < 0:
        raise ValueError(f"adapt id_rank must be an integer >= 0, got {id_rank!r}")
    if id_rank and mode == "full":
        raise ValueError("adapt id_rank is for adapter mode; mode='full' trains every item's ID row already")
    if isinstance(anchor, bool) or not isinstance(anchor, (int, float)) or not np.isfinite(anchor) or anchor < 0:
        raise ValueError(f"adapt anchor must be a finite number >= 0, got {anchor!r}")
    if anchor and mode != "full":
        raise ValueError("adapt anchor pulls the fine-tuned backbone toward its start; it needs mode='full'")
    resets = check_reset(reset)
    if resets and mode != "full":
        raise ValueError("adapt reset re-initialises parts of the backbone, which only mode='full' trains")
    return AdaptPlan(
        scenario=str(scenario),
        mode=mode,  # type: ignore[arg-type]  # checked above
        new_item_ids=bool(new_item_ids),
        text_rank=int(t_rank),
        text_history=t_hist,
        id_rank=int(id_rank),
        anchor=float(anchor),
        reset=resets,
        refit_whitening=mode == "full" if refit_whitening is None else refit_whitening,
    )


def adapt_data(
    dataset: Dataset | Interactions,
    scenario: str,
    valid: Split | Interactions | None,
    user_map: IdMap,
    item_map: IdMap,
) -> AdaptData:
    """The adaptation data checked against the model's id maps ``user_map`` / ``item_map``."""
    if isinstance(dataset, Interactions):
        dataset = Dataset(dataset)
    inter = dataset.interactions
    if len(inter) == 0:
        raise ValueError("adapt got no interactions")
    valid_inter = valid.valid if isinstance(valid, Split) else valid
    if valid_inter is not None and (valid_inter.user_map != inter.user_map or valid_inter.item_map != inter.item_map):
        raise ValueError("adapt: valid interactions use different id maps from the adaptation data")
    in_scen = np.ones(len(inter), bool) if inter.scenarios is None else inter.scenarios.astype(str) == str(scenario)
    if not in_scen.any():
        raise ValueError(f"adapt: no interaction has scenario {scenario!r}")
    same_domain = inter.item_map == item_map
    if same_domain and inter.user_map != user_map:
        raise ValueError(
            "adapt on the model's items needs the model's user map too (add new users with partial_fit first); "
            "other items are a new domain"
        )
    return AdaptData(dataset, inter, valid_inter, in_scen, same_domain)


def take_over(backbone: LMRecommender, data: AdaptData, *, refit_whitening: bool) -> None:
    """Move ``backbone`` to a new domain (when it is one) and make the adaptation rows its history."""
    inter = data.inter
    if not data.same_domain:
        move_to(backbone, data.dataset, refit_whitening=refit_whitening)
    backbone.user_map_, backbone.item_map_ = inter.user_map, inter.item_map
    backbone.seen_ = inter.to_csr("binary")
    backbone.counts_ = inter.item_counts()
    backbone.set_histories(inter)


def fresh_adapter(
    net: LMNet, names: list[str], plan: AdaptPlan, scenario_items: np.ndarray, seed: int
) -> tuple[int, np.ndarray | None]:
    """Give the scenario a fresh adapter (replacing an existing one of that name; a new name is
    appended to ``names``); returns its id and the items given an ID residual (None without ``id_rank``)."""
    id_rows = np.unique(scenario_items) if plan.id_rank else None
    if plan.scenario in names:
        sid = names.index(plan.scenario)
        net.scenario.adapters[sid] = net.scenario.make(
            torch.Generator().manual_seed(seed + sid), plan.text_rank, plan.text_history, id_rows, plan.id_rank
        )
    else:
        sid = len(names)
        net.scenario.add(
            torch.Generator().manual_seed(seed + sid), plan.text_rank, plan.text_history, id_rows, plan.id_rank
        )
        names.append(plan.scenario)
    return sid, id_rows


def trainable(
    net: LMNet, counts: np.ndarray, sid: int, plan: AdaptPlan, was_reset: set[int]
) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter], dict[str, torch.Tensor] | None]:
    """``(params, full, start_weights)``: what is trained (gradients switched off for the rest),
    what ``mode="full"`` would train, and the start values the anchor pulls toward (None: no pull).

    Args:
        net: the network with the scenario's fresh adapter ``sid``.
        counts: (n_items,) training rows per item (items with rows get their ID part on).
        sid: the adapted scenario's id.
        plan: the resolved settings.
        was_reset: ids of the parameters re-initialised before training (not pulled back).
    """
    tower = net.item_tower
    ids_on = plan.mode == "full" or plan.new_item_ids
    if ids_on and hasattr(tower, "id_emb"):
        tower.id_mask = torch.as_tensor((counts > 0).astype(np.float32))
    new = net.scenario.adapters[sid]
    adapter_params = list(new.parameters())
    other = {id(p) for i, a in enumerate(net.scenario.adapters) if i != sid for p in a.parameters()}
    own_ids = {id(new.id_u), id(new.id_v)} if new.id_rank else set()  # mode="full" trains no residual
    full = [p for p in net.parameters() if id(p) not in other and id(p) not in own_ids]
    if plan.mode == "full":
        params = full
    else:
        params = adapter_params + ([tower.id_emb.weight] if ids_on and hasattr(tower, "id_emb") else [])
    keep = {id(p) for p in params}
    for p in net.parameters():
        p.requires_grad_(id(p) in keep)
    start_weights = None
    if plan.anchor:
        fresh = {id(p) for p in adapter_params} | was_reset
        if hasattr(tower, "id_emb"):
            fresh.add(id(tower.id_emb.weight))
        start_weights = {
            n: p.detach().clone() for n, p in net.named_parameters() if id(p) in keep and id(p) not in fresh
        }
    return params, full, start_weights


def adapt_report(
    plan: AdaptPlan,
    data: AdaptData,
    sid: int,
    id_rows: np.ndarray | None,
    n_train: int,
    n_full: int,
    history: Sequence[Mapping[str, Any]],
    fit_s: float,
    *,
    whiten: bool,
) -> dict[str, Any]:
    """The report `adapt` returns (its docstring lists the keys)."""
    return {
        "scenario": plan.scenario,
        "scenario_id": sid,
        "mode": plan.mode,
        "new_domain": not data.same_domain,
        "refit_whitening": bool(plan.refit_whitening and not data.same_domain and whiten),
        "text_rank": plan.text_rank,
        "text_history": plan.text_history,
        "anchor": plan.anchor,
        "reset": list(plan.reset),
        "id_rank": plan.id_rank,
        "id_items": 0 if id_rows is None else len(id_rows),
        "trainable_params": int(n_train),
        "full_finetune_params": int(n_full),
        "trainable_share": n_train / n_full,
        "n_train_positions": int(data.in_scenario.sum()),
        "fit_s": fit_s,
        "epochs_run": len(history),
        "best_valid_ndcg@10": max((float(h["ndcg@10"]) for h in history if "ndcg@10" in h), default=None),
    }
