"""Train / valid / test splits, k-core filtering, and the time-ordered cuts of streaming evaluation.

Every split returns a `Split` whose three parts share the same id maps, so indices line up across
them. Leakage invariants (no test interaction in training; in the cold-item split no test item in
training) are tested in tests/data/test_splits.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions

__all__ = [
    "Split",
    "leave_one_out",
    "temporal_split",
    "ratio_split",
    "cold_item_split",
    "kcore_filter",
    "stream_windows",
    "holdout_rows",
    "last_row_split",
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
    ratios = (ratios[0] / total, ratios[1] / total, ratios[2] / total)
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
    users = np.unique(inter.users)
    items = np.unique(inter.items)
    user_map = IdMap(inter.user_map.to_ids(users))
    item_map = IdMap(inter.item_map.to_ids(items))
    return inter.with_maps(user_map, item_map)


# ---- streaming evaluation (see lmrec.eval.stream): time-ordered windows and held-back rows
def stream_windows(
    inter: Interactions, *, train_frac: float = 0.6, n_windows: int = 4, split_by: Literal["rows", "time"] = "rows"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Row indices of the initial part and of each window, in time order.

    Args:
        inter: the interactions.
        train_frac: share of the initial part, in (0, 1).
        n_windows: number of later windows (>= 1).
        split_by: ``"rows"`` cuts the time-ordered rows into shares (equal-sized windows; robust where
            activity grows over time, as on Amazon data), ``"time"`` cuts the time span into equal spans.

    Returns:
        ``(initial, windows)``: int64 row indices; every row is in exactly one part, and each part's
        timestamps are >= the previous part's.

    Raises:
        ValueError: bad arguments, or a part with no rows.
    """
    if not 0.0 < train_frac < 1.0:
        raise ValueError(f"train_frac must be in (0, 1), got {train_frac!r}")
    if isinstance(n_windows, bool) or not isinstance(n_windows, (int, np.integer)) or n_windows < 1:
        raise ValueError(f"n_windows must be an integer >= 1, got {n_windows!r}")
    if split_by not in ("rows", "time"):
        raise ValueError(f"split_by must be 'rows' or 'time', got {split_by!r}")
    order = np.lexsort((np.arange(len(inter)), inter.timestamps))
    n = len(order)
    if split_by == "rows":
        cuts = [int(round(n * train_frac))]
        cuts += [int(round(n * (train_frac + (1 - train_frac) * (w + 1) / n_windows))) for w in range(n_windows)]
    else:
        ts = inter.timestamps[order]
        lo, hi = float(ts[0]), float(ts[-1])
        edges = [lo + (hi - lo) * (train_frac + (1 - train_frac) * w / n_windows) for w in range(n_windows)]
        cuts = [int(np.searchsorted(ts, e, side="left")) for e in edges[:1]]
        cuts += [int(np.searchsorted(ts, e, side="left")) for e in edges[1:]] + [n]
    bounds = [0, *cuts]
    parts = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    empty = [i for i, p in enumerate(parts) if len(p) == 0]
    if empty:
        raise ValueError(
            f"stream_windows: part(s) {empty} are empty (0 = initial); use fewer windows or split_by='rows'"
        )
    return parts[0], parts[1:]


def holdout_rows(rows: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a window's row indices into kept and held-back rows.

    Args:
        rows: (n,) row indices of the window.
        share: share held back, in (0, 1); exactly ``round(share * n)`` rows are held back.
        seed: seed of ``numpy.random.default_rng``; the held-back positions are
            ``default_rng(seed).choice(n, size=round(share * n), replace=False)``.

    Returns:
        ``(kept, held)``: int64 row indices, each in the input order; together exactly ``rows``.

    Raises:
        ValueError: ``share`` outside (0, 1), or a share that would hold back no row or every row.
    """
    if isinstance(share, bool) or not isinstance(share, (int, float, np.floating)) or not 0.0 < share < 1.0:
        raise ValueError(f"forget_holdout must be in (0, 1), got {share!r}")
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    n_held = int(round(share * n))
    if not 0 < n_held < n:
        raise ValueError(
            f"forget_holdout={share!r} of window 0's {n} rows holds back {n_held}; "
            "at least one row must be held back and one kept"
        )
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(seed).choice(n, size=n_held, replace=False)] = True
    return rows[~held], rows[held]


def last_row_split(inter: Interactions) -> Split:
    """Each user's last row by time (ties: the later row in file order) as validation, the rest as
    training; a user with one row keeps it in training. The test part is empty."""
    order = inter.time_order()
    users = inter.users[order]
    counts = np.bincount(users, minlength=inter.n_users)
    last = np.r_[users[1:] != users[:-1], True] if len(users) else np.zeros(0, bool)  # last of each run
    valid = np.zeros(len(inter), bool)
    valid[order[last & (counts[users] >= 2)]] = True
    return Split(inter.subset(~valid), inter.subset(valid), inter.subset(np.zeros(len(inter), bool)), "last-row")
