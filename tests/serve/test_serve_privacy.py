"""Privacy in the service: PII is scrubbed before text reaches an encoder, the store, an answer or a
log; queries are stored only when configured; ``GET /users/{id}/export``; retention of raw events
with their effect kept in the profiles, driven by a fake clock."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from serve_helpers import DIM, make_settings

from lmrec.encoders.fake import HashingEncoder
from lmrec.serve.app import create_app
from lmrec.serve.loading import DB_NAME
from lmrec.serve.retention import DAY_S, RetentionJob, RetentionReport, enforce_retention
from lmrec.serve.routes import get_service

EMAIL, PHONE, CARD = "zhang.san@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"


class RecordingEncoder(HashingEncoder):
    """The test encoder, remembering every text it was asked to encode."""

    def __init__(self, dim: int = DIM) -> None:
        super().__init__(dim)
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str], *args: Any, **kwargs: Any) -> np.ndarray:
        self.seen.extend(texts)
        return super().encode(texts, *args, **kwargs)


@pytest.fixture
def encoder() -> RecordingEncoder:
    return RecordingEncoder()


def serve(pop_dir: Path, encoder: HashingEncoder, **overrides: Any) -> TestClient:
    return TestClient(create_app(make_settings(pop_dir, **overrides), encoder=encoder))


def rows(pop_dir: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(pop_dir / "serve_state" / DB_NAME)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def click(client: TestClient, user: str, items: list[str], types: list[str] | None = None, prefix: str = "e") -> None:
    types = types or ["click"] * len(items)
    events = [
        {"event_id": f"{prefix}{user}{i}", "user_id": user, "item_id": item, "type": t}
        for i, (item, t) in enumerate(zip(items, types))
    ]
    assert client.post("/events", json={"events": events}).json()["accepted"] == len(items)


# ---------------------------------------------------------------------- PII
def test_queries_and_item_texts_are_scrubbed_before_the_encoder_the_store_and_the_answer(
    pop_dir: Path, encoder
) -> None:
    with serve(pop_dir, encoder) as client:
        encoder.seen.clear()
        query = f"running shoes, mail me at {EMAIL} or call {PHONE}"
        answer = client.post("/recommend", json={"query": query, "k": 3}).json()
        explained = client.post("/explain", json={"item_id": "s1", "query": query}).json()
        put = client.put(
            "/items/n1", json={"text": f"wool socks, seller card {CARD}", "attributes": {"category": "socks"}}
        )
        assert put.status_code == 200
        served = client.app.state.host.service.items
        assert served.texts[served.row("n1")] == "wool socks, seller card <CARD>"
    # the query (for /recommend and /explain, whose term contributions encode its words too) and the item text
    assert encoder.seen[:2] == ["running shoes, mail me at <EMAIL> or call <PHONE>"] * 2
    assert encoder.seen[-1] == "wool socks, seller card <CARD>"
    assert not [t for t in encoder.seen if "example" in t or "7946" in t or "4111" in t]
    answers = str(answer) + str(explained)
    assert EMAIL not in answers and "7946" not in answers
    assert {t["term"] for t in explained["query_terms"]} >= {"running", "shoes"}
    assert rows(pop_dir, "SELECT text FROM items") == [("wool socks, seller card <CARD>",)]
    assert rows(pop_dir, "SELECT count(*) FROM queries") == [(0,)]  # queries are not stored by default


def test_scrubbing_is_configurable(pop_dir: Path, encoder) -> None:
    with serve(pop_dir, encoder, pii_kinds=("email",)) as client:
        encoder.seen.clear()
        client.post("/recommend", json={"query": f"{EMAIL} {PHONE}", "k": 1})
    with serve(pop_dir, encoder, scrub_pii=False) as client:
        client.post("/recommend", json={"query": f"{EMAIL} {PHONE}", "k": 1})
    assert encoder.seen == [f"<EMAIL> {PHONE}", f"{EMAIL} {PHONE}"]
    with pytest.raises(ValidationError, match="pii_kinds"):
        make_settings(pop_dir, pii_kinds=("passport",))


def test_a_server_error_is_logged_without_the_pii_in_its_message(
    pop_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def recommend(self, **kwargs: Any) -> None:
            raise ValueError(f"cannot rank for {kwargs['query']}")

    app = create_app(make_settings(pop_dir), encoder=HashingEncoder(DIM))
    app.dependency_overrides[get_service] = lambda: Broken()
    with (
        TestClient(app, raise_server_exceptions=False) as client,
        caplog.at_level(logging.ERROR, "lmrec.serve.middleware"),
    ):
        answer = client.post("/recommend", json={"query": f"boots for {EMAIL}"})
    assert answer.status_code == 500 and EMAIL not in answer.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "ValueError: cannot rank for boots for <EMAIL>" in logged and answer.json()["request_id"] in logged
    assert EMAIL not in logged and "in recommend" in logged  # the traceback's frames are there


@pytest.mark.parametrize(("mode", "stored"), [("scrubbed", "shoes for <EMAIL>"), ("raw", f"shoes for {EMAIL}")])
def test_queries_are_stored_only_when_configured(pop_dir: Path, mode: str, stored: str) -> None:
    with serve(pop_dir, HashingEncoder(DIM), store_queries=mode) as client:
        client.post("/recommend", json={"query": f"shoes for {EMAIL}", "user_id": "q1", "k": 1})
        client.post("/recommend", json={"query": "   ", "user_id": "q1", "k": 1})  # no query: nothing stored
        client.post("/recommend", json={"user_id": "q1", "k": 1})
        exported = client.get("/users/q1/export").json()
        assert [q["query"] for q in exported["queries"]] == [stored]
        client.delete("/users/q1")
        assert client.get("/users/q1/export").status_code == 404  # erasure takes the queries too
    assert rows(pop_dir, "SELECT count(*) FROM queries") == [(0,)]


# ---------------------------------------------------------------------- export
def test_export_holds_everything_about_a_user_and_the_erasure_state(pop_dir: Path) -> None:
    with serve(pop_dir, HashingEncoder(DIM)) as client:
        events = [
            {"event_id": "x1", "user_id": "u1", "item_id": "b1", "type": "click", "timestamp": 1_700_000_000},
            {
                "event_id": "x2",
                "user_id": "u1",
                "item_id": "b3",
                "type": "rating",
                "value": 4,
                "timestamp": 1_700_000_060,
            },
        ]
        before = time.time()
        assert client.post("/events", json={"events": events}).json()["accepted"] == 2
        out = client.get("/users/u1/export").json()
        assert (out["user_id"], out["known_to_model"], out["training_items"]) == ("u1", True, ["s1", "t1"])  # HISTORY
        assert (out["n_events_logged"], out["first_event_at"], out["last_event_at"]) == (
            2,
            1_700_000_000,
            1_700_000_060,
        )
        assert out["erasure"] == {"forgotten": False, "model_data_suppressed": False}
        got = [
            (e["event_id"], e["item_id"], e["type"], e["value"], e["timestamp"], e["scenario"]) for e in out["events"]
        ]
        assert got == [
            ("x1", "b1", "click", None, 1_700_000_000, None),
            ("x2", "b3", "rating", 4.0, 1_700_000_060, None),
        ]
        assert all(before <= e["received_at"] <= time.time() for e in out["events"])
        profile = out["online_profile"]
        assert (profile["n_events"], profile["last_event_at"], len(profile["vector"])) == (2, 1_700_000_060, DIM)
        assert profile["space"] == client.get("/health").json()["space"]
        assert (out["queries"], out["retention_days"]) == ([], {})

        assert client.delete("/users/u1").json()["events_deleted"] == 2
        erased = client.get("/users/u1/export").json()
        assert erased["erasure"] == {"forgotten": True, "model_data_suppressed": True}
        assert (erased["events"], erased["online_profile"], erased["n_events_logged"]) == ([], None, 0)
        assert erased["training_items"] == ["s1", "t1"]  # still in the served model until it is retrained

        click(client, "newcomer", ["s2"])
        assert client.get("/users/newcomer/export").json()["training_items"] == []
        client.delete("/users/newcomer")
        for gone in ("newcomer", "nobody"):
            missing = client.get(f"/users/{gone}/export")
            assert (missing.status_code, missing.json()["detail"]) == (404, f"user_id: unknown user {gone!r}")


def test_erased_data_leaves_the_database_file_and_its_write_ahead_log(pop_dir: Path) -> None:
    with serve(pop_dir, HashingEncoder(DIM), store_queries="raw") as client:
        click(client, "user-secret-42", ["b1", "b2"], prefix="event-secret-")
        client.post("/recommend", json={"user_id": "user-secret-42", "query": "query-secret-text", "k": 1})
        files = sorted((pop_dir / "serve_state").glob(DB_NAME + "*"))

        def held() -> bytes:
            return b"".join(f.read_bytes() for f in files if f.exists())

        assert b"event-secret-" in held() and b"query-secret-text" in held()
        client.app.state.host.service.store.checkpoint()  # the rows are in the main file now, not only in the log
        assert client.delete("/users/user-secret-42").json()["events_deleted"] == 2
        data = held()
        assert b"user-secret-42" not in data and b"event-secret-" not in data and b"query-secret-text" not in data


# ---------------------------------------------------------------------- retention
RETENTION = {
    "retention_days": {"view": 1, "*": 30, "query": 1},
    "store_queries": "scrubbed",
    "retention_interval_s": 10_000,
}


@pytest.fixture
def retained(pop_dir: Path) -> Iterator[TestClient]:
    with serve(pop_dir, HashingEncoder(DIM), **RETENTION) as client:
        yield client


def test_retention_deletes_old_raw_events_and_the_profiles_keep_their_effect(pop_dir: Path) -> None:
    with serve(pop_dir, HashingEncoder(DIM), **RETENTION) as client:
        before = check_retention(client, pop_dir)
    # a restart on that state ranks the same (the profiles are not rebuilt from the emptied log)
    with serve(pop_dir, HashingEncoder(DIM), **RETENTION) as fresh:
        assert ranked(fresh) == before
        health = fresh.get("/health").json()
        assert (health["status"], health["events"]) == ("ok", 0)


def ranked(client: TestClient) -> list[tuple[str, float]]:
    """What the profile decides for user "live" (the reasons quote raw events, so they are left out)."""
    items = client.post("/recommend", json={"user_id": "live", "k": 12, "exclude_seen": False}).json()["items"]
    return [(i["item_id"], round(i["score"], 6)) for i in items]


def check_retention(client: TestClient, pop_dir: Path) -> list[tuple[str, float]]:
    host = client.app.state.host
    service = host.service
    click(client, "live", ["b1", "b3", "b2"], ["view", "view", "click"])
    click(client, "other", ["s1"], ["view"])
    client.post("/recommend", json={"query": "novel", "user_id": "live", "k": 1})
    profile = service.profiles.get("live")
    before = ranked(client)
    seen_before = {i["item_id"] for i in client.post("/recommend", json={"user_id": "live", "k": 12}).json()["items"]}
    service.profiles.delete("other")  # a profile behind the log: it must absorb the events before they go
    start = time.time()

    # half a day later: nothing has expired
    assert RetentionJob(host, 10_000, clock=lambda: start + 0.5 * DAY_S).run_once() == RetentionReport(0, 0)
    # two days later: the three views (1 day) and the query (1 day) go, the click (30 days, "*") stays
    assert enforce_retention(service, start + 2 * DAY_S) == RetentionReport(events=3, queries=1)
    exported = client.get("/users/live/export").json()
    assert [e["event_id"] for e in exported["events"]] == ["elive2"] and exported["queries"] == []
    assert exported["n_events_logged"] == 3  # the counts stay
    kept = service.profiles.get("live")
    assert (kept.n_events, kept.last_seq) == (profile.n_events, profile.last_seq) == (3, 3)
    np.testing.assert_array_equal(kept.vector, profile.vector)  # the effect of the deleted views stays
    assert ranked(client) == before
    # what the raw events did beyond the profile goes with them: b1 and b3 are no longer "seen"
    seen_after = {i["item_id"] for i in client.post("/recommend", json={"user_id": "live", "k": 12}).json()["items"]}
    assert seen_after - seen_before == {"b1", "b3"}
    other = service.profiles.get("other")  # rebuilt from its event first, then the event went
    assert other is not None and other.n_events == 1 and client.get("/users/other/export").json()["events"] == []
    assert "lmrec_events_expired_total 3" in client.get("/metrics").text
    # 31 days later the click goes too
    assert enforce_retention(service, start + 31 * DAY_S) == RetentionReport(events=1, queries=0)
    np.testing.assert_array_equal(service.profiles.get("live").vector, profile.vector)
    assert rows(pop_dir, "SELECT count(*) FROM events") == [(0,)]
    return before


def test_the_retention_job_runs_in_the_background(retained: TestClient) -> None:
    client = retained
    click(client, "live", ["b1", "b3"], ["view", "click"])
    job = RetentionJob(client.app.state.host, 0.01, clock=lambda: time.time() + 2 * DAY_S)
    job.start()
    deadline = time.monotonic() + 10
    while client.get("/users/live/export").json()["events"][0]["type"] == "view":
        assert time.monotonic() < deadline, "the job did not run"
        time.sleep(0.02)
    job.stop()
    assert [e["type"] for e in client.get("/users/live/export").json()["events"]] == ["click"]


def test_retention_settings_are_checked(pop_dir: Path) -> None:
    with pytest.raises(
        ValidationError, match=r"retention_days: unknown event type\(s\) \['clik'\]; valid: \['\*', 'cart'"
    ):
        make_settings(pop_dir, retention_days={"clik": 3})
    with pytest.raises(ValidationError, match=r"retention_days must be positive numbers of days; got \{'view': 0.0\}"):
        make_settings(pop_dir, retention_days={"view": 0})
