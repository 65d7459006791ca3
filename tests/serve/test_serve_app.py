"""The HTTP API over a Popularity bundle (text space, hashing encoder)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, POPULARITY_ORDER, make_settings

from lmrec.encoders.fake import HashingEncoder
from lmrec.serve.app import create_app
from lmrec.serve.ranking import Candidates, RankContext


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def click(client: TestClient, user: str, items: list[str], prefix: str = "e", kind: str = "click") -> dict:
    body = {
        "events": [
            {"event_id": f"{prefix}{n}", "user_id": user, "item_id": i, "type": kind} for n, i in enumerate(items)
        ]
    }
    response = client.post("/events", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_health_openapi_and_version(pop_client: TestClient) -> None:
    health = pop_client.get("/health").json()
    assert (health["status"], health["model"], health["items"], health["index"]) == ("ok", "Popularity", 12, "flat")
    assert health["index_tuning"] is None  # exact search: nothing to tune
    assert health["space"] == "text:hashing-32-0"
    schema = pop_client.get("/openapi.json").json()
    for path in (
        "/recommend",
        "/events",
        "/items/{item_id}",
        "/users/{user_id}",
        "/items/{item_id}/similar",
        "/explain",
        "/health",
        "/metrics",
    ):
        assert path in schema["paths"], path
    assert {"RecommendRequest", "RecommendResponse", "EventsRequest", "EventsResponse", "ScoredItem"} <= set(
        schema["components"]["schemas"]
    )


def test_unknown_user_without_query_gets_popularity(pop_client: TestClient) -> None:
    response = pop_client.post("/recommend", json={"user_id": "stranger", "k": 6})
    assert ids(response) == POPULARITY_ORDER
    body = response.json()
    assert body["strategy"] == "popularity" and body["known_user"] is False
    assert [i["score"] for i in body["items"]] == [4, 3, 2, 2, 1, 1]
    assert body["model_version"].startswith("pop-") and len(body["model_version"]) == 16
    assert body["items"][0]["reason"] == "popular with other users"


def test_known_user_gets_the_model_ranking_without_seen_items(pop_client: TestClient) -> None:
    # u1 saw s1, t1; Popularity then ranks s2 (2), b1 (2), s3 (1), t2 (1), then items it never saw
    response = pop_client.post("/recommend", json={"user_id": "u1", "k": 5})
    assert ids(response)[:4] == ["s2", "b1", "s3", "t2"]
    assert ids(response)[4] in {"s4", "t3", "t4", "b2", "b3", "b4"}
    assert response.json()["strategy"] == "model"
    assert ids(pop_client.post("/recommend", json={"user_id": "u1", "k": 2, "exclude_seen": False})) == ["s1", "t1"]


def test_query_alone_ranks_matching_items_first(pop_client: TestClient) -> None:
    response = pop_client.post("/recommend", json={"query": "history of rome book", "k": 3})
    assert ids(response)[0] == "b4"
    assert response.json()["strategy"] == "query"
    assert response.json()["items"][0]["reason"] == 'matches "history of rome book"'


def test_events_change_the_next_recommendation(pop_client: TestClient) -> None:
    before = ids(pop_client.post("/recommend", json={"user_id": "u1", "k": 4}))
    assert click(pop_client, "u1", ["b2", "b3"]) == {"accepted": 2, "duplicates": 0, "rejected": []}
    response = pop_client.post("/recommend", json={"user_id": "u1", "k": 4})
    after = ids(response)
    assert response.json()["strategy"] == "model+online"
    assert after != before
    assert "b2" not in after and "b3" not in after  # just seen
    assert after[0] in {"b1", "b4"}  # the remaining books now lead
    assert "because you clicked" in response.json()["items"][0]["reason"]


def test_a_bad_event_rejects_its_whole_batch_and_retries_are_duplicates(pop_client: TestClient) -> None:
    good = [
        {"event_id": "a", "user_id": "new", "item_id": "t3", "type": "view", "timestamp": 1700000000},
        {
            "event_id": "e",
            "user_id": "new",
            "item_id": "t4",
            "type": "rating",
            "value": 5,
            "timestamp": "2024-01-01T00:00:00Z",
        },
    ]
    bad = [
        {"event_id": "a", "user_id": "new", "item_id": "t3", "type": "view"},
        {"event_id": "b", "user_id": "new", "item_id": "nope", "type": "view"},
        {"event_id": "c", "user_id": "new", "item_id": "t3", "type": "teleport"},
        {"event_id": "d", "user_id": "new", "item_id": "t4", "type": "rating"},
    ]
    response = pop_client.post("/events", json={"events": [good[0], *bad, good[1]]})
    assert response.status_code == 422
    out = response.json()
    assert out["field"] == "events[1].event_id"
    assert out["detail"] == "events[1].event_id: 'a' repeats events[0] (and 3 more); the batch was not logged"
    assert [e["field"] for e in out["errors"]] == [
        "events[1].event_id",
        "events[2].item_id",
        "events[3].type",
        "events[4].value",
    ]
    assert out["errors"][1]["msg"] == "unknown item 'nope'"
    assert out["errors"][2]["msg"].startswith("unknown event type 'teleport'; known: ['cart', 'click'")
    assert out["errors"][3]["msg"] == "a rating event needs a value"
    assert pop_client.get("/users/new").status_code == 404  # not even the good events were logged
    assert pop_client.post("/events", json={"events": good}).json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    again = pop_client.post("/events", json={"events": good}).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    user = pop_client.get("/users/new").json()
    assert [e["event_id"] for e in user["recent_events"]] == ["e", "a"]
    assert user["recent_events"][0]["timestamp"] == 1704067200.0  # 2024-01-01T00:00:00Z
    assert user["known_to_model"] is False and user["n_events"] == 2
    assert user["online_profile"]["n_events"] == 2


def test_new_user_with_events_is_served_from_the_online_profile(pop_client: TestClient) -> None:
    click(pop_client, "fresh", ["b1"])
    response = pop_client.post("/recommend", json={"user_id": "fresh", "k": 3})
    assert response.json()["strategy"] == "profile"
    assert set(ids(response)) <= {"b2", "b3", "b4", "t1", "t2", "t3", "t4", "s1", "s2", "s3", "s4"}
    assert ids(response)[0].startswith("b")


def test_query_and_user_blend(pop_client: TestClient) -> None:
    response = pop_client.post("/recommend", json={"user_id": "u3", "query": "shirt", "k": 3})
    assert response.json()["strategy"] == "query+profile"
    assert all(i.startswith("t") for i in ids(response)[:2])


def test_filters(pop_client: TestClient) -> None:
    shoes = ids(pop_client.post("/recommend", json={"k": 12, "filters": {"equals": {"category": "shoes"}}}))
    assert shoes == ["s1", "s2", "s3", "s4"]
    cheap = ids(pop_client.post("/recommend", json={"k": 12, "filters": {"range": {"price": {"max": 25}}}}))
    assert cheap == ["t1", "b1", "b2", "b3"]  # price <= 25 (t4 has none); counts 3, 2, 0, 0 (ties by row)
    brands = ids(
        pop_client.post(
            "/recommend",
            json={"k": 12, "filters": {"in": {"brand": ["orbit", "oxford"]}, "range": {"price": {"min": 30}}}},
        )
    )
    assert brands == ["s4", "t3", "b4"]
    bad = pop_client.post("/recommend", json={"filters": {"equals": {"colour": "red"}}})
    assert bad.status_code == 422
    assert bad.json()["field"] == "filters.equals.colour"
    assert "unknown attribute 'colour'" in bad.json()["detail"]


def test_diversity_spreads_categories(pop_client: TestClient) -> None:
    plain = ids(pop_client.post("/recommend", json={"query": "running shoes", "k": 3}))
    diverse = ids(pop_client.post("/recommend", json={"query": "running shoes", "k": 3, "diversity": 0.9}))
    assert all(i.startswith("s") for i in plain)
    assert diverse[0] == plain[0] and len({i[0] for i in diverse}) > 1


def test_put_and_delete_items(pop_client: TestClient) -> None:
    put = pop_client.put(
        "/items/n1", json={"text": "purple velvet slippers", "attributes": {"category": "shoes", "price": 15}}
    )
    assert put.json() == {"item_id": "n1", "created": True, "reencoded": True, "index_size": 13}
    assert ids(pop_client.post("/recommend", json={"query": "purple velvet slippers", "k": 1})) == ["n1"]
    assert ids(pop_client.post("/recommend", json={"k": 12, "filters": {"range": {"price": {"max": 15}}}})) == [
        "b1",
        "b3",
        "n1",
    ]
    same = pop_client.put(
        "/items/n1", json={"text": "purple velvet slippers", "attributes": {"category": "slippers"}}
    ).json()
    assert (same["created"], same["reencoded"], same["index_size"]) == (False, False, 13)
    assert ids(pop_client.post("/recommend", json={"k": 5, "filters": {"equals": {"category": "slippers"}}})) == ["n1"]
    assert click(pop_client, "x", ["n1"])["accepted"] == 1
    assert pop_client.delete("/items/n1").json() == {"item_id": "n1", "deleted": True}
    assert "n1" not in ids(pop_client.post("/recommend", json={"query": "purple velvet slippers", "k": 12}))
    assert pop_client.delete("/items/n1").status_code == 404
    assert pop_client.get("/items/n1/similar").status_code == 404
    late = pop_client.post(
        "/events", json={"events": [{"event_id": "late0", "user_id": "x", "item_id": "n1", "type": "click"}]}
    )
    assert (late.status_code, late.json()["field"]) == (422, "events[0].item_id")
    assert late.json()["errors"] == [{"field": "events[0].item_id", "msg": "unknown item 'n1'"}]
    assert pop_client.put("/items/n2", json={"attributes": {"price": 3}}).status_code == 422
    from_attrs = pop_client.put("/items/n2", json={"attributes": {"title": "orange wool socks", "price": 3}})
    assert from_attrs.status_code == 200
    assert ids(pop_client.post("/recommend", json={"query": "wool socks", "k": 1})) == ["n2"]


def test_similar_items(pop_client: TestClient) -> None:
    body = pop_client.get("/items/s1/similar", params={"k": 3}).json()
    assert body["items"][0]["item_id"] in {"s2", "s3"} and "s1" not in [i["item_id"] for i in body["items"]]
    assert body["items"][0]["reason"] == 'similar to "red running shoes"'


def test_users_get_and_forget(pop_client: TestClient) -> None:
    assert pop_client.get("/users/nobody").status_code == 404
    assert pop_client.get("/users/nobody").json()["field"] == "user_id"
    u1 = pop_client.get("/users/u1").json()
    assert (u1["known_to_model"], u1["n_training_items"], u1["recent_events"]) == (True, 2, [])
    click(pop_client, "u1", ["b2"])
    click(pop_client, "anon", ["b3"], prefix="x")
    erased = pop_client.delete("/users/u1").json()
    assert erased == {"user_id": "u1", "events_deleted": 1, "profile_deleted": True, "model_data_suppressed": True}
    assert pop_client.get("/users/u1").status_code == 404
    after = pop_client.post("/recommend", json={"user_id": "u1", "k": 2})
    assert after.json()["strategy"] == "popularity" and ids(after) == ["s1", "t1"]  # forgotten: no model history
    assert pop_client.delete("/users/anon").json()["model_data_suppressed"] is False
    assert pop_client.get("/users/anon").status_code == 404


def test_explain(pop_client: TestClient) -> None:
    click(pop_client, "u5", ["b4"])
    body = pop_client.post("/explain", json={"item_id": "b3", "user_id": "u5", "query": "science fiction novel"}).json()
    assert body["strategy"] == "query+profile"
    assert body["history"][0]["item_id"] in {"b1", "b4"}  # books explain a book
    assert {h["source"] for h in body["history"]} == {"event", "training"}
    terms = {t["term"]: t["contribution"] for t in body["query_terms"]}
    assert set(terms) == {"science", "fiction", "novel"} and all(v > 0 for v in terms.values())
    assert pop_client.post("/explain", json={"item_id": "zzz"}).status_code == 404


def test_bad_input_gets_4xx_naming_the_field(pop_client: TestClient, pop_dir: Path) -> None:
    missing = pop_client.post("/events", json={"events": [{"event_id": "a", "item_id": "s1", "type": "view"}]})
    assert missing.status_code == 422 and missing.json()["field"] == "events.0.user_id"
    assert pop_client.post("/recommend", json={"k": 0}).json()["field"] == "k"
    too_many = pop_client.post("/recommend", json={"k": 101})
    assert too_many.status_code == 422 and too_many.json()["detail"] == "k: k=101 is outside [1, max_k=100]"
    typo = pop_client.post("/recommend", json={"kk": 3})
    assert typo.status_code == 422 and typo.json()["field"] == "kk"
    assert (
        pop_client.post("/recommend", content=b"{not json", headers={"content-type": "application/json"}).status_code
        == 422
    )
    long_query = pop_client.post("/recommend", json={"query": "x" * 1001})
    assert long_query.status_code == 422 and long_query.json()["field"] == "query"
    huge = pop_client.post("/events", content=b"x" * 2_000_001, headers={"content-type": "application/json"})
    assert huge.status_code == 413 and huge.json()["field"] == "body"
    chunked = pop_client.post("/events", content=iter([b"x" * 1_500_000, b"x" * 1_500_000]))
    assert chunked.status_code == 413
    batch = {"events": [{"event_id": str(n), "user_id": "u", "item_id": "s1", "type": "view"} for n in range(1001)]}
    big = pop_client.post("/events", json=batch)
    assert big.status_code == 413 and big.json()["detail"] == "events: 1001 events exceed max_events_per_batch=1000"


def test_metrics_count_requests_and_events(pop_client: TestClient) -> None:
    click(pop_client, "m", ["s1", "s2"])
    pop_client.post("/recommend", json={"k": 2})
    text = pop_client.get("/metrics").text
    assert 'lmrec_http_requests_total{method="POST",route="/recommend",status="200"} 1' in text
    assert 'lmrec_http_request_duration_seconds_count{route="/events"} 1' in text
    assert "lmrec_events_ingested_total 2" in text
    assert "lmrec_index_items 12" in text and "lmrec_live_items 12" in text


def boost_books(candidates: Candidates, context: RankContext) -> Candidates:
    """Business rule for the test: books first on the 'reading' scenario."""
    if context.scenario != "reading":
        return candidates
    bonus = np.array([context.attributes(r).get("category") == "books" for r in candidates.rows], np.float32) * 100
    return candidates.rescored(candidates.scores + bonus)


@pytest.mark.parametrize("via_settings", [False, True])
def test_business_rule_hook(pop_dir: Path, via_settings: bool) -> None:
    if via_settings:
        app = create_app(make_settings(pop_dir, rules=("test_serve_app:boost_books",)), encoder=HashingEncoder(DIM))
    else:
        app = create_app(make_settings(pop_dir), encoder=HashingEncoder(DIM), rules=[boost_books])
    with TestClient(app) as client:
        assert ids(client.post("/recommend", json={"k": 2, "scenario": "reading"})) == ["b1", "b2"]
        assert ids(client.post("/recommend", json={"k": 2, "scenario": "home"})) == ["s1", "t1"]


def test_items_written_by_one_process_reach_another(pop_dir: Path) -> None:
    settings = make_settings(pop_dir, items_sync_interval_s=0.01)
    with (
        TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as a,
        TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as b,
    ):
        assert (
            a.put("/items/n9", json={"text": "emerald silk scarf", "attributes": {"category": "scarves"}}).status_code
            == 200
        )
        assert a.delete("/items/b4").status_code == 200
        time.sleep(0.02)
        assert ids(b.post("/recommend", json={"query": "emerald silk scarf", "k": 1})) == ["n9"]
        assert "b4" not in ids(b.post("/recommend", json={"query": "history book of rome", "k": 12}))
        assert (
            b.post(
                "/events", json={"events": [{"event_id": "z", "user_id": "q", "item_id": "n9", "type": "view"}]}
            ).json()["accepted"]
            == 1
        )


def test_model_lists_are_filled_with_items_the_model_cannot_score(pop_client: TestClient) -> None:
    # a new item is unknown to Popularity: it appears after every model item, from u3's text profile
    pop_client.put("/items/n1", json={"text": "mystery novel hardback book", "attributes": {"category": "books"}})
    body = pop_client.post("/recommend", json={"user_id": "u3", "k": 12}).json()
    got = [i["item_id"] for i in body["items"]]
    assert got[-1] == "n1" and len(got) == 11  # 12 base items - 2 seen + n1
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


def test_validation_messages_use_plain_field_paths(pop_client: TestClient) -> None:
    bad = pop_client.put("/items/x", json={"text": "t", "attributes": {"genres": [{"a": 1}]}})
    assert bad.status_code == 422 and bad.json()["field"] == "attributes.genres"
    assert bad.json()["detail"].startswith("attributes.genres: ")
    broken = pop_client.post("/events", content=b'{"events": [', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["field"] == "body"
    ok = pop_client.put("/items/x", json={"text": "comedy heist film", "attributes": {"tags": ["heist", "comedy"]}})
    assert ok.status_code == 200
    assert ids(pop_client.post("/recommend", json={"k": 3, "filters": {"equals": {"tags": "heist"}}})) == ["x"]


@pytest.mark.parametrize("target", [0.95, None])
def test_health_shows_the_approximate_index_and_its_measured_recall(pop_dir: Path, target: float | None) -> None:
    # 12 items past exact_max_items=4: "auto" picks IVF; 12 rows make one cell (fewer than 39 rows per
    # cell), so the tuner's widest search is that cell and finds the exact top 10 of every query
    settings = make_settings(pop_dir, exact_max_items=4, index_target_recall=target)
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as client:
        health = client.get("/health").json()
    assert health["index"] == "ivf"
    if target is None:
        assert health["index_tuning"] is None
    else:
        assert health["index_tuning"] == {"nprobe": 1.0, "recall_at_10": 1.0, "queries": 100.0}
