"""Split invariants on the bundled MovieLens 100K, and the counting rules on small known cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmrec.data import (
    Interactions,
    cold_item_split,
    kcore_filter,
    leave_one_out,
    ratio_split,
    temporal_split,
)


def _rows(inter: Interactions) -> set[tuple[str, str, float]]:
    f = inter.to_frame()
    return set(zip(f["user_id"], f["item_id"], f["timestamp"]))


@pytest.fixture(scope="module")
def inter(ml100k) -> Interactions:
    return ml100k.interactions


@pytest.mark.parametrize("make", [leave_one_out, ratio_split, temporal_split, cold_item_split])
def test_no_test_row_in_train_and_rows_partitioned(inter, make):
    split = make(inter)
    assert split.train.user_map is inter.user_map and split.test.item_map is inter.item_map
    train, valid, test = _rows(split.train), _rows(split.valid), _rows(split.test)
    assert not (test & train) and not (valid & train) and not (test & valid)
    assert sum(split.sizes().values()) == len(inter) == 100_000


def test_leave_one_out_holds_out_the_two_latest(inter):
    split = leave_one_out(inter)
    # independent reference: each user's rows by (timestamp, file row), last -> test, second last -> valid
    f = pd.DataFrame({"u": inter.users, "t": inter.timestamps, "row": np.arange(len(inter))})
    f = f.sort_values(["u", "t", "row"], kind="stable")
    last = f.groupby("u").nth(-1)
    second = f.groupby("u").nth(-2)
    assert (np.bincount(inter.users) >= 3).all()  # every ml-100k user has at least 20 ratings
    np.testing.assert_array_equal(np.bincount(split.test.users, minlength=943), np.ones(943))
    np.testing.assert_array_equal(np.bincount(split.valid.users, minlength=943), np.ones(943))
    test_rows = set(zip(split.test.users, split.test.items, split.test.timestamps))
    assert test_rows == set(zip(inter.users[last["row"]], inter.items[last["row"]], inter.timestamps[last["row"]]))
    valid_rows = set(zip(split.valid.users, split.valid.items, split.valid.timestamps))
    assert valid_rows == set(
        zip(inter.users[second["row"]], inter.items[second["row"]], inter.timestamps[second["row"]])
    )
    latest_train = np.full(943, -np.inf)
    np.maximum.at(latest_train, split.train.users, split.train.timestamps)
    assert (split.valid.timestamps >= latest_train[split.valid.users]).all()


def test_leave_one_out_small_users():
    frame = pd.DataFrame(
        {"user_id": ["a", "b", "b", "c", "c", "c"], "item_id": list("xxyxyz"), "timestamp": [1, 1, 2, 3, 2, 1]}
    )
    split = leave_one_out(Interactions.from_frame(frame))
    # a: one row -> train; b: two rows -> y test; c: z@1 train, y@2 valid, x@3 test
    assert split.sizes() == {"train": 3, "valid": 1, "test": 2}
    assert sorted(split.test.to_frame()["item_id"]) == ["x", "y"]
    assert split.valid.to_frame()["item_id"].tolist() == ["y"]


def _expected_ratio_counts(n: int) -> tuple[int, int, int]:
    """RecBole's rule for 8:1:1, written out: floor shares, then a part that rounds to zero gets one row."""
    valid, test = int(0.1 * n), int(0.1 * n)
    train = n - valid - test
    if train > 1 and 0 < 0.1 * n < 1:
        test, train = test + 1, train - 1
    if train > 1 and 0 < 0.1 * n < 1:
        valid, train = valid + 1, train - 1
    return train, valid, test


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, (1, 0, 0)),
        (2, (1, 0, 1)),
        (3, (1, 1, 1)),
        (5, (3, 1, 1)),
        (10, (8, 1, 1)),
        (20, (16, 2, 2)),
        (29, (25, 2, 2)),
    ],
)
def test_ratio_counting_rule_small_users(n, expected):
    assert _expected_ratio_counts(n) == expected
    frame = pd.DataFrame({"user_id": ["u"] * n, "item_id": [f"i{k}" for k in range(n)], "timestamp": range(n)})
    split = ratio_split(Interactions.from_frame(frame), order="time")
    assert tuple(split.sizes().values()) == expected
    if expected[2]:  # time order: the test rows are the latest
        assert split.test.timestamps.min() > split.train.timestamps.max()


@pytest.mark.parametrize("order", ["random", "time"])
def test_ratio_split_sizes_per_user_on_ml100k(inter, order):
    split = ratio_split(inter, (0.8, 0.1, 0.1), order=order, random_state=3)
    n = np.bincount(inter.users, minlength=943)
    got = np.stack([np.bincount(p.users, minlength=943) for p in (split.train, split.valid, split.test)], axis=1)
    want = np.array([_expected_ratio_counts(int(k)) for k in n])
    np.testing.assert_array_equal(got, want)
    # e.g. the first user (196) has 39 ratings: floor(0.1 * 39) = 3 valid, 3 test, 39 - 6 = 33 train
    assert n[0] == 39 and tuple(got[0]) == (33, 3, 3)


def test_temporal_split_sizes(inter):
    split = temporal_split(inter)
    assert split.sizes() == {"train": 80_000, "valid": 10_000, "test": 10_000}
    assert split.train.timestamps.max() <= split.valid.timestamps.min()
    assert split.valid.timestamps.max() <= split.test.timestamps.min()


def test_ratio_split_rejects_bad_arguments(inter):
    with pytest.raises(ValueError, match="order must be 'random' or 'time', got 'sorted'"):
        ratio_split(inter, order="sorted")
    with pytest.raises(ValueError, match="three non-negative shares"):
        ratio_split(inter, (0.5, 0.5))  # type: ignore[arg-type]


def test_cold_item_split_has_no_test_item_in_train(inter):
    split = cold_item_split(inter, test_frac=0.1, valid_frac=0.1, random_state=0)
    train_items = set(split.train.items.tolist())
    test_items, valid_items = set(split.test.items.tolist()), set(split.valid.items.tolist())
    assert not (test_items & train_items) and not (valid_items & train_items) and not (test_items & valid_items)
    assert len(test_items) == round(0.1 * 1682) == 168  # all 1682 items occur in ml-100k
    counts = inter.item_counts()
    assert len(split.test) == counts[list(test_items)].sum()  # every row of a test item is in test
    with pytest.raises(ValueError, match="test_frac and valid_frac"):
        cold_item_split(inter, test_frac=0.0)


@pytest.mark.parametrize("k", [5, 50])
def test_kcore_leaves_every_user_and_item_with_at_least_k(inter, k):
    core = kcore_filter(inter, user_k=k, item_k=k)
    assert core.user_counts().min() >= k and core.item_counts().min() >= k
    assert len(core.user_map) == len(np.unique(core.users))  # maps rebuilt densely
    assert len(kcore_filter(core, k, k)) == len(core)  # a fixed point
    assert _rows(core) <= _rows(inter)
    # nothing of the core was dropped needlessly: every input row between a core user and a core item is kept
    f = inter.to_frame()
    inside = f["user_id"].isin(core.user_map.ids) & f["item_id"].isin(core.item_map.ids)
    assert int(inside.sum()) == len(core)


def test_kcore_known_answer():
    # a triangle of 2-degree nodes plus a pendant user d who rated only x: the 2-core drops d
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c", "c", "d"],
            "item_id": ["x", "y", "y", "z", "z", "x", "x"],
            "timestamp": range(7),
        }
    )
    core = kcore_filter(Interactions.from_frame(frame), user_k=2, item_k=2)
    assert len(core) == 6 and "d" not in core.user_map and core.user_map.ids == ["a", "b", "c"]
    # users a, b, c have 2 rows and d has 1: none reaches 3, so nothing is left
    assert len(kcore_filter(Interactions.from_frame(frame), user_k=3, item_k=1)) == 0
