"""Evaluation scores users in chunks: no (n_users x n_items) matrix, and the chunk size never
changes a figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lmrec.data import IdMap, Interactions, leave_one_out
from lmrec.eval import evaluate


class SpyScorer:
    """Fixed random scores per (user, item); records how many users each ``score_all`` call got."""

    def __init__(self, n_users: int, n_items: int) -> None:
        self.scores = np.random.default_rng(3).random((n_users, n_items)).astype(np.float32)
        self.calls: list[int] = []

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        self.calls.append(len(user_idx))
        return self.scores[user_idx]


def _split():
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", float(t)) for u in range(50) for t, i in enumerate(rng.choice(40, 6, replace=False))]
    inter = Interactions.from_frame(
        pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]),
        user_map=IdMap(f"u{u}" for u in range(50)),
        item_map=IdMap(f"i{i}" for i in range(40)),
    )
    return leave_one_out(inter)


def test_no_call_scores_more_users_than_the_chunk_and_every_chunk_size_agrees() -> None:
    split = _split()
    results = {}
    for chunk in (1, 7, 50, 10_000):
        spy = SpyScorer(50, 40)
        res = evaluate(spy, split, ks=(5, 10), batch_size=chunk)
        assert max(spy.calls) <= chunk and sum(spy.calls) == res.n_users == 50
        results[chunk] = res
    for chunk in (7, 50, 10_000):
        assert results[chunk].metrics == results[1].metrics
        for key, values in results[1].per_user.items():
            np.testing.assert_array_equal(results[chunk].per_user[key], values, err_msg=key)
