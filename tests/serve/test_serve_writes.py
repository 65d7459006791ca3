"""All-or-nothing writes: a bad write is a 4xx that leaves the store and the served state untouched,
byte for byte, and the service restarts on that state; bad stored rows are set aside at start-up.

The catalogue is ML-100K-like: a title (the text), a multi-valued ``genres``, a one-value ``language``
and a numeric ``year``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, make_settings

from lmrec.data.catalog import ItemCatalog
from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.bundle import ModelBundle
from lmrec.models.popularity import Popularity
from lmrec.serve.app import create_app
from lmrec.serve.loading import DB_NAME
from lmrec.serve.routes import get_service

MOVIES = [
    ("m1", "Toy Story (1995)", ["Animation", "Comedy"], "en", 1995),
    ("m2", "GoldenEye (1995)", ["Action", "Thriller"], "en", 1995),
    ("m3", "Four Rooms (1995)", ["Thriller"], "en", 1995),
    ("m4", "Get Shorty (1995)", ["Action", "Comedy", "Drama"], "en", 1995),
    ("m5", "Copycat (1995)", ["Crime", "Drama", "Thriller"], "en", 1995),
    ("m6", "Shanghai Triad (1995)", ["Drama"], "zh", 1995),
    ("m7", "Twelve Monkeys (1995)", ["Drama", "Sci-Fi"], "en", 1995),
    ("m8", "Babe (1995)", ["Children", "Comedy", "Drama"], "en", 1995),
    ("m9", "Dead Man Walking (1995)", ["Drama"], "en", 1995),
    ("m10", "Richard III (1995)", ["Drama", "War"], "en", 1996),
]
HISTORY = [("u1", "m1"), ("u1", "m2"), ("u2", "m1"), ("u2", "m7"), ("u3", "m4"), ("u3", "m1"), ("u4", "m9")]
SEED_EVENTS = [{"event_id": "seed0", "user_id": "u9", "item_id": "m3", "type": "click", "timestamp": 1_700_000_000}]


@pytest.fixture(scope="module")
def ml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.DataFrame(MOVIES, columns=["item_id", "title", "genres", "language", "year"]).set_index("item_id")
    catalog = ItemCatalog(frame, text_fields=["title"], categorical=["genres", "language"], numeric=["year"])
    history = pd.DataFrame(HISTORY, columns=["user_id", "item_id"])
    history["timestamp"] = np.arange(len(history), dtype=float)
    data = Dataset(
        Interactions.from_frame(history, item_map=IdMap([m[0] for m in MOVIES])), items=catalog, name="ml-like"
    )
    return ModelBundle(Popularity().fit(data), catalog, None, {"dataset": data.name}).save(
        tmp_path_factory.mktemp("ml") / "pop"
    )


@contextmanager
def served(model_dir: Path, state: Path, **overrides: Any) -> Iterator[TestClient]:
    settings = make_settings(model_dir, state_dir=state, max_events_per_batch=50, **overrides)
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as client:
        yield client


def snapshot(client: TestClient, state: Path) -> dict[str, Any]:
    """Every row of the SQLite store (as SQL text) and the served catalogue and index, byte for byte."""
    conn = sqlite3.connect(state / DB_NAME)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    items = client.app.state.host.service.items
    return {
        "store": dump,
        "ids": list(items.ids),
        "texts": list(items.texts),
        "vectors": items.index.vectors.tobytes(),
        "index_rows": len(items.index),
        "attributes": [items.attributes.row(r) for r in range(len(items))],
        "attribute_rows": len(items.attributes),
        "attribute_columns": {name: items.attributes.kind(name) for name in items.attributes.names},
        "live": items.live_mask().tobytes(),
    }


def still_serving(client: TestClient) -> None:
    """The reads and writes the issue saw fail with 500 after a poisoned write."""
    health = client.get("/health").json()
    assert (health["status"], health["problems"]) == ("ok", [])
    assert client.post("/recommend", json={"user_id": "u1", "k": 5}).status_code == 200
    assert client.post("/recommend", json={"query": "toy story", "k": 20}).status_code == 200  # every row
    for item in ("m1", "n1"):
        assert client.get(f"/items/{item}/similar", params={"k": 20}).status_code == 200


def prepare_state(client: TestClient) -> None:
    """A store with an item write and an event, so that a restart has something to replay."""
    assert (
        client.put(
            "/items/n1", json={"text": "Heat (1995)", "attributes": {"year": 1995, "genres": ["Crime"]}}
        ).status_code
        == 200
    )
    assert client.post("/events", json={"events": SEED_EVENTS}).status_code == 200


def _event(**fields: Any) -> dict[str, Any]:
    return {"event_id": "x1", "user_id": "u1", "item_id": "m2", "type": "click", **fields}


# (method, path, json body or raw text body, expected status)
MALFORMED: dict[str, tuple[str, str, Any, int]] = {
    # the cases: a word for a numeric attribute, a list for one-value attributes
    "poison-year-word": ("PUT", "/items/poison", {"text": "x film", "attributes": {"year": "nineteen"}}, 422),
    "year-list": ("PUT", "/items/poison", {"text": "x film", "attributes": {"year": [1994, 1995]}}, 422),
    "language-list": ("PUT", "/items/poison", {"text": "x film", "attributes": {"language": ["en", "fr"]}}, 422),
    "replace-existing-with-bad-year": (
        "PUT",
        "/items/m1",
        {"text": "Toy Story 2", "attributes": {"year": "soon"}},
        422,
    ),
    "same-text-bad-year": ("PUT", "/items/n1", {"text": "Heat (1995)", "attributes": {"year": "ninety-five"}}, 422),
    # our own
    "year-nan": ("PUT", "/items/poison", '{"text": "x film", "attributes": {"year": NaN}}', 422),
    "year-infinity": ("PUT", "/items/poison", '{"text": "x film", "attributes": {"year": Infinity}}', 422),
    "new-attribute-infinity": ("PUT", "/items/poison", '{"text": "x film", "attributes": {"budget": -Infinity}}', 422),
    "year-bool": ("PUT", "/items/poison", {"text": "x film", "attributes": {"year": True}}, 422),
    "attribute-object": ("PUT", "/items/poison", {"text": "x film", "attributes": {"language": {"code": "en"}}}, 422),
    "empty-attribute-name": ("PUT", "/items/poison", {"text": "x film", "attributes": {" ": "x"}}, 422),
    "empty-text": ("PUT", "/items/poison", {"text": ""}, 422),
    "blank-text-numeric-only": ("PUT", "/items/poison", {"text": "   ", "attributes": {"year": 1999}}, 422),
    "oversized-text": ("PUT", "/items/poison", {"text": "x" * 20_001}, 422),
    "text-not-a-string": ("PUT", "/items/poison", {"text": 5}, 422),
    "item-id-too-long": ("PUT", "/items/" + "p" * 257, {"text": "x film"}, 422),
    "not-json": ("PUT", "/items/poison", '{"text": "x film"', 422),
    "delete-unknown-item": ("DELETE", "/items/nope", None, 404),
    "event-unknown-type": ("POST", "/events", {"events": [_event(type="teleport")]}, 422),
    "event-unknown-item-no-text": ("POST", "/events", {"events": [_event(item_id="never-put")]}, 422),
    "event-duplicate-ids-in-batch": ("POST", "/events", {"events": [_event(), _event(item_id="m3")]}, 422),
    "event-negative-timestamp": ("POST", "/events", {"events": [_event(timestamp=-1)]}, 422),
    "event-before-1970-date": ("POST", "/events", {"events": [_event(timestamp="1969-12-31T23:59:59Z")]}, 422),
    "event-infinite-timestamp": (
        "POST",
        "/events",
        '{"events": [{"event_id": "x1", "user_id": "u1", "item_id": "m2", "type": "click", "timestamp": Infinity}]}',
        422,
    ),
    "event-nan-value": (
        "POST",
        "/events",
        '{"events": [{"event_id": "x1", "user_id": "u1", "item_id": "m2", "type": "rating", "value": NaN}]}',
        422,
    ),
    "event-rating-without-value": ("POST", "/events", {"events": [_event(type="rating")]}, 422),
    "event-user-id-number": ("POST", "/events", {"events": [_event(user_id=7)]}, 422),
    "event-good-then-bad": ("POST", "/events", {"events": [_event(), _event(event_id="x2", item_id="zzz")]}, 422),
    "event-batch-too-large": ("POST", "/events", {"events": [_event(event_id=f"b{i}") for i in range(51)]}, 413),
    "erase-user-id-too-long": ("DELETE", "/users/" + "u" * 257, None, 422),
    "swap-to-non-model-dir": ("POST", "/admin/model", {"path": "/"}, 422),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_write_changes_nothing_and_the_service_restarts(case: str, ml_dir: Path, tmp_path: Path) -> None:
    method, path, body, status = MALFORMED[case]
    kwargs: dict[str, Any] = {}
    if isinstance(body, str):
        kwargs = {"content": body, "headers": {"content-type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    state = tmp_path / "state"
    with served(ml_dir, state) as client:
        prepare_state(client)
        before = snapshot(client, state)
        response = client.request(method, path, **kwargs)
        assert response.status_code == status, response.text
        assert response.json()["field"]  # the answer names what is wrong
        assert snapshot(client, state) == before
        still_serving(client)
        assert client.post("/events", json={"events": [_event(event_id="after")]}).json()["accepted"] == 1
        assert client.put("/items/n2", json={"text": "Casino (1995)", "attributes": {"year": 1995}}).status_code == 200
        still_serving(client)  # with a row added after the bad write (where the old code answered 500)
        assert client.get("/items/n2/similar", params={"k": 20}).status_code == 200
        after_writes = snapshot(client, state)
    with served(ml_dir, state) as client:  # a restart on that state replays it to the same catalogue
        assert snapshot(client, state) == after_writes
        still_serving(client)
        assert client.get("/health").json()["quarantined"] == {"items": 0, "events": 0}


def test_the_poisoned_write_names_the_field_and_a_later_good_write_of_the_id_works(
    ml_dir: Path, tmp_path: Path
) -> None:
    with served(ml_dir, tmp_path / "state") as client:
        response = client.put("/items/poison", json={"text": "x film", "attributes": {"year": "nineteen"}})
        assert response.json() == {
            "detail": "attributes.year: expected a number, got 'nineteen'",
            "field": "attributes.year",
        }
        listed = client.put("/items/poison", json={"text": "x film", "attributes": {"language": ["en", "fr"]}})
        assert listed.json()["detail"] == "attributes.language: expected one value, got a list ['en', 'fr']"
        good = client.put("/items/poison", json={"text": "x film", "attributes": {"year": "1999"}})
        assert good.json() == {"item_id": "poison", "created": True, "reencoded": True, "index_size": 11}
        rows = client.post(
            "/recommend", json={"query": "x film", "k": 10, "filters": {"range": {"year": {"min": 1999}}}}
        )
        assert [i["item_id"] for i in rows.json()["items"]] == ["poison"]  # "1999" was stored as the number 1999


def test_start_up_sets_bad_stored_rows_aside(ml_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with served(ml_dir, state) as client:
        prepare_state(client)
    conn = sqlite3.connect(state / DB_NAME)
    with conn:  # rows the service would never write, as a bug or a hand edit could leave them
        conn.execute(
            "INSERT INTO items (item_id, text, attributes, vector, space, deleted, version) VALUES"
            " ('poison', 'x film', '{\"year\": \"nineteen\"}', NULL, 'text:hashing-32-0', 0, 100),"
            " ('garbled', 'y film', 'not json {', NULL, 'text:hashing-32-0', 0, 101)"
        )
        conn.execute(
            "INSERT INTO events (event_id, user_id, item_id, type, value, ts, scenario, received_at) VALUES"
            " ('bad-ts', 'u9', 'm2', 'click', NULL, 'yesterday', NULL, 0),"
            " ('bad-value', 'u9', 'm4', 'rating', 'five', 1700000001, NULL, 0),"
            " ('good', 'u9', 'm5', 'click', NULL, 1700000002, NULL, 0)"
        )
        conn.execute("UPDATE users SET n_events = 4 WHERE user_id = 'u9'")
        conn.execute("UPDATE profiles SET vector = x'000102' WHERE user_id = 'u9'")  # 3 bytes: no float32 vector
    conn.close()
    for _ in range(2):  # the second start finds the events already set aside, the items skipped again
        with served(ml_dir, state) as client:
            health = client.get("/health").json()
            assert health["quarantined"] == {"items": 2, "events": 2}
            assert (health["status"], health["items"], health["live_items"]) == ("ok", 11, 11)  # 10 movies + n1
            still_serving(client)
            user = client.get("/users/u9").json()
            assert [e["event_id"] for e in user["recent_events"]] == ["good", "seed0"]
            assert user["n_events"] == 2  # recounted without the rows set aside
            assert user["online_profile"]["n_events"] == 2  # the unreadable profile was rebuilt from the log
            assert client.get("/items/poison/similar").status_code == 404
    conn = sqlite3.connect(state / DB_NAME)
    kept = conn.execute("SELECT kind, key FROM quarantine ORDER BY key").fetchall()
    conn.close()
    assert kept == [("event", "bad-ts"), ("event", "bad-value")]


def test_health_reports_a_catalogue_and_index_that_disagree(ml_dir: Path, tmp_path: Path) -> None:
    with served(ml_dir, tmp_path / "state") as client:
        assert client.get("/health").json()["status"] == "ok"
        items = client.app.state.host.service.items
        items.index.add(np.full((1, DIM), np.nan, dtype=np.float32))  # a row behind the catalogue's back
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert health["problems"] == [
            "index rows: 11, the catalogue has 10 rows",
            "1 index rows have non-finite values (first: row 10)",
        ]


def test_an_unexpected_failure_is_a_json_500_with_a_request_id_and_is_counted(ml_dir: Path, tmp_path: Path) -> None:
    with served(ml_dir, tmp_path / "state") as client:
        ok = client.get("/health", headers={"X-Request-ID": "trace-1"})
        assert ok.headers["X-Request-ID"] == "trace-1"

        async def broken() -> None:
            raise RuntimeError("the store is gone")

        client.app.dependency_overrides[get_service] = broken
        response = client.post("/recommend", json={"k": 3}, headers={"X-Request-ID": "req-42"})
        assert response.status_code == 500
        assert response.json() == {"error": "internal server error", "request_id": "req-42"}
        assert response.headers["X-Request-ID"] == "req-42"
        fresh = client.post("/recommend", json={"k": 3}, headers={"X-Request-ID": "bad id with spaces"})
        rid = fresh.json()["request_id"]
        assert len(rid) == 32 and rid == fresh.headers["X-Request-ID"]  # a new id replaces an unusable one
        client.app.dependency_overrides.clear()
        metrics = client.get("/metrics").text
        assert 'lmrec_http_server_errors_total{route="/recommend",status="500"} 2' in metrics
        assert 'lmrec_http_requests_total{method="POST",route="/recommend",status="500"} 2' in metrics
        assert client.post("/recommend", json={"k": 3}).status_code == 200


def test_a_successor_that_does_not_check_is_not_swapped_in(ml_dir: Path, tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state"
    with served(ml_dir, state) as client:
        prepare_state(client)
        before = snapshot(client, state)
        serving = client.app.state.host.service

        def inconsistent(self) -> list[str]:
            return [] if self is serving else ["index rows: 12, the catalogue has 11 rows"]

        monkeypatch.setattr(type(serving), "check", inconsistent)
        response = client.post("/admin/model", json={"path": str(ml_dir)})
        assert response.status_code == 422
        assert response.json()["detail"].endswith(
            "does not serve consistently: index rows: 12, the catalogue has 11 rows"
        )
        assert client.app.state.host.service is serving  # the old model keeps serving, unchanged
        assert snapshot(client, state) == before
        assert client.get("/admin/model").json()["swap_failures"] == 1


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("put_item", {"text": "Casino (1995)", "attributes": {"year": 1995}}),
        ("append_events", {"events": [_event(event_id="new")]}),
        ("erase_user", None),
    ],
)
def test_a_failed_commit_changes_nothing_in_memory(
    method: str, body: Any, ml_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    state = tmp_path / "state"
    with served(ml_dir, state) as client:
        prepare_state(client)
        service = client.app.state.host.service
        before = snapshot(client, state)
        popularity = service.items.popularity().tobytes()

        def disk_full(*args: Any, **kwargs: Any) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(type(service.store), method, disk_full)
        if method == "put_item":
            response = client.put("/items/n2", json=body)
        elif method == "append_events":
            response = client.post("/events", json=body)
        else:
            response = client.delete("/users/u1")
        assert response.status_code == 500
        assert response.json()["request_id"] == response.headers["X-Request-ID"]
        monkeypatch.undo()
        assert snapshot(client, state) == before
        assert service.items.popularity().tobytes() == popularity
        assert service.forgotten == set()  # u1 (a user the model knows) is still used
        still_serving(client)
