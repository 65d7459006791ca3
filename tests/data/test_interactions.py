from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmrec.data import IdMap, Interactions


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u1", "u1", "u2", "u3"],
            "item_id": ["a", "b", "b", "a", "c", "a"],
            "timestamp": [30, 10, 10, 20, 5, 1],
            "rating": [5, 3, 4, 2, 1, 4],
            "event": ["buy", "view", "view", "view", "buy", "view"],
        }
    )


@pytest.fixture()
def inter(frame) -> Interactions:
    return Interactions.from_frame(frame, rating_col="rating", event_col="event")


def test_from_frame_maps_in_first_appearance_order(inter):
    assert inter.user_map.ids == ["u1", "u2", "u3"] and inter.item_map.ids == ["a", "b", "c"]
    np.testing.assert_array_equal(inter.users, [0, 1, 0, 0, 1, 2])
    np.testing.assert_array_equal(inter.items, [0, 1, 1, 0, 2, 0])
    assert inter.ratings.dtype == np.float32 and inter.timestamps.dtype == np.float64
    assert list(inter.events) == ["buy", "view", "view", "view", "buy", "view"]


def test_from_frame_missing_column_and_row_order_time(frame):
    with pytest.raises(ValueError, match=r"column 'stamp' not found"):
        Interactions.from_frame(frame, time_col="stamp")
    no_time = Interactions.from_frame(frame, time_col=None)
    np.testing.assert_array_equal(no_time.timestamps, np.arange(6))


def test_from_frame_onto_existing_maps(frame):
    users, items = IdMap(["u3", "u9"]), IdMap(["c"])
    inter = Interactions.from_frame(frame, user_map=users, item_map=items)
    assert inter.user_map.ids == ["u3", "u9", "u1", "u2"]
    assert inter.item_map.ids == ["c", "a", "b"]
    assert users.ids == ["u3", "u9"]  # the caller's map is copied, not grown


def test_length_and_range_checks(inter):
    with pytest.raises(ValueError, match=r"Interactions.items has length 2, expected 6"):
        Interactions(inter.users, inter.items[:2], inter.timestamps, inter.user_map, inter.item_map)
    with pytest.raises(ValueError, match="outside user_map"):
        Interactions(inter.users + 5, inter.items, inter.timestamps, inter.user_map, inter.item_map)


def test_subset_keeps_maps_and_extras(inter):
    sub = inter.subset(inter.users == 0)
    assert len(sub) == 3 and sub.user_map is inter.user_map
    np.testing.assert_array_equal(sub.ratings, [5, 4, 2])
    np.testing.assert_array_equal(sub.events, ["buy", "view", "view"])
    by_index = inter.subset(np.array([5, 0]))
    np.testing.assert_array_equal(by_index.items, [0, 0])
    np.testing.assert_array_equal(by_index.timestamps, [1, 30])


def test_sequences_are_time_ordered_with_ties_in_row_order(inter):
    seqs = inter.sequences()
    # u1: a@30, b@10, a@20 -> b, a, a ; u2: b@10, c@5 -> c, b ; u3: a
    assert [s.tolist() for s in seqs] == [[1, 0, 0], [2, 1], [0]]
    tie = Interactions.from_frame(pd.DataFrame({"user_id": ["u"] * 3, "item_id": list("zyx"), "timestamp": [1] * 3}))
    assert tie.sequences()[0].tolist() == [0, 1, 2]
    grown = Interactions(inter.users, inter.items, inter.timestamps, IdMap(["u1", "u2", "u3", "u4"]), inter.item_map)
    assert grown.sequences()[3].tolist() == []  # users without rows get empty arrays


def test_to_csr_values(inter):
    binary = inter.to_csr()
    assert binary.shape == (3, 3)
    # u1 has a twice (rows 0 and 3): binary 1, count 2, ratings 5 + 2 = 7
    assert binary[0, 0] == 1 and inter.to_csr("count")[0, 0] == 2 and inter.to_csr("ratings")[0, 0] == 7
    assert binary.nnz == 5  # (u1,a) (u1,b) (u2,b) (u2,c) (u3,a)
    assert inter.to_csr("weights")[1, 2] == 1  # no weights: ones
    no_ratings = Interactions.from_frame(pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": [0]}))
    with pytest.raises(ValueError, match="no ratings"):
        no_ratings.to_csr("ratings")
    np.testing.assert_array_equal(inter.item_counts(), [3, 2, 1])
    np.testing.assert_array_equal(inter.user_counts(), [3, 2, 1])


def test_concat_merges_maps_and_keeps_left_indices(inter):
    other = Interactions.from_frame(
        pd.DataFrame(
            {
                "user_id": ["u4", "u1"],
                "item_id": ["d", "a"],
                "timestamp": [7, 8],
                "rating": [1, 2],
                "event": ["buy", "buy"],
            }
        ),
        rating_col="rating",
        event_col="event",
    )
    both = inter.concat(other)
    assert both.user_map.ids == ["u1", "u2", "u3", "u4"] and both.item_map.ids == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(both.users[-2:], [3, 0])
    np.testing.assert_array_equal(both.items[-2:], [3, 0])
    np.testing.assert_array_equal(both.ratings, [5, 3, 4, 2, 1, 4, 1, 2])
    with pytest.raises(ValueError, match="cannot concat: ratings present on one side only"):
        inter.concat(Interactions.from_frame(pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": [0]})))


def test_save_load_round_trip(inter, tmp_path):
    inter.meta["source"] = "unit"
    inter.save(tmp_path / "inter")
    back = Interactions.load(tmp_path / "inter")
    for name in ("users", "items", "timestamps", "ratings"):
        np.testing.assert_array_equal(getattr(back, name), getattr(inter, name))
    assert list(back.events) == list(inter.events) and back.weights is None and back.scenarios is None
    assert back.user_map == inter.user_map and back.item_map == inter.item_map
    assert back.meta == {"source": "unit"}
    pd.testing.assert_frame_equal(back.to_frame(), inter.to_frame())
