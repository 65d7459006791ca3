"""kill -9 during ingestion loses no acknowledged event (a real server process)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from serve_helpers import free_port, make_settings, save_bundle

from lmrec.models.popularity import Popularity

ITEMS = ["s1", "s2", "s3", "s4", "t1", "t2", "t3", "t4", "b1", "b2", "b3", "b4"]
USERS = [f"user{n}" for n in range(8)]


def start_server(settings_json: str, port: int) -> subprocess.Popen:
    code = (
        "import sys; from lmrec.serve import ServeSettings, run_server; "
        "run_server(ServeSettings.model_validate_json(sys.argv[1]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, settings_json], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become healthy in 90 s")


def batch(start: int, size: int, tag: str) -> list[dict]:
    return [
        {"event_id": f"{tag}-{n}", "user_id": USERS[n % len(USERS)], "item_id": ITEMS[n % len(ITEMS)], "type": "click"}
        for n in range(start, start + size)
    ]


def ingest_until_killed(port: int, proc: subprocess.Popen, n_before_kill: int) -> list[str]:
    """Post batches from a thread; kill -9 the server while posts are in flight; return acknowledged ids."""
    acked: list[str] = []
    stop = threading.Event()

    def post_forever() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            n = 0
            while not stop.is_set():
                events = batch(n, 10, "pre")
                n += 10
                try:
                    response = client.post("/events", json={"events": events})
                except httpx.HTTPError:
                    return  # the server died mid-request: this batch was never acknowledged
                if response.status_code == 200 and response.json()["accepted"] == len(events):
                    acked.extend(e["event_id"] for e in events)

    thread = threading.Thread(target=post_forever)
    thread.start()
    while len(acked) < n_before_kill and thread.is_alive():
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    stop.set()
    thread.join(10)
    return list(acked)


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    # Redis profiles: test_serve_redis replays a lost Redis write in-process; benchmarks/serve_crash.py
    # --profile-store redis runs this same kill -9 cycle against a real Redis.
    model_dir = save_bundle(Popularity(), tmp_path / "pop")
    port = free_port()
    settings = make_settings(model_dir, port=port, encoder="hashing-32", encoder_backend="fake", log_level="warning")
    settings_json = settings.model_dump_json()
    proc = start_server(settings_json, port)
    acked = ingest_until_killed(port, proc, n_before_kill=300)
    assert len(acked) >= 300

    proc = start_server(settings_json, port)  # restart on the same state directory
    try:
        db = sqlite3.connect(settings.resolved_state_dir / "lmrec.sqlite3")
        logged = {row[0] for row in db.execute("SELECT event_id FROM events")}
        assert set(acked) <= logged, f"lost {len(set(acked) - logged)} acknowledged events"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for user in USERS:
                body = client.get(f"/users/{user}").json()
                # the profile has absorbed every logged event of the user (none lost, none twice)
                assert body["online_profile"]["n_events"] == body["n_events"], user
            post = client.post("/events", json={"events": batch(0, 300, "post")}).json()
            assert post["accepted"] == 300
            again = client.post(
                "/events", json={"events": [{"event_id": acked[0], "user_id": "x", "item_id": "s1", "type": "view"}]}
            )
            assert again.json()["duplicates"] == 1
            total = sum(client.get(f"/users/{u}").json()["online_profile"]["n_events"] for u in USERS)
        assert total == len(logged) + 300
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
