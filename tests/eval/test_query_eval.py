"""Query-aware evaluation on a hand-built two-dimensional model with known rankings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmrec.data import Dataset, IdMap, Interactions, ItemCatalog, Split
from lmrec.eval import paired_test
from lmrec.eval.query_eval import build_queries, evaluate_with_queries, tune_blend

LOG3 = 1 / np.log2(3)  # NDCG of a single relevant item at rank 2
# items: 0 = (1, 0), 1 = (0, 1), 2 = (-1, 0), 3 = (0.6, 0.8), 4 = (0, -1)
ITEMS = np.array([[1, 0], [0, 1], [-1, 0], [0.6, 0.8], [0, -1]], dtype=np.float32)
GENRE = ["a", "b", "c", "b", ""]  # item 4 has no genre


class FakeVectorModel:
    n_items = len(ITEMS)

    def item_vectors(self) -> np.ndarray:
        return ITEMS

    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        table = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
        return table[np.asarray(user_idx)]

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        table = {"genre: a": [1, 0], "genre: b": [0, 1], "genre: c": [-1, 0]}
        return np.array([table[t] for t in texts], dtype=np.float32)


def _inter(pairs: list[tuple[int, int]], users: IdMap, items: IdMap) -> Interactions:
    frame = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u, _ in pairs],
            "item_id": [f"i{i}" for _, i in pairs],
            "timestamp": np.arange(len(pairs), dtype=float),
        }
    )
    return Interactions.from_frame(frame, user_map=users, item_map=items)


def _data() -> tuple[Dataset, Split]:
    users, items = IdMap(f"u{u}" for u in range(3)), IdMap(f"i{i}" for i in range(5))
    train = _inter([(0, 2), (1, 0), (2, 0)], users, items)
    test = _inter([(0, 1), (1, 3), (2, 4)], users, items)
    empty = train.subset(np.zeros(0, dtype=np.int64))
    catalog = ItemCatalog(
        pd.DataFrame({"title": [f"t{i}" for i in range(5)], "genre": GENRE}, index=[f"i{i}" for i in range(5)]),
        text_fields=["title"],
        categorical=["genre"],
    )
    return Dataset(train, catalog), Split(train, empty, test, "hand")


def test_known_rankings_per_mode() -> None:
    data, split = _data()
    res = evaluate_with_queries(FakeVectorModel(), split, data, "genre", blend=0.6, ks=(1, 10))
    # user 2's held-out item has no genre: skipped
    assert res.n_cases == 2 and res.n_skipped == 1
    assert res.examples == [("i1", "genre: b"), ("i3", "genre: b")]
    # profile: u0 = (1, 0), train item 2 masked: scores i0 1, i1 0, i3 0.6, i4 0 -> i1 ranks 3rd (tie with i4
    # broken by index) -> 1/log2(4) = 0.5; u1 = (0, 1), i0 masked: i1 1, i3 0.8 -> i3 2nd -> 1/log2(3)
    profile = res.results["profile"]
    np.testing.assert_allclose(profile.per_user["ndcg@10"], [0.5, LOG3])
    # query "genre: b" = (0, 1) for both: u0 gets i1 first (1.0); u1 gets i1 then i3 (1/log2(3))
    query = res.results["query"]
    np.testing.assert_allclose(query.per_user["ndcg@10"], [1.0, LOG3])
    np.testing.assert_allclose(query.metrics["recall@1"], 0.5)
    # blend 0.6: u0 -> (0.4, 0.6) / |.| = (0.555, 0.832): i0 .555, i1 .832, i3 .999 -> i1 2nd;
    # u1 -> (0, 1): as the query -> i3 2nd
    blend = res.results["query+profile"]
    np.testing.assert_allclose(blend.per_user["ndcg@10"], [LOG3, LOG3], rtol=1e-6)
    np.testing.assert_array_equal(blend.users, [0, 1])
    test = paired_test(query, profile)
    np.testing.assert_allclose(test["mean_diff"], 0.25, rtol=1e-6)  # ((1 - 0.5) + 0) / 2


def test_tune_blend_uses_valid_cases_only() -> None:
    data, split = _data()
    as_valid = Split(split.train, split.test, split.valid, "hand-valid")
    best, scores = tune_blend(FakeVectorModel(), as_valid, data, "genre", grid=(0.0, 0.6, 1.0))
    # alpha 0 is the profile (0.5 + LOG3) / 2; 0.6 gives LOG3; 1.0 the query (1 + LOG3) / 2
    np.testing.assert_allclose(
        [scores[0.0], scores[0.6], scores[1.0]], [(0.5 + LOG3) / 2, LOG3, (1 + LOG3) / 2], rtol=1e-6
    )
    assert best == 1.0
    with pytest.raises(ValueError, match="non-empty grid"):
        tune_blend(FakeVectorModel(), as_valid, data, "genre", grid=())


def test_bad_inputs_are_named() -> None:
    data, split = _data()
    with pytest.raises(ValueError, match=r"query_field 'genres' is not an item field; fields: \['title', 'genre'\]"):
        build_queries(data, np.array([0]), "genres")
    with pytest.raises(ValueError, match="query_field 'title' would reveal the held-out item"):
        build_queries(data, np.array([0]), "title")
    with pytest.raises(ValueError, match=r"unknown mode\(s\) \['both'\]"):
        evaluate_with_queries(FakeVectorModel(), split, data, "genre", modes=("both",))
    with pytest.raises(ValueError, match="blend must be in \\[0, 1\\], got 1.5"):
        evaluate_with_queries(FakeVectorModel(), split, data, "genre", blend=1.5)
    with pytest.raises(
        TypeError, match=r"object has no item_vectors\(\); query-aware evaluation needs a VectorRecommender"
    ):
        evaluate_with_queries(object(), split, data, "genre")
    assert build_queries(data, np.array([1, 4]), "genre", template="movies in {field}: {value}") == [
        "movies in genre: b",
        "",
    ]
