"""Two `lmrec serve --store redis` processes behind HAProxy on loopback: read-after-write through the
balancer, a replica killed with SIGKILL under load, and its rejoin from the stream."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_server import RedisServer
from serve_helpers import free_port

pytestmark = pytest.mark.slow

SERVER = "import sys; from lmrec.serve import ServeSettings, run_server; run_server(ServeSettings.model_validate_json(sys.argv[1]))"


def _start(settings: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as sink:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(settings)], stdout=sink, stderr=sink, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{settings['port']}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"replica did not start: {log.read_text()[-2000:]}")


HAPROXY = """global
    maxconn 256
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 2
    option redispatch
    retry-on conn-failure empty-response response-timeout
frontend lmrec
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
{servers}
"""


@pytest.fixture
def cluster(pop_dir: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (apt-get install -y haproxy)")
    try:
        redis = RedisServer(tmp_path / "redis")
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(str(exc))
    ports = [free_port(), free_port()]
    settings = [
        {
            "model_dir": str(pop_dir),
            "port": port,
            "profile_store": "redis",
            "redis_url": redis.url,
            "state_dir": str(tmp_path / f"replica{i}"),
            "encoder_backend": "fake",
            "items_sync_interval_s": 0.0,
            "log_level": "warning",
        }
        for i, port in enumerate(ports)
    ]
    procs = [_start(s, tmp_path / f"replica{i}.log") for i, s in enumerate(settings)]
    lb_port = free_port()
    servers = "\n".join(
        f"    server r{i} 127.0.0.1:{port} check inter 200ms fall 1 rise 2" for i, port in enumerate(ports)
    )
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY.format(port=lb_port, servers=servers))
    lb = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = {"lb": f"http://127.0.0.1:{lb_port}", "ports": ports, "procs": procs, "settings": settings, "tmp": tmp_path}
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(state["lb"] + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "haproxy did not start"
            time.sleep(0.1)
        yield state
    finally:
        lb.terminate()
        for proc in state["procs"]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
        redis.stop()


def test_replicas_behind_haproxy_survive_a_kill(cluster: dict[str, Any]) -> None:
    lb = httpx.Client(base_url=cluster["lb"], timeout=10)
    # read-after-write through the balancer: round robin sends the event and the next recommendation
    # to different replicas; the clicked item must already be excluded and the profile used
    for n in range(10):
        event = {"event_id": f"raw{n}", "user_id": f"w{n}", "item_id": "b2", "type": "click"}
        assert lb.post("/events", json={"events": [event]}).json()["accepted"] == 1
        answer = lb.post("/recommend", json={"user_id": f"w{n}", "k": 3}).json()
        assert answer["strategy"] == "profile" and "b2" not in [x["item_id"] for x in answer["items"]]

    acked: list[str] = []
    errors = {"events": 0, "recommend": 0}
    stop = threading.Event()

    def load() -> None:
        client = httpx.Client(base_url=cluster["lb"], timeout=10)
        n = 0
        while not stop.is_set():
            batch = [
                {
                    "event_id": f"m{n}-{j}",
                    "user_id": f"u{(n + j) % 7}",
                    "item_id": ["b2", "b3", "s1"][j],
                    "type": "click",
                }
                for j in range(3)
            ]
            n += 1
            try:
                r = client.post("/events", json={"events": batch})
                if r.status_code == 200:
                    acked.extend(e["event_id"] for e in batch)
                else:
                    errors["events"] += 1
            except httpx.HTTPError:
                errors["events"] += 1
            try:
                if client.post("/recommend", json={"user_id": f"u{n % 7}", "k": 5}).status_code != 200:
                    errors["recommend"] += 1
            except httpx.HTTPError:
                errors["recommend"] += 1

    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(1.0)
    cluster["procs"][0].send_signal(signal.SIGKILL)  # kill -9 replica 0 under load
    cluster["procs"][0].wait()
    time.sleep(1.5)
    cluster["procs"][0] = _start(cluster["settings"][0], cluster["tmp"] / "replica0.log")  # rejoins
    time.sleep(1.0)
    stop.set()
    worker.join()
    # a retried or redispatched batch counts as a duplicate, never as a loss; errors only around the kill
    assert len(acked) > 30 and errors["events"] + errors["recommend"] <= 6, errors
    replicas = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=10) for p in cluster["ports"]]
    deadline = time.monotonic() + 10
    while len({r.get("/health").json()["stream"]["position"] for r in replicas}) > 1:
        assert time.monotonic() < deadline, "the rejoined replica did not catch up"
        time.sleep(0.1)
    counts = [r.get("/health").json()["events"] for r in replicas]
    assert counts[0] == counts[1] >= len(set(acked)) + 10  # every acknowledged event, on both replicas
    for user in [f"u{i}" for i in range(7)]:
        summaries = [r.get(f"/users/{user}").json() for r in replicas]
        assert summaries[0]["online_profile"] == summaries[1]["online_profile"]
        assert summaries[0]["n_events"] == summaries[1]["n_events"]
        answers = [r.post("/recommend", json={"user_id": user, "k": 5}).json()["items"] for r in replicas]
        assert answers[0] == answers[1]


def test_workers_share_one_port_and_the_stream(pop_dir: Path, tmp_path: Path) -> None:
    try:
        redis = RedisServer(tmp_path / "redis")
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(str(exc))
    settings = {
        "model_dir": str(pop_dir),
        "port": free_port(),
        "profile_store": "redis",
        "redis_url": redis.url,
        "encoder_backend": "fake",
        "items_sync_interval_s": 0.0,
        "log_level": "warning",
        "workers": 2,
    }
    proc = _start(settings, tmp_path / "workers.log")
    try:
        # new connections spread over both processes; each answer must reflect the event just logged
        for n in range(12):
            event = {"event_id": f"wk{n}", "user_id": f"k{n}", "item_id": "b2", "type": "click"}
            with httpx.Client(base_url=f"http://127.0.0.1:{settings['port']}", timeout=10) as client:
                assert client.post("/events", json={"events": [event]}).json()["accepted"] == 1
            with httpx.Client(base_url=f"http://127.0.0.1:{settings['port']}", timeout=10) as client:
                answer = client.post("/recommend", json={"user_id": f"k{n}", "k": 3}).json()
            assert answer["strategy"] == "profile" and "b2" not in [x["item_id"] for x in answer["items"]]
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2  # uvicorn's worker processes
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        redis.stop()
