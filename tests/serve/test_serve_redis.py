"""The service with its profiles in Redis (a real redis-server the fixture starts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from serve_helpers import DIM, make_settings

from lmrec.encoders.fake import HashingEncoder
from lmrec.serve.app import create_app


@pytest.mark.slow
def test_redis_profiles_serve_and_recover_from_a_lost_write(pop_dir: Path, redis_url: str, tmp_path: Path) -> None:
    prefix = f"svc-{tmp_path.name}:"
    settings = make_settings(pop_dir, profile_store="redis", redis_url=redis_url, redis_prefix=prefix)
    events = {
        "events": [
            {"event_id": f"e{n}", "user_id": "r1", "item_id": i, "type": "click"}
            for n, i in enumerate(["b2", "b3", "b4"])
        ]
    }
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as client:
        assert client.get("/health").json()["profile_store"] == "RedisProfileStore"
        assert client.post("/events", json=events).json()["accepted"] == 3
        served = client.post("/recommend", json={"user_id": "r1", "k": 3}).json()
        served.pop("request_id")  # each answer has its own (lmrec.serve.feedback)
        assert served["strategy"] == "profile" and served["items"][0]["item_id"] == "b1"
        assert client.get("/users/r1").json()["online_profile"]["n_events"] == 3
    raw = redis.Redis.from_url(redis_url)
    assert int(raw.hget(f"{prefix}profile:r1", "n_events")) == 3
    # a crash between the log commit and the Redis write looks like this: the log is ahead of Redis
    raw.delete(f"{prefix}profile:r1")
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as client:
        assert client.get("/users/r1").json()["online_profile"]["n_events"] == 3  # replayed at start-up
        again = client.post("/recommend", json={"user_id": "r1", "k": 3}).json()
        assert again.pop("request_id") and again == served
        erased = client.delete("/users/r1").json()
        assert erased["profile_deleted"] is True and erased["events_deleted"] == 3
    assert raw.exists(f"{prefix}profile:r1") == 0


def test_unreachable_redis_is_a_clear_error(pop_dir: Path) -> None:
    from serve_helpers import free_port

    settings = make_settings(pop_dir, profile_store="redis", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings, encoder=HashingEncoder(DIM))
    with pytest.raises(ConnectionError, match=r"cannot reach Redis at 'redis://127\.0\.0\.1:\d+/0'"), TestClient(app):
        pass
