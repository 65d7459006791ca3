"""Train / valid / test splits and k-core filtering.

Every split returns a `Split` whose three parts share the same id maps, so indices line up across
them. Leakage invariants (no test interaction in training; in the cold-item split no test item in
training) are tested in tests/data/test_splits.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmrec.data.interactions import Interactions

__all__ = [
    "Split",
    "leave_one_out",
    "temporal_split",
    "ratio_split",
    "cold_item_split",
    "kcore_filter",
]


@dataclass(frozen=True, eq=False)
class Split:
    """Three interaction sets over one pair of id maps.

    Attributes:
        train: what models fit on.
        valid: for early stopping and model selection (may be empty).
        test: held out for the final figures.
        name: how the split was made ("loo", "ratio", ...).
    """

    train: Interactions
    valid: Interactions
    test: Interactions
    name: str = "split"

    def __post_init__(self) -> None:
        for part in ("valid", "test"):
            other = getattr(self, part)
            if other.user_map is not self.train.user_map and other.user_map != self.train.user_map:
                raise ValueError(f"Split.{part} uses a different user map from train")
            if other.item_map is not self.train.item_map and other.item_map != self.train.item_map:
                raise ValueError(f"Split.{part} uses a different item map from train")

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


def _split_from_labels(inter: Interactions, labels: np.ndarray, name: str) -> Split:
    """labels: 0 train, 1 valid, 2 test (per row)."""
    return Split(inter.subset(labels == 0), inter.subset(labels == 1), inter.subset(labels == 2), name)


def leave_one_out(inter: Interactions) -> Split:
    """Per user by time: last interaction is test, second-last valid, the rest train.

    Ties in time keep file order. Users with two interactions give one to train and one to test;
    users with one interaction keep it in train.
    """
    order = inter.time_order()
    users = inter.users[order]
    labels_sorted = np.zeros(len(order), dtype=np.int8)
    # position from the end within each user's run of rows
    counts = np.bincount(users, minlength=inter.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(order)) - starts[users]
    from_end = counts[users] - 1 - pos
    n = counts[users]
    labels_sorted[(from_end == 0) & (n >= 2)] = 2
    labels_sorted[(from_end == 1) & (n >= 3)] = 1
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return _split_from_labels(inter, labels, "loo")


def _ratio_counts(total: int, ratios: tuple[float, ...]) -> list[int]:
    """How many rows each part gets; matches RecBole's per-group split so results are comparable.

    Parts after the first get floor(ratio * total); a part that would round to zero but has a
    non-zero share gets one row, while training keeps at least one row.
    """
    counts = [int(r * total) for r in ratios]
    counts[0] = total - sum(counts[1:])
    for i in range(1, len(ratios)):
        if counts[0] <= 1:
            break
        if 0 < ratios[-i] * total < 1:
            counts[-i] += 1
            counts[0] -= 1
    return counts


def ratio_split(
    inter: Interactions,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    *,
    order: str = "random",
    group_by_user: bool = True,
    random_state: int | None = 0,
) -> Split:
    """Split each user's interactions by ratio (RecBole's RS with group_by=user).

    Args:
        inter: the interactions.
        ratios: train / valid / test shares; normalised to sum to one.
        order: ``"random"`` shuffles rows first (RecBole's RO); ``"time"`` keeps time order (TO).
        group_by_user: split within each user (True) or over all rows at once (False).
        random_state: seed for the shuffle.
    """
    if order not in ("random", "time"):
        raise ValueError(f"order must be 'random' or 'time', got {order!r}")
    total = float(sum(ratios))
    if len(ratios) != 3 or total <= 0 or min(ratios) < 0:
        raise ValueError(f"ratios must be three non-negative shares, got {ratios}")
    ratios = tuple(r / total for r in ratios)
    if order == "random":
        rows = np.random.default_rng(random_state).permutation(len(inter))
    else:
        rows = np.lexsort((np.arange(len(inter)), inter.timestamps))
    labels = np.zeros(len(inter), dtype=np.int8)
    if group_by_user:
        # stable sort by user keeps the shuffled (or time) order within each user
        by_user = rows[np.argsort(inter.users[rows], kind="stable")]
        counts = np.bincount(inter.users, minlength=inter.n_users)
        start = 0
        for c in counts:
            if c:
                n_train, n_valid, _ = _ratio_counts(int(c), ratios)
                block = by_user[start : start + c]
                labels[block[n_train : n_train + n_valid]] = 1
                labels[block[n_train + n_valid :]] = 2
            start += c
    else:
        n_train, n_valid, _ = _ratio_counts(len(inter), ratios)
        labels[rows[n_train : n_train + n_valid]] = 1
        labels[rows[n_train + n_valid :]] = 2
    return _split_from_labels(inter, labels, f"ratio-{order}")


def temporal_split(inter: Interactions, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Split:
    """Global split by time: the earliest share trains, the latest tests (ties keep file order)."""
    return ratio_split(inter, ratios, order="time", group_by_user=False)


def cold_item_split(
    inter: Interactions,
    test_frac: float = 0.1,
    valid_frac: float = 0.1,
    *,
    random_state: int | None = 0,
) -> Split:
    """Hold out whole items: every interaction of a test item is in test, none in train.

    Items are drawn at random; ``test_frac`` and ``valid_frac`` are shares of the items that occur
    in ``inter``. Models must score test items from side information alone.
    """
    if not (0 < test_frac < 1 and 0 <= valid_frac < 1 and test_frac + valid_frac < 1):
        raise ValueError(f"test_frac and valid_frac must be in (0, 1) with sum < 1, got {test_frac}, {valid_frac}")
    present = np.flatnonzero(inter.item_counts() > 0)
    perm = np.random.default_rng(random_state).permutation(present)
    n_test = max(1, int(round(test_frac * len(present))))
    n_valid = int(round(valid_frac * len(present)))
    item_label = np.zeros(inter.n_items, dtype=np.int8)
    item_label[perm[:n_test]] = 2
    item_label[perm[n_test : n_test + n_valid]] = 1
    return _split_from_labels(inter, item_label[inter.items], "cold-items")


def kcore_filter(inter: Interactions, user_k: int = 5, item_k: int = 5, *, max_rounds: int = 100) -> Interactions:
    """Repeatedly drop users with fewer than ``user_k`` and items with fewer than ``item_k`` rows.

    The id maps are rebuilt over what remains (indices are dense again).
    """
    keep = np.ones(len(inter), dtype=bool)
    for _ in range(max_rounds):
        u = np.bincount(inter.users[keep], minlength=inter.n_users)
        i = np.bincount(inter.items[keep], minlength=inter.n_items)
        new_keep = keep & (u[inter.users] >= user_k) & (i[inter.items] >= item_k)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    kept = inter.subset(keep)
    return _reindex(kept)


def _reindex(inter: Interactions) -> Interactions:
    """Rebuild id maps so that only present users and items remain (first appearance order kept)."""
    from lmrec.data.idmap import IdMap

    users = np.unique(inter.users)
    items = np.unique(inter.items)
    user_map = IdMap(inter.user_map.to_ids(users))
    item_map = IdMap(inter.item_map.to_ids(items))
    return inter.with_maps(user_map, item_map)
