"""Cold start over HTTP: new users (``session_items``, ``user_text``) and new items (``PUT /items``) are
served exactly as the offline model scores them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, make_settings, save_bundle

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.base import load_model
from lmrec.models.bundle import ModelBundle
from lmrec.models.popularity import Popularity
from lmrec.serve.app import create_app
from lmrec.serve.auth import add_key
from lmrec.serve.profiles import unit

lm = pytest.importorskip("lmrec.models.lm", reason="the language-model interest model is not available")

CATEGORIES = {
    "shoes": ["running", "trail", "leather", "sneaker", "boot"],
    "shirts": ["cotton", "linen", "flannel", "silk", "denim"],
    "books": ["mystery", "cookbook", "history", "poetry", "novel"],
    "toys": ["puzzle", "robot", "doll", "kite", "blocks"],
}
N_USERS = 30
NEW_ITEMS = {  # cold items PUT while serving (and added offline): words of the trained categories
    "n1": "green running shoes",
    "n2": "green mystery books",
    "n3": "green robot toys",
}


def shop() -> Dataset:
    """40 items (4 categories x 5 kinds x 2 colours); 30 users, each 6 items of one category and 2
    others in a random order; every other user has a profile text."""
    rows = [
        (f"i{c}{k}{colour[0]}", f"{colour} {kind} {name}", name)
        for c, (name, kinds) in enumerate(CATEGORIES.items())
        for k, kind in enumerate(kinds)
        for colour in ("red", "blue")
    ]
    frame = pd.DataFrame(rows, columns=["item_id", "title", "category"]).set_index("item_id")
    ids = list(frame.index)
    rng = np.random.default_rng(0)
    events = []
    for u in range(N_USERS):
        own = [i for i in ids if frame.loc[i, "category"] == list(CATEGORIES)[u % 4]]
        other = [i for i in ids if i not in own]
        chosen = [*rng.choice(own, 6, replace=False), *rng.choice(other, 2, replace=False)]
        rng.shuffle(chosen)
        events += [(f"u{u}", str(item), float(t)) for t, item in enumerate(chosen)]
    inter = Interactions.from_frame(
        pd.DataFrame(events, columns=["user_id", "item_id", "timestamp"]), item_map=IdMap(ids)
    )
    texts = [(f"u{u}", "profile", f"likes {list(CATEGORIES)[u % 4]}") for u in range(0, N_USERS, 2)]
    users = UserTexts(pd.DataFrame(texts, columns=["user_id", "kind", "text"]))
    catalog = ItemCatalog(frame, text_fields=["title"], categorical=["category"])
    return Dataset(inter, items=catalog, users=users, name="cold-shop")


def train(directory: Path, *, use_user_text: bool) -> Path:
    data = shop()
    model = lm.LMRecommender(
        dim=16,
        user_tower={"n_layers": 1, "use_user_text": use_user_text},
        optim={"epochs": 3, "batch_size": 16},
        text_encoder=HashingEncoder(DIM),
        random_state=0,
    )
    model.fit(data)
    return ModelBundle(model, data.items, data.users, {"dataset": data.name}).save(directory)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``lm`` model whose user tower reads user text."""
    return train(tmp_path_factory.mktemp("cold") / "lm", use_user_text=True)


@pytest.fixture(scope="module")
def lm_plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``lm`` model trained without user text."""
    return train(tmp_path_factory.mktemp("cold") / "lm_plain", use_user_text=False)


def client_for(model_dir: Path, state: Path, **settings: Any) -> TestClient:
    return TestClient(create_app(make_settings(model_dir, state_dir=state, **settings), encoder=HashingEncoder(DIM)))


@pytest.fixture
def lm_client(lm_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    with client_for(lm_dir, tmp_path / "state") as client:
        yield client


def ranked(response: Any) -> tuple[list[str], np.ndarray]:
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    return [i["item_id"] for i in items], np.asarray([i["score"] for i in items])


def offline_top(model: Any, user_vec: np.ndarray, exclude: np.ndarray, k: int = 10) -> tuple[list[str], np.ndarray]:
    """The model's ranking of one user vector: inner products with every item, ``exclude`` left out."""
    scores = model.item_vectors() @ user_vec
    scores[exclude] = -np.inf
    top = np.argsort(-scores, kind="stable")[:k]
    return model.item_map_.to_ids(top).tolist(), scores[top]


def history_ids(model: Any, user: str) -> list[str]:
    """A training user's items, oldest first."""
    return model.item_map_.to_ids(model.hist_items_[model.user_map_.index(user)]).tolist()


# ---------------------------------------------------------------------------------- new users
@pytest.mark.parametrize("user_text", [None, "likes books"])
def test_a_session_is_served_as_the_model_serves_a_user_with_those_items(
    lm_client: TestClient, lm_dir: Path, user_text: str | None
) -> None:
    model = load_model(lm_dir)
    for user in ("u1", "u2", "u7", "u12", "u25"):
        session = history_ids(model, user)[:5]
        rows = model.item_map_.to_index(session)
        # the offline equivalent: the user tower on those 5 items (and the text), scored over every
        # item, the session's items excluded as seen
        expected, scores = offline_top(
            model, unit(model.encode_users([rows], None if user_text is None else [user_text])[0]), rows
        )
        body: dict[str, Any] = {"session_items": session, "k": 10}
        if user_text is not None:
            body["user_text"] = user_text
        response = lm_client.post("/recommend", json=body)
        got, served = ranked(response)
        assert got == expected, user
        np.testing.assert_allclose(served, scores, rtol=1e-5, atol=1e-6)
        answer = response.json()
        strategy = "session" if user_text is None else "session+user_text"
        assert (answer["strategy"], answer["known_user"], answer["notes"]) == (strategy, False, [])
        assert answer["used"] == ["session_items"] + ([] if user_text is None else ["user_text"])
        assert all("from this session" in i["reason"] for i in answer["items"][:3]) or user_text is not None
        # an unknown user id is a user without history too
        assert ranked(lm_client.post("/recommend", json={**body, "user_id": "nobody"}))[0] == expected


def test_unknown_session_items_are_ignored_and_listed(lm_client: TestClient, lm_dir: Path) -> None:
    model = load_model(lm_dir)
    session = history_ids(model, "u3")[:5]
    alone = lm_client.post("/recommend", json={"session_items": session}).json()
    mixed = lm_client.post("/recommend", json={"session_items": ["zz1", *session[:2], "zz2", *session[2:]]}).json()
    assert mixed["items"] == alone["items"]
    assert mixed["unknown_session_items"] == ["zz1", "zz2"]
    assert mixed["notes"] == ["2 of 7 session_items are unknown and were ignored"]
    # nothing known and nothing else: popularity, said so
    pop = lm_client.post("/recommend", json={"session_items": ["zz1", "zz2"], "k": 5}).json()
    assert (pop["strategy"], pop["used"], pop["unknown_session_items"]) == (
        "popularity",
        ["popularity"],
        ["zz1", "zz2"],
    )
    assert pop["notes"][-1] == "nothing usable in session_items or user_text: popular items"
    assert pop["items"] == lm_client.post("/recommend", json={"k": 5}).json()["items"]


def test_user_text_alone_goes_through_the_user_tower_after_scrubbing(lm_client: TestClient, lm_dir: Path) -> None:
    model = load_model(lm_dir)
    text = "likes books, write to me at jane.doe@example.com"
    scrubber = lm_client.app.state.host.service.scrubber
    clean = scrubber(text)
    assert "jane.doe@example.com" not in clean
    expected, scores = offline_top(model, unit(model.encode_users([[]], [clean])[0]), np.zeros(0, np.int64))
    response = lm_client.post("/recommend", json={"user_text": text})
    got, served = ranked(response)
    assert got == expected
    np.testing.assert_allclose(served, scores, rtol=1e-5, atol=1e-6)
    answer = response.json()
    assert (answer["strategy"], answer["used"], answer["notes"]) == ("user_text", ["user_text"], [])
    assert "example.com" not in response.text and all(
        "matches your profile text" in i["reason"] for i in answer["items"]
    )


def test_a_model_without_user_text_reads_user_text_as_a_query(lm_plain_dir: Path, tmp_path: Path) -> None:
    model = load_model(lm_plain_dir)
    session = history_ids(model, "u2")[:5]
    rows = model.item_map_.to_index(session)
    with client_for(lm_plain_dir, tmp_path / "state") as client:
        weight = client.app.state.host.service.settings.query_weight
        answer = client.post("/recommend", json={"session_items": session, "user_text": "toys"}).json()
        alone = client.post("/recommend", json={"user_text": "toys"}).json()
    # unit(w * unit(query) + (1 - w) * unit(session)), as a known user's query and profile are blended
    session_vec = unit(model.encode_users([rows])[0])
    vec = unit(weight * unit(model.encode_queries(["toys"])[0]) + (1 - weight) * session_vec)
    assert [i["item_id"] for i in answer["items"]] == offline_top(model, vec, rows)[0]
    assert answer["strategy"] == "session+user_text"
    assert answer["notes"] == ["the model's user tower does not read user text: user_text was encoded as a query"]
    expected = offline_top(model, unit(model.encode_queries(["toys"])[0]), np.zeros(0, np.int64))[0]
    assert [i["item_id"] for i in alone["items"]] == expected and alone["strategy"] == "user_text"


def test_a_known_user_is_served_from_their_history(lm_client: TestClient, lm_dir: Path) -> None:
    model = load_model(lm_dir)
    plain = lm_client.post("/recommend", json={"user_id": "u4"}).json()
    both = lm_client.post("/recommend", json={"user_id": "u4", "session_items": history_ids(model, "u9")[:5]}).json()
    assert both["items"] == plain["items"] and both["strategy"] == "profile" and both["used"] == ["user_id"]
    assert both["notes"] == ["the user has a history: session_items and user_text were not used"]


def test_a_session_with_a_query_blends_them_as_a_known_users_profile(lm_client: TestClient, lm_dir: Path) -> None:
    model = load_model(lm_dir)
    session = history_ids(model, "u6")[:5]
    rows = model.item_map_.to_index(session)
    weight = lm_client.app.state.host.service.settings.query_weight
    answer = lm_client.post("/recommend", json={"session_items": session, "query": "kite"}).json()
    vec = unit(weight * unit(model.encode_queries(["kite"])[0]) + (1 - weight) * unit(model.encode_users([rows])[0]))
    assert [i["item_id"] for i in answer["items"]] == offline_top(model, vec, rows)[0]
    assert (answer["strategy"], answer["used"]) == ("query+profile", ["query", "session_items"])


def test_a_model_without_a_user_tower_serves_the_mean_of_the_session_items(tmp_path: Path) -> None:
    model_dir = save_bundle(Popularity(), tmp_path / "pop")
    with client_for(model_dir, tmp_path / "state") as client:
        service = client.app.state.host.service
        answer = client.post("/recommend", json={"session_items": ["b1", "b3", "nope"], "k": 4}).json()
        vectors = service.items.index.vectors  # the catalogue's text vectors (HashingEncoder)
        rows = [service.items.row("b1"), service.items.row("b3")]
    mean = unit(np.mean([unit(vectors[r]) for r in rows], axis=0))
    scores = vectors @ mean
    scores[rows] = -np.inf
    expected = [service.items.ids[r] for r in np.argsort(-scores, kind="stable")[:4]]
    assert [i["item_id"] for i in answer["items"]] == expected
    assert (answer["strategy"], answer["unknown_session_items"]) == ("session", ["nope"])
    assert (
        answer["notes"][-1]
        == "Popularity has no user tower for new histories: the session is the mean of its items' vectors"
    )


def test_bad_new_user_input_is_a_422_naming_the_field_and_the_limit(lm_dir: Path, tmp_path: Path) -> None:
    with client_for(lm_dir, tmp_path / "state", max_user_text_chars=20, max_session_items=3) as client:
        long_text = client.post("/recommend", json={"user_text": "x" * 21})
        assert long_text.status_code == 422
        assert long_text.json()["field"] == "user_text"
        assert long_text.json()["detail"] == "user_text: 21 characters exceed max_user_text_chars=20"
        many = client.post("/recommend", json={"session_items": ["a", "b", "c", "d"]})
        assert many.status_code == 422
        assert many.json()["detail"] == "session_items: 4 items exceed max_session_items=3"
        empty_id = client.post("/recommend", json={"session_items": [""]})
        assert empty_id.status_code == 422 and empty_id.json()["field"] == "session_items.0"
        props = client.get("/openapi.json").json()["components"]["schemas"]["RecommendRequest"]["properties"]
    text_schema = next(s for s in props["user_text"]["anyOf"] if s.get("type") == "string")
    items_schema = next(s for s in props["session_items"]["anyOf"] if s.get("type") == "array")
    assert text_schema["maxLength"] == 20
    assert items_schema["maxItems"] == 3
    assert (items_schema["items"]["minLength"], items_schema["items"]["maxLength"]) == (1, 256)


def test_new_user_input_needs_the_recommend_scope(lm_dir: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    events_key = add_key(keys, "writer", ["events"], n=2**8)
    reader_key = add_key(keys, "reader", ["recommend"], n=2**8)
    body = {"session_items": ["i00r"], "user_text": "likes shoes"}
    with client_for(lm_dir, tmp_path / "state", api_keys_file=keys) as client:
        assert client.post("/recommend", json=body).status_code == 401
        assert (
            client.post("/recommend", json=body, headers={"Authorization": f"Bearer {events_key}"}).status_code == 403
        )
        ok = client.post("/recommend", json=body, headers={"Authorization": f"Bearer {reader_key}"})
        assert ok.status_code == 200 and ok.json()["strategy"] == "session+user_text"


def test_a_scenario_aware_model_serves_sessions_and_known_users_in_the_requests_scenario(tmp_path: Path) -> None:
    data = shop()
    inter = data.interactions
    scenarios = np.where(np.arange(len(inter.users)) % 2 == 0, "home", "cart").astype(object)
    data = Dataset(dataclasses.replace(inter, scenarios=scenarios), items=data.items, users=data.users, name="x")
    model = lm.LMScenarioRecommender(
        dim=16,
        user_tower={"n_layers": 1},
        optim={"epochs": 2, "batch_size": 16},
        text_encoder=HashingEncoder(DIM),
        random_state=0,
    ).fit(data)
    model_dir = ModelBundle(model, data.items, data.users, {"dataset": data.name}).save(tmp_path / "lms")
    model = load_model(model_dir)
    session = history_ids(model, "u5")[:5]
    rows = model.item_map_.to_index(session)
    with client_for(model_dir, tmp_path / "state") as client:
        shared = client.post("/recommend", json={"session_items": session}).json()
        cart = client.post("/recommend", json={"session_items": session, "scenario": "cart"}).json()
        # known users in a scenario: the model's own scenario ranking (its item vectors change with it)
        for user in ("u0", "u1", "u2", "u3", "u4", "u9"):
            for scenario in ("cart", "home"):
                items, scores = model.recommend(model.user_map_.index(user), 10, scenario=scenario)
                got, served = ranked(client.post("/recommend", json={"user_id": user, "scenario": scenario}))
                assert got == model.item_map_.to_ids(items[0]).tolist(), (user, scenario)
                np.testing.assert_allclose(served, scores[0], rtol=1e-5, atol=1e-6)
    # the shared path: the offline ranking
    assert [i["item_id"] for i in shared["items"]] == offline_top(model, unit(model.encode_users([rows])[0]), rows)[0]
    assert shared["scenario_applied"] is False
    # in a scenario: the user tower under it, scored against that scenario's item vectors
    cart_vec = unit(model.encode_users([rows], scenario="cart")[0])
    scores = model.scenario_item_vectors("cart") @ cart_vec
    scores[rows] = -np.inf
    expected = model.item_map_.to_ids(np.argsort(-scores, kind="stable")[:10]).tolist()
    assert [i["item_id"] for i in cart["items"]] == expected
    assert (cart["strategy"], cart["scenario_applied"]) == ("session", True)


# ---------------------------------------------------------------------------------- new items
def test_items_put_while_serving_rank_as_the_offline_model_adds_them(lm_client: TestClient, lm_dir: Path) -> None:
    for item_id, text in NEW_ITEMS.items():
        assert lm_client.put(f"/items/{item_id}", json={"text": text}).json()["created"]
    offline = load_model(lm_dir)
    offline.add_items(list(NEW_ITEMS), list(NEW_ITEMS.values()))
    shown: set[str] = set()
    for user in ("u0", "u1", "u2", "u3", "u10", "u17"):
        items, scores = offline.recommend(offline.user_map_.index(user), 10)
        got, served = ranked(lm_client.post("/recommend", json={"user_id": user, "k": 10}))
        assert got == offline.item_map_.to_ids(items[0]).tolist(), user
        np.testing.assert_allclose(served, scores[0], rtol=1e-5, atol=1e-6)
        shown |= set(got) & set(NEW_ITEMS)
    assert shown, "no new item reached a top-10: the comparison says nothing about them"
    # the new items' vectors are the offline model's (a session and a query score them alike too)
    served_vectors = lm_client.app.state.host.service.items.index.vectors[-len(NEW_ITEMS) :]
    np.testing.assert_allclose(served_vectors, offline.item_vectors()[-len(NEW_ITEMS) :], atol=1e-6)
