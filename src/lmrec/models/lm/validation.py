"""Validation during training: NDCG@10 and Recall@10 with full ranking and known items masked.

Early stopping needs a number after every epoch. Models do not import the evaluator (it sits a
layer above them), so this module computes what ``lmrec.eval.evaluate(model, split, phase="valid",
ks=(10,), metrics=("ndcg", "recall"), user_groups=())`` reports for those two metrics, with the
same operations in the same order, so early stopping picks the same epoch as before. A caller that
wants another measure injects its own ``validator`` into ``fit`` / ``partial_fit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lmrec.data.interactions import Interactions
from lmrec.models.base import top_k

__all__ = ["Validator", "ranking_metrics", "user_scenarios"]

#: ``(model, known, valid) -> {"ndcg@10": ..., ...}``, called after every epoch with the model's vectors
#: refreshed; ``known`` holds the rows to mask, ``valid`` the validation rows (both on the model's maps)
Validator = Callable[[Any, Interactions, Interactions], dict[str, float]]


def user_scenarios(scenario_names: list[str], valid: Interactions, users: np.ndarray) -> np.ndarray | None:
    """(n,) scenario id of each user's latest row in ``valid`` (ties: the later row), -1 for a scenario
    not in ``scenario_names``; None when ``valid`` carries no scenarios."""
    if valid.scenarios is None or len(users) == 0:
        return None
    lookup = {name: i for i, name in enumerate(scenario_names)}
    order = np.lexsort((np.arange(len(valid)), valid.timestamps, valid.users))
    sorted_users = valid.users[order]
    last = order[np.r_[sorted_users[1:] != sorted_users[:-1], True]]  # one row per user, ascending users
    names = valid.scenarios[last].astype(str)
    return np.array([lookup.get(n, -1) for n in names], dtype=np.int64)


def _metrics(hits: np.ndarray, n_rel: np.ndarray) -> dict[str, float]:
    """Mean NDCG@k and Recall@k over users from (n, k) hit flags and (n,) relevant counts."""
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits.astype(np.float64) @ discounts
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal[np.minimum(n_rel, k)]
    ndcg = np.divide(dcg, idcg, out=np.zeros(len(hits)), where=idcg > 0)
    recall = np.divide(hits.sum(axis=1), n_rel, out=np.zeros(len(hits)), where=n_rel > 0)
    return {f"ndcg@{k}": float(ndcg.mean()), f"recall@{k}": float(recall.mean())}


def _hits(users: np.ndarray, ranked: np.ndarray, rel_keys: np.ndarray, n_items: int) -> np.ndarray:
    return (ranked >= 0) & np.isin(users[:, None] * n_items + ranked, rel_keys)


def ranking_metrics(
    score_all: Callable[..., np.ndarray],
    known: Interactions,
    valid: Interactions,
    *,
    k: int = 10,
    batch_size: int = 256,
    scenario_names: list[str] | None = None,
    focus: str | None = None,
) -> dict[str, float]:
    """NDCG@k and Recall@k of ``score_all`` on ``valid`` (full ranking; ``known`` items masked except
    the user's own validation items).

    Args:
        score_all: ``(user_idx) -> (n, n_items)`` scores; with ``scenario_names`` it is called as
            ``score_all(users, scenario=ids)``, each user under the scenario of their latest row.
        known: the interactions whose items are masked (the training rows, or all the model holds).
        valid: the validation interactions, on the same maps.
        k: the cut-off.
        batch_size: users scored at once.
        scenario_names: the model's scenario names (a scenario-aware model), or None.
        focus: report the metrics over the users of this scenario's rows only (0.0 when it has none).

    Returns:
        ``{"ndcg@k", "recall@k"}`` means over the users with a validation row; NaN when there are none.
    """
    n_users_total, n_items = known.n_users, known.n_items
    history = known.to_csr("binary")
    rel_keys = np.unique(valid.users * n_items + valid.items)
    users = np.unique(valid.users)
    n_rel = np.bincount(rel_keys // n_items, minlength=n_users_total)[users]
    if len(users) == 0:
        return {f"ndcg@{k}": float("nan"), f"recall@{k}": float("nan")}
    scen = user_scenarios(scenario_names, valid, users) if scenario_names is not None else None
    ranked = np.full((len(users), k), -1, dtype=np.int64)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        raw = score_all(batch) if scen is None else score_all(batch, scenario=scen[start : start + len(batch)])
        scores = np.array(raw, dtype=np.float32, copy=True)
        if scores.shape != (len(batch), n_items):
            raise ValueError(f"score_all returned shape {scores.shape}, expected ({len(batch)}, {n_items})")
        lo, hi = np.searchsorted(rel_keys, [batch[0] * n_items, (batch[-1] + 1) * n_items])
        r, c = history[batch].nonzero()
        masked = ~np.isin(batch[r] * n_items + c, rel_keys[lo:hi])
        scores[r[masked], c[masked]] = -np.inf
        idx, _ = top_k(scores, k)
        ranked[start : start + len(batch), : idx.shape[1]] = idx
    if focus is None:
        return _metrics(_hits(users, ranked, rel_keys, n_items), n_rel)
    if valid.scenarios is None:
        return {f"ndcg@{k}": 0.0, f"recall@{k}": 0.0}
    rows = valid.scenarios.astype(str) == focus
    if not rows.any():
        return {f"ndcg@{k}": 0.0, f"recall@{k}": 0.0}
    keys_s = np.unique(valid.users[rows] * n_items + valid.items[rows])
    users_s = np.unique(valid.users[rows])
    n_rel_s = np.bincount(keys_s // n_items, minlength=n_users_total)[users_s]
    return _metrics(_hits(users_s, ranked[np.searchsorted(users, users_s)], keys_s, n_items), n_rel_s)


def ndcg_validator(
    model: Any, known: Interactions, valid: Interactions, *, focus: str | None = None
) -> dict[str, float]:
    """The default `Validator`: `ranking_metrics` of ``model.score_all`` (each user under the scenario
    of their latest validation row for a scenario-aware model; ``focus``: one scenario's users)."""
    names = list(model.scenario_names_) if getattr(model, "is_scenario_aware", False) else None
    return ranking_metrics(model.score_all, known, valid, scenario_names=names, focus=focus)


__all__ += ["ndcg_validator"]
