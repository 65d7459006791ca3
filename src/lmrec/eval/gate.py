"""Champion / challenger: accept an updated model only if it does not regress on fresh data.

After an update, the challenger (the updated model) and the champion (the model before the
update, shown the same history without training on it) are both evaluated with full ranking on a
held-back slice of the newest window; a challenger whose primary metric falls below
``champion * (1 - tolerance)`` is rejected and the champion is kept, with the reason recorded.
"""

from __future__ import annotations

import copy
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lmrec.data.frames import as_raw_frame, seen_interactions
from lmrec.data.interactions import Interactions
from lmrec.data.splits import Split
from lmrec.eval.evaluator import evaluate
from lmrec.models.base import Recommender

__all__ = ["GateResult", "champion_challenger", "clone_model", "gated_partial_fit", "history_of"]

log = logging.getLogger(__name__)


@dataclass
class GateResult:
    """The decision of `champion_challenger`.

    Attributes:
        accepted: True when the challenger replaces the champion.
        metric: the compared metric (``"ndcg@10"``).
        champion: the champion's value on the held-back slice.
        challenger: the challenger's value on it.
        tolerance: the allowed relative regression.
        reason: one sentence on why.
        n_users: users evaluated.
        model: the model to keep (not part of ``to_dict``).
    """

    accepted: bool
    metric: str
    champion: float
    challenger: float
    tolerance: float
    reason: str
    n_users: int
    model: Recommender | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "metric": self.metric,
            "champion": self.champion,
            "challenger": self.challenger,
            "tolerance": self.tolerance,
            "reason": self.reason,
            "n_users": self.n_users,
        }


#: attributes holding (read-only, possibly large) encoder objects that clones share instead of copying
SHARED_OBJECTS = ("text_encoder", "image_encoder", "encoder")


def clone_model(model: Recommender) -> Recommender:
    """A deep copy that shares the model's encoder objects (``text_encoder``, ``image_encoder``, and
    ``encoder`` where it holds one)."""
    shared = {name: getattr(model, name) for name in SHARED_OBJECTS if getattr(model, name, None) is not None}
    for name in shared:
        setattr(model, name, None)
    try:
        twin = copy.deepcopy(model)
    finally:
        for name, value in shared.items():
            setattr(model, name, value)
    for name, value in shared.items():
        setattr(twin, name, value)
    return twin


def history_of(model: Recommender) -> Interactions:
    """The model's known history (``seen_``) as interactions on its id maps (timestamps 0)."""
    return seen_interactions(model.seen_, model.user_map_, model.item_map_)


def champion_challenger(
    champion: Recommender, challenger: Recommender, split: Split, *, metric: str = "ndcg@10", tolerance: float = 0.02
) -> GateResult:
    """Evaluate both models on ``split.test`` (full ranking; ``split.train`` masked) and decide.

    Both models must use the split's id maps. The challenger is rejected when its ``metric`` is below
    ``champion * (1 - tolerance)``; ties and small regressions within the tolerance accept it.

    Raises:
        ValueError: ``tolerance`` outside [0, 1].
    """
    if not 0.0 <= tolerance <= 1.0:
        raise ValueError(f"tolerance must be in [0, 1], got {tolerance!r}")
    name, _, k = metric.partition("@")
    a = evaluate(champion, split, ks=(int(k),), metrics=(name,), user_groups=(), primary=metric)
    b = evaluate(challenger, split, ks=(int(k),), metrics=(name,), user_groups=(), primary=metric)
    va, vb = float(a.metrics[metric]), float(b.metrics[metric])
    floor = va * (1.0 - tolerance)
    if np.isnan(vb) or vb < floor:
        reason = (
            f"challenger {metric}={vb:.4f} is below the champion's {va:.4f} by more than "
            f"{tolerance:.0%} (floor {floor:.4f}); keeping the champion"
        )
        accepted = False
    else:
        reason = f"challenger {metric}={vb:.4f} >= floor {floor:.4f} (champion {va:.4f}, tolerance {tolerance:.0%})"
        accepted = True
    log.info("champion/challenger: %s", reason)
    return GateResult(
        accepted, metric, va, vb, float(tolerance), reason, int(b.n_users), challenger if accepted else champion
    )


def gated_partial_fit(
    model: Recommender,
    new_interactions: Interactions | pd.DataFrame,
    new_items: Any = None,
    new_users: Any = None,
    *,
    holdout_frac: float = 0.2,
    tolerance: float = 0.02,
    metric: str = "ndcg@10",
) -> GateResult:
    """Update a copy of ``model`` on the older part of the window and gate it on the newest part.

    The window's rows are ordered by time; the newest ``holdout_frac`` is held back. The challenger
    is a copy of ``model`` after ``partial_fit`` on the rest; the champion is a copy that absorbs the
    same rows without training (``partial_fit(..., epochs=0)``), so both read the same histories. Held-
    back rows of users or items neither model knows are dropped. The kept model then absorbs the
    held-back rows as history (no training), so nothing of the window is lost. ``model`` itself is
    never changed.

    Returns:
        A `GateResult`; ``result.model`` is the model to serve.
    """
    if not 0.0 < holdout_frac < 1.0:
        raise ValueError(f"holdout_frac must be in (0, 1), got {holdout_frac!r}")
    if not _takes_epochs(model):
        raise TypeError(
            f"gated_partial_fit needs partial_fit(..., epochs=0) to show the champion the rows; "
            f"{type(model).__name__} has none"
        )
    frame = as_raw_frame(new_interactions)
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy()))
    n_hold = max(1, int(round(holdout_frac * len(frame))))
    fit_part, hold = frame.iloc[order[:-n_hold]], frame.iloc[order[-n_hold:]]
    # a model with partial_fit(..., epochs=) (checked above); the base class declares none
    challenger: Any = clone_model(model).partial_fit(fit_part, new_items, new_users)  # type: ignore[attr-defined]
    champion: Any = clone_model(model).partial_fit(fit_part, new_items, new_users, epochs=0)  # type: ignore[attr-defined]
    known = hold["user_id"].isin(challenger.user_map_.ids) & hold["item_id"].isin(challenger.item_map_.ids)
    hold = hold[known]
    users = challenger.user_map_.to_index(hold["user_id"])
    items = challenger.item_map_.to_index(hold["item_id"])
    test = Interactions(
        users, items, hold["timestamp"].to_numpy(np.float64), challenger.user_map_, challenger.item_map_
    )
    history = history_of(challenger)
    split = Split(history, test.subset(np.zeros(0, np.int64)), test, "gate")
    result = champion_challenger(champion, challenger, split, metric=metric, tolerance=tolerance)
    kept: Any = result.model
    kept.partial_fit(hold, epochs=0)
    return result


def _takes_epochs(model: Recommender) -> bool:
    fit = getattr(model, "partial_fit", None)
    return fit is not None and "epochs" in inspect.signature(fit).parameters
