"""Knowledge-graph relations over HTTP: /items/{id}/related, PUT relations, complements, /explain."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, make_settings

from lmrec.data.catalog import ItemCatalog
from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.data.kg import KnowledgeGraph
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.base import load_model
from lmrec.models.bundle import ModelBundle
from lmrec.models.lm.graph import encode_items_with_relations
from lmrec.serve.app import create_app
from lmrec.serve.related import ItemRelations, relation_matches

lm = pytest.importorskip("lmrec.models.lm", reason="the language-model interest model is not available")
pytestmark = pytest.mark.slow  # one lm fit and an app start per module: several seconds on a loaded CPU

CATEGORIES = {"p": "Printers", "t": "Toner", "a": "Paper", "s": "Staplers"}
COMPLEMENTS = {"Printers": ["Toner", "Paper"], "Toner": ["Printers"], "Paper": [], "Staplers": []}


def shop() -> Dataset:
    """12 items (4 categories x 3); 24 users buying a printer then toner or paper, or staplers; a graph
    with each item's category (belongs_to), complementary categories, and Staplers -complement-> Paper."""
    ids = [f"{c}{j}" for c in CATEGORIES for j in range(1, 4)]
    frame = pd.DataFrame(
        {"title": [f"{CATEGORIES[i[0]].lower()} model {i[1]}" for i in ids]}, index=pd.Index(ids, name="item_id")
    )
    rng = np.random.default_rng(0)
    events = []
    for u in range(24):
        if u % 3 == 2:
            chosen = list(rng.choice(["s1", "s2", "s3"], 2, replace=False))
        else:
            chosen = [f"p{1 + u % 3}", *rng.choice(["t1", "t2", "t3", "a1", "a2", "a3"], 2, replace=False)]
        events += [(f"u{u}", str(i), 86_400.0 * t) for t, i in enumerate(chosen)]
    inter = Interactions.from_frame(
        pd.DataFrame(events, columns=["user_id", "item_id", "timestamp"]), item_map=IdMap(ids)
    )
    triples = [(i, "belongs_to", CATEGORIES[i[0]]) for i in ids]
    triples += [(i, "complementary_category", c) for i in ids for c in COMPLEMENTS[CATEGORIES[i[0]]]]
    triples += [("Staplers", "complement", "Paper")]
    kg = KnowledgeGraph(pd.DataFrame(triples, columns=["head", "relation", "tail"]), {i: i for i in ids})
    return Dataset(inter, items=ItemCatalog(frame, text_fields=["title"]), name="kg-shop", kg=kg)


@pytest.fixture(scope="module")
def kg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = shop()
    model = lm.LMRecommender(
        dim=16,
        user_tower={"n_layers": 1, "use_user_text": False},
        optim={"epochs": 3, "batch_size": 16},
        fusion={"graph": True},
        text_encoder=HashingEncoder(DIM),
        random_state=0,
    )
    model.fit(data)
    return ModelBundle(model, data.items, None, {"dataset": data.name}).save(tmp_path_factory.mktemp("kg") / "lm")


@pytest.fixture
def client(kg_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(kg_dir, state_dir=tmp_path / "state"), encoder=HashingEncoder(DIM))
    with TestClient(app) as c:
        yield c


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_related_ranks_graph_neighbours_by_the_model_then_fills(client: TestClient, kg_dir: Path) -> None:
    model = load_model(kg_dir)
    vectors = model.item_vectors()
    index = {i: j for j, i in enumerate(model.item_map_.ids)}
    graph = ["t1", "t2", "t3", "a1", "a2", "a3"]  # printers complement toner and paper
    expected = sorted(graph, key=lambda i: -float(vectors[index[i]] @ vectors[index["p1"]]))
    body = ok(client.get("/items/p1/related", params={"relation": "complement", "k": 3}))
    assert [i["item_id"] for i in body["items"]] == expected[:3] and body["from_graph"] == 3
    assert body["items"][0]["reason"].startswith('complement of "printers model 1"')
    body = ok(client.get("/items/p1/related", params={"relation": "complement", "k": 10}))
    ids = [i["item_id"] for i in body["items"]]
    assert body["from_graph"] == 6 and ids[:6] == expected and len(ids) == 10
    assert all(i["reason"] == 'similar to "printers model 1"' for i in body["items"][6:])
    assert "p1" not in ids


def test_related_through_a_concept_relation(client: TestClient) -> None:
    # s1 belongs to Staplers, Staplers -complement-> Paper: paper complements a stapler
    body = ok(client.get("/items/s1/related", params={"relation": "complement", "k": 3}))
    assert sorted(i["item_id"] for i in body["items"]) == ["a1", "a2", "a3"] and body["from_graph"] == 3
    assert client.get("/items/nope/related").status_code == 404


def test_put_relations_unknown_relation_stored_and_said(client: TestClient) -> None:
    body = ok(
        client.put(
            "/items/p9",
            json={
                "text": "printers model 9",
                "relations": [
                    {"relation": "belongs_to", "target": "Printers"},
                    {"relation": "complementary_category", "target": "Toner"},
                    {"relation": "made_in", "target": "Japan"},
                ],
            },
        )
    )
    assert body["relations_ignored"] == ["made_in -> Japan"]
    assert body["relations_stored"][0] == "belongs_to -> Printers"
    assert any("ignores them" in n for n in body["notes"]) and any("uses 2 relation" in n for n in body["notes"])
    # toner complements printers: the new printer is now among t1's complements
    related = ok(client.get("/items/t1/related", params={"relation": "complement", "k": 4}))
    assert "p9" in [i["item_id"] for i in related["items"][: related["from_graph"]]]


def served_vector(client: TestClient, item_id: str) -> np.ndarray:
    items = client.app.state.host.service.items
    return items.vector(items.row(item_id)).copy()


def test_put_relations_survive_a_restart(kg_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(kg_dir, state_dir=tmp_path / "state")
    new_item = [("belongs_to", "Printers"), ("complementary_category", "Toner"), ("made_in", "Japan")]
    # t2 is a model item (toner): its text stays, a relation to Paper joins its graph and its vector
    old_item = [("complementary_category", "Paper")]
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as c:
        before = ok(c.get("/items/t2/related", params={"relation": "complement", "k": 10}))
        assert before["from_graph"] == 3  # Toner -> Printers: p1, p2, p3
        trained_t2 = served_vector(c, "t2")
        ok(
            c.put(
                "/items/p9",
                json={
                    "text": "printers model 9",
                    "relations": [dict(zip(("relation", "target"), r)) for r in new_item],
                },
            )
        )
        body = ok(
            c.put(
                "/items/t2",
                json={
                    "text": "toner model 2",
                    "relations": [{"relation": "complementary_category", "target": "Paper"}],
                },
            )
        )
        assert body["reencoded"] is False and any("uses 1 relation" in n for n in body["notes"])
        live = {i: served_vector(c, i) for i in ("p9", "t2")}
        assert not np.allclose(live["t2"], trained_t2)  # the relation moved the model item's vector
        related = ok(c.get("/items/t2/related", params={"relation": "complement", "k": 10}))
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as c:  # a restart on the same state
        service = c.app.state.host.service
        for item_id, vector in live.items():
            np.testing.assert_array_equal(served_vector(c, item_id), vector)
        # and the vectors are those of the text plus the relations the model knows (made_in is not one)
        expected = encode_items_with_relations(
            service.model, ["printers model 9", "toner model 2"], [new_item[:2], old_item]
        )
        np.testing.assert_allclose(live["p9"], expected[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(live["t2"], expected[1], rtol=1e-5, atol=1e-6)
        after = ok(c.get("/items/t2/related", params={"relation": "complement", "k": 10}))
        assert after == related
        # Toner -> Printers: p1..p3 and p9 (which belongs to Printers); a1..a3 through the relation to Paper
        assert after["from_graph"] == 7
        assert sorted(i["item_id"] for i in after["items"][:7]) == ["a1", "a2", "a3", "p1", "p2", "p3", "p9"]
        toner = ok(c.get("/items/t1/related", params={"relation": "complement", "k": 10}))
        assert "p9" in [i["item_id"] for i in toner["items"][: toner["from_graph"]]]
        assert service.related.kg.item_edges("p9") == new_item  # the unknown relation is kept too
        assert c.get("/health").json()["status"] == "ok"


def test_relations_put_by_one_process_reach_another(kg_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(kg_dir, state_dir=tmp_path / "state", items_sync_interval_s=0.01)
    with (
        TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as a,
        TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as b,
    ):
        assert ok(b.get("/items/s1/related", params={"relation": "substitute", "k": 3}))["from_graph"] == 0
        body = {"text": "staplers model 1", "relations": [{"relation": "substitute", "target": "Staplers"}]}
        ok(a.put("/items/s1", json=body))
        time.sleep(0.02)
        # s1 -substitute-> Staplers, whose members are s1 (itself, left out), s2 and s3
        got = ok(b.get("/items/s1/related", params={"relation": "substitute", "k": 3}))
        assert got["from_graph"] == 2 and sorted(i["item_id"] for i in got["items"][:2]) == ["s2", "s3"]


def test_recommend_complements_of_recent_items(client: TestClient) -> None:
    # u0 bought p1 and two of toner / paper; their unseen complements are the other toner / paper items
    body = ok(client.post("/recommend", json={"user_id": "u0", "k": 10, "mode": "complements"}))
    ids = [i["item_id"] for i in body["items"]]
    assert ids and set(ids) <= {"t1", "t2", "t3", "a1", "a2", "a3"}
    assert any(n.startswith("mode complements:") for n in body["notes"])
    plain = ok(client.post("/recommend", json={"user_id": "u0", "k": 10}))
    assert len(plain["items"]) > len(ids)  # the usual list is not restricted


def test_explain_names_the_relation(client: TestClient, kg_dir: Path) -> None:
    model = load_model(kg_dir)
    seen = set(model.item_map_.to_ids(model.hist_items_[model.user_map_.index("u0")]).tolist())
    target = next(i for i in ("t1", "t2", "t3", "a1", "a2", "a3") if i not in seen)
    body = ok(client.post("/explain", json={"item_id": target, "user_id": "u0"}))
    assert body["relation"] == "complement"
    assert body["reason"].startswith('complement of "')
    assert " days ago" in body["reason"] and "bought" in body["reason"]


def test_relation_names_match_by_word_form() -> None:
    assert relation_matches("complement", "complementary_category")
    assert relation_matches("substitute", "substitutable_category")
    assert not relation_matches("complement", "substitute")
    assert not relation_matches("", "complement")
    assert ItemRelations(None).related("x", "complement") == []
