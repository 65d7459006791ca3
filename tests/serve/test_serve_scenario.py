"""``/recommend`` with a ``scenario``: scenario-aware models score in it, other models ignore it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, TinyVectorModel, make_settings, save_bundle

from lmrec.encoders.fake import HashingEncoder
from lmrec.models.base import MODEL_REGISTRY
from lmrec.models.popularity import Popularity
from lmrec.serve.app import create_app

BOOKS = [8, 9, 10, 11]  # rows of b1..b4 in ITEMS


class ScenarioVectorModel(TinyVectorModel):
    """A fake scenario-aware vector model: scenario 0 ("home") is the shared user vector, scenario 1
    ("reading") is the mean of the book vectors whoever the user is."""

    model_name = "scenario_vector_test"
    is_scenario_aware = True
    scenario_names_ = ["home", "reading"]

    def user_vectors(self, user_idx: np.ndarray, scenario: int | np.ndarray | None = None) -> np.ndarray:
        base = super().user_vectors(user_idx)
        if scenario is None or int(np.max(scenario)) == 0:
            return base
        books = self.item_vectors_[BOOKS].mean(axis=0)
        return np.tile(books / np.linalg.norm(books), (len(base), 1)).astype(np.float32)

    def score_all(self, user_idx: np.ndarray, scenario: int | np.ndarray | None = None) -> np.ndarray:
        return self.user_vectors(user_idx, scenario) @ self.item_vectors_.T


class ScenarioPopularity(Popularity):
    """A fake scenario-aware model without vectors (served in the text space): scenario 1 ("rare")
    reverses popularity."""

    model_name = "scenario_pop_test"
    is_scenario_aware = True
    scenario_names_ = ["usual", "rare"]

    def score_all(self, user_idx: np.ndarray, scenario: int | np.ndarray | None = None) -> np.ndarray:
        scores = super().score_all(user_idx)
        return -scores if scenario is not None and int(np.max(scenario)) == 1 else scores


@pytest.fixture
def registered() -> Iterator[None]:
    for cls in (ScenarioVectorModel, ScenarioPopularity):
        MODEL_REGISTRY[cls.model_name] = cls
    try:
        yield
    finally:
        for cls in (ScenarioVectorModel, ScenarioPopularity):
            MODEL_REGISTRY.pop(cls.model_name, None)


@pytest.fixture
def scenario_client(tmp_path: Path, registered) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(save_bundle(ScenarioVectorModel(), tmp_path / "sv")))) as client:
        yield client


def rec(client: TestClient, **body) -> dict:
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def item_ids(body: dict) -> list[str]:
    return [i["item_id"] for i in body["items"]]


def test_a_scenario_aware_model_scores_in_the_scenario(scenario_client: TestClient) -> None:
    # u1 trained on s1 (shoes) and t1 (shirt): the shared path ranks shoes/shirts first
    shared = rec(scenario_client, user_id="u1", k=4)
    assert shared["strategy"] == "profile" and shared["scenario_applied"] is False
    assert not set(item_ids(shared)) & {"b1", "b2", "b3", "b4"}
    reading = rec(scenario_client, user_id="u1", k=4, scenario="reading")
    assert sorted(item_ids(reading)) == ["b1", "b2", "b3", "b4"]
    assert (reading["scenario"], reading["scenario_applied"]) == ("reading", True)
    home = rec(scenario_client, user_id="u1", k=4, scenario="home")  # id 0: the shared vector
    assert item_ids(home) == item_ids(shared) and home["scenario_applied"] is True
    # a query alone, or a stranger, never reaches the model's scenario path
    assert rec(scenario_client, query="running shoes", k=2, scenario="reading")["scenario_applied"] is False
    assert rec(scenario_client, user_id="stranger", k=2, scenario="reading")["scenario_applied"] is False
    assert scenario_client.get("/health").json()["scenarios"] == ["home", "reading"]


def test_an_unknown_scenario_is_a_422_listing_the_valid_ones(scenario_client: TestClient) -> None:
    response = scenario_client.post("/recommend", json={"user_id": "u1", "scenario": "garden"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "scenario: unknown scenario 'garden'; valid: ['home', 'reading']",
        "field": "scenario",
    }


def test_a_scenario_aware_model_without_vectors_ranks_with_its_scenario_scores(tmp_path: Path, registered) -> None:
    app = create_app(make_settings(save_bundle(ScenarioPopularity(), tmp_path / "sp")), encoder=HashingEncoder(DIM))
    with TestClient(app) as client:
        # u1 saw s1, t1; usual popularity ranks s2 (2), b1 (2), s3 (1), t2 (1) next
        assert item_ids(rec(client, user_id="u1", k=2, scenario="usual"))[:2] == ["s2", "b1"]
        rare = rec(client, user_id="u1", k=3, scenario="rare")
        assert rare["strategy"] == "model" and rare["scenario_applied"] is True
        assert set(item_ids(rare)) <= {"s4", "t3", "t4", "b2", "b3", "b4"}  # count 0: now the best
        client.post("/events", json={"events": [{"event_id": "e1", "user_id": "u1", "item_id": "b2", "type": "click"}]})
        blended = rec(client, user_id="u1", k=3, scenario="rare")
        assert blended["strategy"] == "model+online" and blended["scenario_applied"] is True
        assert "s2" not in item_ids(blended)  # popular, so last under "rare"


def test_other_models_accept_and_ignore_the_scenario(pop_client: TestClient) -> None:
    plain = rec(pop_client, user_id="u1", k=4)
    with_scenario = rec(pop_client, user_id="u1", k=4, scenario="anything-at-all")
    assert item_ids(with_scenario) == item_ids(plain)
    assert (with_scenario["scenario"], with_scenario["scenario_applied"]) == ("anything-at-all", False)
    assert pop_client.get("/health").json()["scenarios"] is None


def test_openapi_documents_the_scenario(pop_client: TestClient) -> None:
    schemas = pop_client.get("/openapi.json").json()["components"]["schemas"]
    scenario = schemas["RecommendRequest"]["properties"]["scenario"]
    assert "scenario-aware model" in scenario["description"] and "422" in scenario["description"]
    assert "scenario_applied" in schemas["RecommendResponse"]["properties"]
    assert {"ModelSwapRequest", "ModelSwapResponse", "ModelStatus"} <= set(schemas)
