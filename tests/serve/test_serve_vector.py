"""The service over a `VectorRecommender`: served in the model's own space; state survives restarts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import TinyVectorModel, make_settings

from lmrec.models.base import load_model
from lmrec.serve.app import create_app
from lmrec.serve.profiles import unit


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def post_events(client: TestClient, events: list[tuple[str, str, str, str]]) -> dict:
    body = {"events": [{"event_id": e, "user_id": u, "item_id": i, "type": t} for e, u, i, t in events]}
    return client.post("/events", json=body).json()


def test_known_user_is_served_the_models_own_ranking(vec_client: TestClient, vec_dir: Path) -> None:
    model = load_model(vec_dir)
    for user in ("u1", "u2", "u5"):
        items, scores = model.recommend(model.user_map_.index(user), 5)
        response = vec_client.post("/recommend", json={"user_id": user, "k": 5})
        assert response.json()["strategy"] == "profile"
        assert ids(response) == model.item_map_.to_ids(items[0]).tolist()
        # user vectors are unit here, so the served scores are the model's scores
        np.testing.assert_allclose([i["score"] for i in response.json()["items"]], scores[0], rtol=1e-5)
    assert vec_client.get("/health").json()["space"].startswith("model:tiny_vector_test-")


def test_query_weight_moves_between_profile_and_query(vec_dir: Path) -> None:
    model = load_model(vec_dir)
    query = "science fiction novel book"
    u = model.user_map_.index("u4")
    for weight in (0.0, 0.5, 1.0):
        with TestClient(create_app(make_settings(vec_dir, query_weight=weight))) as client:
            got = ids(client.post("/recommend", json={"user_id": "u4", "query": query, "k": 4}))
        q = unit(model.encode_queries([query])[0])
        p = unit(model.user_vectors(np.array([u]))[0])
        vec = weight * q + (1 - weight) * p
        scores = model.item_vectors() @ vec
        scores[model.seen_[u].indices] = -np.inf
        assert got == model.item_map_.to_ids(np.argsort(-scores, kind="stable")[:4]).tolist(), weight


def test_online_profile_drives_a_new_user_and_blends_for_a_known_one(vec_dir: Path) -> None:
    with TestClient(create_app(make_settings(vec_dir, online_weight=1.0))) as client:
        post_events(client, [("e1", "u4", "b3", "purchase")])
        # online weight 1: u4's profile is the unit vector of b3 alone; b3 itself is now seen
        model = load_model(vec_dir)
        scores = model.item_vectors() @ model.item_vectors()[model.item_map_.index("b3")]
        order = [
            i for i in model.item_map_.to_ids(np.argsort(-scores, kind="stable")) if i not in {"s1", "t1", "t2", "b3"}
        ]
        assert ids(client.post("/recommend", json={"user_id": "u4", "k": 3})) == order[:3]


def test_put_item_is_encoded_by_the_model_and_survives_a_restart(vec_dir: Path) -> None:
    settings = make_settings(vec_dir)
    with TestClient(create_app(settings)) as client:
        assert client.put("/items/n1", json={"text": "golden retriever dog toy"}).status_code == 200
        assert client.delete("/items/s2").status_code == 200
        assert ids(client.post("/recommend", json={"query": "dog toy", "k": 1})) == ["n1"]
        post_events(client, [("e1", "fresh", "n1", "click"), ("e2", "fresh", "b1", "view")])
        before = client.post("/recommend", json={"user_id": "fresh", "k": 5}).json()
        before.pop("request_id")  # each answer has its own (lmrec.serve.feedback)
        user_before = client.get("/users/fresh").json()
    with TestClient(create_app(settings)) as client:  # a restart: same model, same state directory
        assert ids(client.post("/recommend", json={"query": "dog toy", "k": 1})) == ["n1"]
        assert "s2" not in ids(client.post("/recommend", json={"k": 12, "query": "blue running shoes"}))
        assert {**client.post("/recommend", json={"user_id": "fresh", "k": 5}).json(), "request_id": None} == {
            **before,
            "request_id": None,
        }
        assert client.get("/users/fresh").json() == user_before
        assert client.get("/health").json()["items"] == 13


def test_retrained_model_rebuilds_profiles_from_the_log(vec_dir: Path) -> None:
    with TestClient(create_app(make_settings(vec_dir))) as client:
        post_events(client, [("e1", "fresh", "t3", "click"), ("e2", "fresh", "t4", "click")])
        old_space = client.get("/health").json()["space"]
    model = load_model(vec_dir)
    assert isinstance(model, TinyVectorModel)
    model.save(vec_dir)  # "retrained": new files, new version, new space
    with TestClient(create_app(make_settings(vec_dir))) as client:
        assert client.get("/health").json()["space"] != old_space
        profile = client.get("/users/fresh").json()["online_profile"]
        assert profile["n_events"] == 2
        assert client.post("/recommend", json={"user_id": "fresh", "k": 1}).json()["strategy"] == "profile"


@pytest.mark.slow
def test_the_language_model_interest_model_is_served_in_its_own_space(tmp_path: Path) -> None:
    lm = pytest.importorskip("lmrec.models.lm", reason="the language-model interest model is not available")
    from serve_helpers import save_bundle

    from lmrec.encoders.fake import HashingEncoder

    model = lm.LMRecommender(
        dim=16,
        user_tower={"n_layers": 1},
        optim={"epochs": 2, "batch_size": 8},
        text_encoder=HashingEncoder(32),
        random_state=0,
    )
    model_dir = save_bundle(model, tmp_path / "lm")
    loaded = load_model(model_dir)
    with TestClient(create_app(make_settings(model_dir))) as client:
        assert client.get("/health").json()["space"].startswith("model:lm-")
        items, _ = loaded.recommend(loaded.user_map_.index("u2"), 4)
        assert (
            ids(client.post("/recommend", json={"user_id": "u2", "k": 4})) == loaded.item_map_.to_ids(items[0]).tolist()
        )
        assert client.put("/items/n1", json={"text": "golden retriever dog toy"}).status_code == 200
        assert ids(client.post("/recommend", json={"query": "golden retriever dog toy", "k": 1})) == ["n1"]
