"""The re-ranker's features, its learning from closed lists, and the replay simulator on the tiny shop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import make_settings

from lmrec.serve.app import create_app
from lmrec.serve.feedback.features import FEATURES, candidate_features, category_share, category_share_codes
from lmrec.serve.feedback.simulate import replay


def test_candidate_features_by_hand() -> None:
    x = candidate_features(
        np.array([0.9, 0.5, 0.1]),
        has_query=True,
        popularity=np.array([3.0, 0.0, 1.0]),
        max_popularity=3.0,
        fresh=np.array([False, True, False]),
        times_shown=np.array([0, 1, 2]),
        affinity=np.array([0.5, -2.0, 0.0]),
        category=np.array([1.0, 0.0, 0.5]),
    )
    col = {f: x[:, i].tolist() for i, f in enumerate(FEATURES)}
    assert col["bias"] == [1, 1, 1]
    assert col["score"] == pytest.approx([1.0, 0.5, 0.0])  # (s - 0.1) / 0.8
    assert col["rank"] == pytest.approx([1.0, 1 / np.log2(3), 0.5])  # 1 / log2(2 + rank)
    assert col["query_match"] == col["score"]
    assert col["popularity"] == pytest.approx([1.0, 0.0, np.log(2) / np.log(4)])  # log1p(c) / log1p(3)
    assert col["fresh"] == [0, 1, 0]
    assert col["novelty"] == pytest.approx([1.0, 0.5, 0.25])  # 0.5 ** times shown
    assert col["affinity"] == pytest.approx([0.5, -1.0, 0.0])  # clipped to [-1, 1]
    assert col["category"] == pytest.approx([1.0, 0.0, 0.5])
    no_query = candidate_features(
        np.array([1.0, 1.0]),
        has_query=False,
        popularity=np.zeros(2),
        max_popularity=0.0,
        fresh=np.zeros(2),
        times_shown=np.zeros(2),
    )
    assert no_query[:, FEATURES.index("score")].tolist() == [1.0, 1.0]  # equal scores: all ones
    assert no_query[:, FEATURES.index("query_match")].tolist() == [0.0, 0.0]


def test_category_share_handles_lists_and_missing_values() -> None:
    # recent: shoes, [shoes, sale], None (ignored), books -> 3 usable events
    share = category_share(["shoes", ["sale"], None, "toys"], ["shoes", ["shoes", "sale"], None, "books"])
    assert share.tolist() == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])
    assert category_share(["shoes"], []).tolist() == [0.0]


def test_category_share_of_codes_equals_the_share_of_values() -> None:
    # codes: shoes 0, books 1, toys 2, absent -1; recent shoes, shoes, absent (ignored), books -> 3 events
    cands, recent = np.array([0, 1, -1, 2]), np.array([0, 0, -1, 1])
    share = category_share_codes(cands, recent)
    assert share.tolist() == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])
    names = {0: "shoes", 1: "books", 2: "toys", -1: None}
    by_value = category_share([names[int(c)] for c in cands], [names[int(c)] for c in recent])
    np.testing.assert_array_equal(share, by_value)
    assert category_share_codes(cands, np.array([-1, -1])).tolist() == [0.0] * 4


def test_the_greedy_reranker_learns_to_stop_repeating_ignored_items(vec_dir: Path) -> None:
    # u1 ignores everything it is shown; the others click only items they were never shown: the model
    # learns a positive weight on novelty, so u1's next list mostly brings items it has not seen yet
    settings = make_settings(vec_dir, feedback={"reranker": "greedy", "prior_score_weight": 0.01, "l2": 0.1})
    with TestClient(create_app(settings)) as client:
        service = client.app.state.host.service  # type: ignore[attr-defined]
        first = client.post("/recommend", json={"user_id": "u1", "k": 3}).json()
        first_ids = [i["item_id"] for i in first["items"]]
        # the others click the first item of each list they were never shown before, and nothing else
        seen: dict[str, set[str]] = {}
        for n in range(4):
            for user in ("u2", "u3", "u4", "u5"):
                a = client.post("/recommend", json={"user_id": user, "k": 3}).json()
                shown = [i["item_id"] for i in a["items"]]
                fresh = [i for i in shown if i not in seen.setdefault(user, set())]
                seen[user].update(shown)
                if fresh:
                    event = {"event_id": f"{user}{n}", "user_id": user, "item_id": fresh[0], "type": "click"}
                    client.post("/events", json={"events": [{**event, "request_id": a["request_id"]}]})
        client.post("/recommend", json={"user_id": "u1", "k": 3})  # closes u1's first list (no click)
        assert service.feedback.model.mean[FEATURES.index("novelty")] > 0
        after = client.post("/recommend", json={"user_id": "u1", "k": 3}).json()
        # the static ranking would show the same three again (nothing was clicked); this one brings two new ones
        assert len(set(first_ids) & {i["item_id"] for i in after["items"]}) <= 1


def test_replay_on_the_tiny_shop_known_answer(vec_dir: Path) -> None:
    with TestClient(create_app(make_settings(vec_dir))) as client:
        service = client.app.state.host.service  # type: ignore[attr-defined]
        result = replay(service, {"u1": {"b2", "nope"}}, ["u1"], rounds=3, k=12, seed=0)
        # u1 saw s1 and t1 in training: 10 items are shown; b2 is clicked once, then excluded as seen
        assert (result.clicks, result.lists, result.distinct_items) == (1, 3, 10)
        assert result.clicks_per_round == [1, 0, 0]
        assert client.get("/users/u1").json()["recent_events"][0]["item_id"] == "b2"
        assert 'lmrec_feedback_responses_total{matched="yes"} 1' in client.get("/metrics").text
