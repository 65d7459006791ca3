"""Tiny deterministic models and a hand-made split for the lmrec.eval tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lmrec.data import Dataset, IdMap, Interactions, Split
from lmrec.models.base import Recommender


class FixedScores(Recommender):
    """Returns rows of a fixed (n_users, n_items) score matrix; learns nothing."""

    def __init__(self, scores: np.ndarray | None = None) -> None:
        self.scores = scores

    def _fit(self, dataset: Dataset) -> None:
        self.calls_ = 0

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        self.calls_ += 1
        return self.scores[np.atleast_1d(user_idx)]


class RecordingModel(Recommender):
    """Sequential-flagged model whose fit takes ``valid``; scores favour low item indices."""

    is_sequential = True

    def __init__(self) -> None:
        pass

    def fit(self, dataset: Dataset, valid: Split | None = None) -> RecordingModel:  # type: ignore[override]
        self.valid_seen_ = valid
        super().fit(dataset)
        return self

    def _fit(self, dataset: Dataset) -> None:
        self.n_train_ = len(dataset.interactions)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        return np.tile(-np.arange(self.n_items, dtype=np.float32), (len(np.atleast_1d(user_idx)), 1))


# (user, item, part, scenario); ids map to indices u0..u3 -> 0..3 and i0..i5 -> 0..5
ROWS = [
    ("u0", "i0", "train", "home"),
    ("u0", "i1", "valid", "home"),
    ("u0", "i2", "test", "home"),
    ("u0", "i3", "test", "search"),
    ("u1", "i1", "train", "home"),
    ("u1", "i2", "train", "home"),
    ("u1", "i3", "valid", "search"),
    ("u1", "i4", "test", "home"),
    ("u2", "i4", "train", "home"),
    ("u2", "i5", "train", "home"),
    ("u2", "i4", "test", "search"),  # a repeat: the train item 4 is also u2's test item
    ("u3", "i0", "train", "home"),
]

# u0 test: masked 0, 1 -> ranked [5, 2, 4, 3]; u1 test: masked 1, 2, 3 -> [5, 4, 0];
# u2 test: masked 5 (4 is relevant, never masked) -> [4, 3, 2, 1, 0]
SCORES = np.array(
    [
        [9, 8, 5, 1, 2, 7],
        [1, 9, 8, 2, 3, 4],
        [1, 2, 3, 4, 9, 8],
        [1, 1, 1, 1, 1, 1],
    ],
    dtype=np.float32,
)


def tiny_split(with_scenarios: bool = True) -> tuple[Dataset, Split]:
    frame = pd.DataFrame(ROWS, columns=["user_id", "item_id", "part", "scenario"])
    frame["timestamp"] = np.arange(len(frame), dtype=float)
    inter = Interactions.from_frame(
        frame,
        scenario_col="scenario" if with_scenarios else None,
        user_map=IdMap(["u0", "u1", "u2", "u3"]),
        item_map=IdMap([f"i{i}" for i in range(6)]),
    )
    part = frame["part"].to_numpy()
    split = Split(inter.subset(part == "train"), inter.subset(part == "valid"), inter.subset(part == "test"), "hand")
    return Dataset(inter, name="tiny"), split


def random_split(n_users: int = 40, n_items: int = 120, per_user: int = 12, seed: int = 0) -> tuple[Dataset, Split]:
    """Random interactions with a popularity skew, split leave-one-out."""
    from lmrec.data import leave_one_out

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1)
    p /= p.sum()
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False, p=p)
        rows += [(f"u{u}", f"i{i}", t) for t, i in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    inter = Interactions.from_frame(frame, item_map=IdMap([f"i{i}" for i in range(n_items)]))
    return Dataset(inter, name="random"), leave_one_out(inter)
