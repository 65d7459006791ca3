"""Replicas sharing one Redis (``profile_store="redis"``): the stream, read-after-write, faults.

Each test starts its own redis-server with AOF on (`redis_server.RedisServer`) and two in-process
replicas (two apps, each with its own state directory: its SQLite copy of the stream).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from redis_server import RedisServer
from serve_helpers import DIM, free_port, make_settings

from lmrec.encoders.fake import HashingEncoder
from lmrec.serve.app import create_app
from lmrec.serve.stores.redis_stream import entry_id, stream_seq


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    try:
        srv = RedisServer(tmp_path / "redis")
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(str(exc))
    try:
        yield srv
    finally:
        srv.stop()


def _client(pop_dir: Path, url: str, state: Path, **extra: Any) -> TestClient:
    settings = make_settings(pop_dir, profile_store="redis", redis_url=url, state_dir=state, **extra)
    return TestClient(create_app(settings, encoder=HashingEncoder(DIM)))


def _click(event_id: str, user: str, item: str) -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "item_id": item, "type": "click"}


def _wait(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_stream_ids_round_trip_and_order() -> None:
    # "1700000000123-5" -> 1700000000123 * 2**20 + 5; the integer keeps the stream's order
    assert stream_seq("1700000000123-5") == 1700000000123 * 1048576 + 5
    assert entry_id(stream_seq("1700000000123-5")) == "1700000000123-5"
    assert stream_seq("5-0") > stream_seq("4-1048575")


def test_two_replicas_share_events_items_and_erasures(pop_dir: Path, server: RedisServer, tmp_path: Path) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(_client(pop_dir, server.url, tmp_path / "a"))
        b = stack.enter_context(_client(pop_dir, server.url, tmp_path / "b"))
        # read-after-write: acknowledged by A, in B's very next answer (B applies the stream up to the
        # user's last entry before answering)
        batch = {"events": [_click(f"e{n}", "r1", i) for n, i in enumerate(["b2", "b3", "b4"])]}
        assert a.post("/events", json=batch).json() == {"accepted": 3, "duplicates": 0, "rejected": []}
        on_b = b.post("/recommend", json={"user_id": "r1", "k": 3}).json()
        on_a = a.post("/recommend", json={"user_id": "r1", "k": 3}).json()
        assert on_b["strategy"] == "profile" and on_b["items"][0]["item_id"] == "b1"
        assert on_b["items"] == on_a["items"]
        assert not {"b2", "b3", "b4"} & {x["item_id"] for x in on_b["items"]}  # B excludes what A logged
        assert b.get("/users/r1").json()["online_profile"]["n_events"] == 3
        # event ids are idempotent across replicas: the same batch sent to B is all duplicates
        assert b.post("/events", json=batch).json() == {"accepted": 0, "duplicates": 3, "rejected": []}
        assert a.get("/health").json()["events"] == 3 and b.get("/health").json()["events"] == 3
        # an item PUT on B reaches A's index (by A's follower thread)
        put = b.put("/items/n1", json={"text": "a brand new mystery paperback"})
        assert put.status_code == 200 and put.json()["created"] is True
        _wait(lambda: a.get("/items/n1/similar", params={"k": 1}).status_code == 200)
        assert a.get("/health").json()["items"] == b.get("/health").json()["items"]
        # ... and a DELETE on A reaches B
        assert a.delete("/items/n1").status_code == 200
        _wait(lambda: b.get("/items/n1/similar").status_code == 404)
        # an erasure on B: A's copy of the log and the shared profile go, and the stream loses the events
        erased = b.delete("/users/r1").json()
        assert erased["events_deleted"] == 3 and erased["profile_deleted"] is True
        assert a.get("/users/r1").status_code == 404  # A applied the erasure before answering
        raw = redis.Redis.from_url(server.url)
        ops = [f[b"op"] for _, f in raw.xrange("lmrec:log")]
        assert ops.count(b"event") == 0 and ops.count(b"erase") == 1 and ops.count(b"item") == 2
        health = b.get("/health").json()
        assert health["stream"]["redis_up"] is True and health["stream"]["aof"] is True
        assert health["stream"]["lag_entries"] == 0
        assert "lmrec_stream_lag_seconds" in a.get("/metrics").text


def test_a_new_replica_catches_up_from_the_stream(pop_dir: Path, server: RedisServer, tmp_path: Path) -> None:
    with _client(pop_dir, server.url, tmp_path / "a") as a:
        batch = {"events": [_click(f"e{n}", f"u{n % 3}", "b2") for n in range(9)]}
        assert a.post("/events", json=batch).json()["accepted"] == 9
        assert a.put("/items/n2", json={"text": "garden hose"}).status_code == 200
        expected = a.post("/recommend", json={"user_id": "u1", "k": 4}).json()
    with _client(pop_dir, server.url, tmp_path / "late") as late:  # empty local copy: replays the stream
        health = late.get("/health").json()
        tail = redis.Redis.from_url(server.url).xrevrange("lmrec:log", count=1)[0][0].decode()
        assert health["events"] == 9 and health["stream"]["position"] == tail  # 9 events and the PUT
        assert late.get("/items/n2/similar", params={"k": 1}).status_code == 200
        answer = late.post("/recommend", json={"user_id": "u1", "k": 4}).json()
        assert (answer["items"], answer["strategy"]) == (expected["items"], expected["strategy"])


def test_aof_off_is_refused_unless_warned(pop_dir: Path, tmp_path: Path) -> None:
    try:
        srv = RedisServer(tmp_path / "noaof", aof=False)
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(str(exc))
    try:
        refused = pytest.raises(RuntimeError, match=r"appendonly=no: acknowledged events are lost")
        with refused, _client(pop_dir, srv.url, tmp_path / "a", redis_aof="require"):
            pass
        with _client(pop_dir, srv.url, tmp_path / "b") as client:  # the default, "warn"
            assert client.get("/health").json()["stream"]["aof"] is False
    finally:
        srv.stop()


def test_unreachable_redis_at_start_names_the_url(pop_dir: Path, tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    unreachable = pytest.raises(ConnectionError, match=rf"cannot reach Redis at '{url}'")
    with unreachable, _client(pop_dir, url, tmp_path / "a"):
        pass


def test_redis_down_while_serving_then_back(pop_dir: Path, server: RedisServer, tmp_path: Path) -> None:
    with _client(pop_dir, server.url, tmp_path / "a") as a:
        assert a.post("/events", json={"events": [_click("e0", "r1", "b2")]}).json()["accepted"] == 1
        before = a.post("/recommend", json={"user_id": "r1", "k": 3}).json()
        server.kill()
        down = a.post("/events", json={"events": [_click("e1", "r1", "b3")]})
        assert down.status_code == 503 and down.headers["retry-after"] == "1"
        assert "unavailable" in down.json()["detail"]
        put = a.put("/items/n9", json={"text": "written while Redis is down"})
        assert put.status_code == 503 and put.headers["retry-after"] == "1"
        assert a.get("/items/n9/similar").status_code == 404  # not applied, as it was not acknowledged
        served = a.post("/recommend", json={"user_id": "r1", "k": 3})
        assert served.status_code == 200
        assert served.json()["items"] == before["items"]  # the profile replayed from the local copy
        assert any("Redis is unreachable" in n for n in served.json()["notes"])
        health = a.get("/health").json()
        assert health["status"] == "degraded" and health["stream"]["redis_up"] is False
        server.start()  # same AOF: e0 survived, e1 was never acknowledged
        assert a.post("/events", json={"events": [_click("e1", "r1", "b3")]}).json()["accepted"] == 1
        _wait(lambda: a.get("/health").json()["status"] == "ok")
        assert a.get("/users/r1").json()["n_events"] == 2
        assert a.post("/recommend", json={"user_id": "r1", "k": 3}).json()["notes"] == []
        assert a.get("/items/n9/similar").status_code == 404


def test_acknowledged_events_survive_a_redis_kill(pop_dir: Path, server: RedisServer, tmp_path: Path) -> None:
    acked: list[str] = []
    with _client(pop_dir, server.url, tmp_path / "a") as a:
        for n in range(20):
            if n == 10:
                server.restart()  # kill -9 and start again on the same append-only file
            batch = {"events": [_click(f"k{n}-{j}", f"u{j}", "b2") for j in range(5)]}
            answer = a.post("/events", json=batch)
            if answer.status_code == 200:
                acked += [e["event_id"] for e in batch["events"]]
            else:
                assert answer.status_code == 503
    logged = {f[b"event_id"].decode() for _, f in redis.Redis.from_url(server.url).xrange("lmrec:log")}
    assert len(acked) >= 90 and set(acked) <= logged
