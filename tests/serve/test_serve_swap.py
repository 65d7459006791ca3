"""Model hot-swap: admin endpoint, directory watching, zero failed requests, carried-over state."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_helpers import (
    DIM,
    ITEMS,
    TinyVectorModel,
    catalog,
    make_settings,
    save_bundle,
    serve_in_thread,
    tiny_model_registered,
)

from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.bundle import ModelBundle
from lmrec.models.popularity import Popularity
from lmrec.serve.app import create_app
from lmrec.serve.loading import open_service
from lmrec.serve.service import RecService
from lmrec.serve.swap import READY_MARKER, complete_versions

# model B's training data: b2 is the most popular item (4), then b3 (1); model A (HISTORY) leads with s1
BOOK_HISTORY = [("u1", "b2"), ("u2", "b2"), ("u3", "b2"), ("u6", "b2"), ("u6", "b3")]


def save_pop(directory: Path, history: list[tuple[str, str]]) -> Path:
    frame = pd.DataFrame(history, columns=["user_id", "item_id"])
    frame["timestamp"] = np.arange(len(frame), dtype=float)
    data = Dataset(Interactions.from_frame(frame, item_map=IdMap([i[0] for i in ITEMS])), items=catalog(), name="books")
    return ModelBundle(Popularity().fit(data), catalog(), None, {"dataset": data.name}).save(directory)


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def ids(response: httpx.Response) -> list[str]:
    return [i["item_id"] for i in ok(response)["items"]]


def click(client: TestClient | httpx.Client, user: str, items: list[str], prefix: str) -> None:
    events = [{"event_id": f"{prefix}{n}", "user_id": user, "item_id": i, "type": "click"} for n, i in enumerate(items)]
    assert ok(client.post("/events", json={"events": events}))["accepted"] == len(items)


@pytest.fixture
def two_pops(tmp_path: Path) -> tuple[Path, Path]:
    return save_bundle(Popularity(), tmp_path / "a"), save_pop(tmp_path / "b", BOOK_HISTORY)


def test_admin_swap_serves_the_new_model_and_keeps_events_items_and_profiles(tmp_path: Path, two_pops) -> None:
    a, b = two_pops
    settings = make_settings(a, state_dir=tmp_path / "state")
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as client:
        version_a = ok(client.get("/health"))["model_version"]
        assert ids(client.post("/recommend", json={"user_id": "stranger", "k": 1})) == ["s1"]
        assert ok(client.put("/items/n1", json={"text": "gardening book of roses"}))["created"] is True
        click(client, "live", ["b1", "b3"], "e")
        before_live = ok(client.post("/recommend", json={"user_id": "live", "k": 3}))

        swap = ok(client.post("/admin/model", json={"path": str(b)}))
        assert swap["previous_version"] == version_a and swap["swaps"] == 1
        assert swap["model_dir"] == str(b.resolve()) and swap["model_version"] != version_a
        health = ok(client.get("/health"))
        assert (health["model_version"], health["swaps"], health["model_dir"]) == (
            swap["model_version"],
            1,
            str(b.resolve()),
        )
        assert health["events"] == 2  # the event log carried over
        # stranger: popularity of B (b2: 4 training) plus the logged clicks (b1, b3: +1 each) -> b2 first
        after = client.post("/recommend", json={"user_id": "stranger", "k": 2})
        assert ids(after) == ["b2", "b3"] and after.json()["model_version"] == swap["model_version"]
        # the item PUT under model A is served by model B
        assert ok(client.get("/items/n1/similar", params={"k": 1}))["items"]
        assert "n1" in ids(client.post("/recommend", json={"query": "gardening roses", "k": 2}))
        # the live user's events still shape the list: same answer as a fresh server over B would give
        live = ok(client.post("/recommend", json={"user_id": "live", "k": 3}))
        assert live["strategy"] == "profile" and live["known_user"] is True
        assert [i["item_id"] for i in live["items"]] == [i["item_id"] for i in before_live["items"]]  # same text space
        metrics = client.get("/metrics").text
        assert "lmrec_model_swaps 1" in metrics and "lmrec_model_swaps_total 1" in metrics
        assert f'lmrec_model_info{{model_dir="{b.resolve()}",version="{swap["model_version"]}"}} 1' in metrics
        status = ok(client.get("/admin/model"))
        assert (status["swaps"], status["swap_failures"], status["last_error"], status["swapping"]) == (
            1,
            0,
            None,
            False,
        )
    with TestClient(create_app(make_settings(b, state_dir=tmp_path / "state"), encoder=HashingEncoder(DIM))) as fresh:
        assert ids(fresh.post("/recommend", json={"user_id": "live", "k": 3})) == [i["item_id"] for i in live["items"]]
        assert ids(fresh.post("/recommend", json={"user_id": "stranger", "k": 2})) == ["b2", "b3"]


@pytest.mark.parametrize("rebuild", [False, True], ids=["lazy-replay", "background-rebuild"])
def test_profiles_are_rebuilt_in_the_new_vector_space(tmp_path: Path, monkeypatch, rebuild: bool) -> None:
    check_profiles_follow_the_swap(tmp_path, monkeypatch, rebuild)


@pytest.mark.parametrize("rebuild", [False, True], ids=["lazy-replay", "background-rebuild"])
def test_redis_profiles_are_rebuilt_in_the_new_vector_space(
    tmp_path: Path, monkeypatch, rebuild: bool, redis_url: str
) -> None:
    prefix = f"swap-{tmp_path.name}:"
    check_profiles_follow_the_swap(
        tmp_path, monkeypatch, rebuild, profile_store="redis", redis_url=redis_url, redis_prefix=prefix
    )


def check_profiles_follow_the_swap(tmp_path: Path, monkeypatch, rebuild: bool, **overrides) -> None:
    """Popularity (text space, 32-d hashing vectors) -> a vector model with 16-d vectors of its own:
    a profile written under the old model is useless in the new space; the user's events must still
    drive their list, exactly as on a server started on the new model with the same log."""
    if not rebuild:
        monkeypatch.setattr(RecService, "rebuild_profiles", lambda self, batch=200: 0)
    a = save_bundle(Popularity(), tmp_path / "a")
    state = tmp_path / "state"
    with tiny_model_registered():
        v = save_bundle(TinyVectorModel(dim=16), tmp_path / "v")
        app = create_app(make_settings(a, state_dir=state, **overrides), encoder=HashingEncoder(DIM))
        with TestClient(app) as client:
            click(client, "live", ["b1", "b3", "b2"], "e")  # a cold user into books
            click(client, "u1", ["b4", "b2"], "f")  # a known user (shoes and shirts) adds books
            ok(client.post("/admin/model", json={"path": str(v)}))
            host = app.state.host
            host.wait_rebuilt()
            new_space = host.service.space.name
            assert new_space.startswith("model:tiny_vector_test-")
            live = ok(client.post("/recommend", json={"user_id": "live", "k": 3}))
            known = ok(client.post("/recommend", json={"user_id": "u1", "k": 4}))
            assert live["strategy"] == "profile" and known["strategy"] == "profile"
            assert [i["item_id"] for i in live["items"]][0] == "b4"  # the one book not yet clicked
            stored = host.service.profiles.get("live")
            assert (stored.space == new_space) is rebuild  # lazy: replayed per request, not written back
            assert len(stored.vector) == (16 if rebuild else DIM)
            # a new event after the swap: the profile is rebuilt from the whole log, then stored
            click(client, "live", ["s4"], "g")
            assert host.service.profiles.get("live").space == new_space
            assert host.service.profiles.get("live").n_events == 4
            after_event = ids(client.post("/recommend", json={"user_id": "live", "k": 3}))
        with TestClient(create_app(make_settings(v, state_dir=state, **overrides))) as fresh:
            assert ids(fresh.post("/recommend", json={"user_id": "u1", "k": 4})) == [
                i["item_id"] for i in known["items"]
            ]
            assert ids(fresh.post("/recommend", json={"user_id": "live", "k": 3})) == after_event


def test_failed_swaps_name_the_problem_and_keep_the_old_model(tmp_path: Path, pop_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with TestClient(create_app(make_settings(pop_dir), encoder=HashingEncoder(DIM))) as client:
        version = ok(client.get("/health"))["model_version"]
        # below the models root (the model's parent, tmp_path): a missing path, a file and a directory
        # without config.json get one generic message; a model directory that does not load says why
        generic = "^path: no model directory at this path below the models root$"
        cases = [
            (tmp_path / "missing", generic),
            (tmp_path / "file", generic),
            (tmp_path / "empty", generic),
            (broken, "^path: cannot load the model in .*broken: JSONDecodeError"),
        ]
        for path, message in cases:
            response = client.post("/admin/model", json={"path": str(path)})
            assert response.status_code == 422, response.text
            assert response.json()["field"] == "path"
            assert re.search(message, response.json()["detail"]), response.json()["detail"]
            assert ok(client.get("/health"))["model_version"] == version
        assert client.post("/admin/model", json={}).json()["field"] == "path"
        status = ok(client.get("/admin/model"))
        assert (status["swaps"], status["swap_failures"]) == (0, 4)
        assert "cannot load the model" in status["last_error"]
        assert ids(client.post("/recommend", json={"user_id": "stranger", "k": 1})) == ["s1"]
        assert "lmrec_model_swap_failures_total 4" in client.get("/metrics").text


def test_admin_routes_need_the_token_when_one_is_set(two_pops) -> None:
    a, b = two_pops
    with TestClient(create_app(make_settings(a, model_admin_token="s3cret"), encoder=HashingEncoder(DIM))) as client:
        missing = client.post("/admin/model", json={"path": str(b)})
        assert missing.status_code == 401 and missing.json()["field"] == "authorization"
        wrong = client.get("/admin/model", headers={"Authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["detail"]) == (401, "authorization: invalid API key")
        assert ok(client.get("/health"))["swaps"] == 0
        # only the admin scope is guarded by the token: the other routes stay open
        assert client.post("/recommend", json={"k": 1}).status_code == 200
        good = client.post("/admin/model", json={"path": str(b)}, headers={"Authorization": "Bearer s3cret"})
        assert ok(good)["swaps"] == 1


def test_a_request_holding_the_old_service_finishes_on_the_old_model(two_pops) -> None:
    a, b = two_pops
    app = create_app(make_settings(a), encoder=HashingEncoder(DIM))
    with TestClient(app) as client:
        old = app.state.host.service  # what a request resolved before the swap
        ok(client.post("/admin/model", json={"path": str(b)}))
        assert old.retired and app.state.host.service is not old
        answer = old.recommend(user_id="stranger", k=1)
        assert ([i.item_id for i in answer.items], answer.model_version) == (["s1"], old.version)


def test_requests_during_swaps_never_fail(tmp_path: Path, two_pops, monkeypatch) -> None:
    import lmrec.serve.swap as swap_module

    def slow_load(*args, **kwargs):  # a load that takes a while, as a real model's does
        time.sleep(0.25)
        return open_successor(*args, **kwargs)

    open_successor = swap_module.open_successor
    monkeypatch.setattr(swap_module, "open_successor", slow_load)
    a, b = two_pops
    app = create_app(make_settings(a, state_dir=tmp_path / "state"), encoder=HashingEncoder(DIM))
    results: list[tuple[int, str, float]] = []  # (status, model version, time the request started)
    lock = threading.Lock()
    stop = threading.Event()

    def fire(url: str, worker: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            n = 0
            while not stop.is_set():
                n += 1
                started = time.monotonic()
                try:
                    if n % 4 == 0:
                        event = {
                            "event_id": f"w{worker}-{n}",
                            "user_id": f"live{worker}",
                            "item_id": "b1",
                            "type": "view",
                        }
                        r = http.post("/events", json={"events": [event]})
                        version = "events"
                    else:
                        r = http.post(
                            "/recommend", json={"user_id": ("stranger", "u1", f"live{worker}")[n % 3], "k": 3}
                        )
                        version = r.json().get("model_version", "?") if r.status_code == 200 else "?"
                    status = r.status_code
                except httpx.HTTPError as exc:
                    status, version = -1, type(exc).__name__
                with lock:
                    results.append((status, version, started))

    with serve_in_thread(app) as url:
        workers = [threading.Thread(target=fire, args=(url, w)) for w in range(4)]
        for w in workers:
            w.start()
        versions, windows = [], []
        with httpx.Client(base_url=url, timeout=60) as admin:
            for path in (b, a, b):
                time.sleep(0.3)
                start = time.monotonic()
                versions.append(ok(admin.post("/admin/model", json={"path": str(path)}))["model_version"])
                windows.append((start, time.monotonic()))
            last_swap_done = time.monotonic()
            time.sleep(0.3)
            stop.set()
            for w in workers:
                w.join()
            # u1 under B (trained on b2): B's model scores rank b3 next (A would say s2); the workers'
            # views of b1 change popularity, not the model's scores
            final = admin.post("/recommend", json={"user_id": "u1", "k": 1})
            assert ids(final) == ["b3"] and final.json()["model_version"] == versions[-1]
            assert ok(admin.get("/health"))["swaps"] == 3
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]
    served = {v for _, v, _ in results if v != "events"}
    assert served <= {versions[0], versions[1]} and len(versions[0]) == 16
    assert len(results) > 20
    assert sum(1 for _, _, t in results if any(s <= t <= e for s, e in windows)) >= 6  # requests overlapped the swaps
    after = [v for _, v, t in results if t > last_swap_done and v != "events"]
    assert after and set(after) == {versions[-1]}


def test_complete_versions_need_the_marker_and_sort_naturally(tmp_path: Path) -> None:
    for name, ready in (("v2", True), ("v10", True), ("v9", True), ("v11", False), (".tmp-v12", True)):
        (tmp_path / name).mkdir()
        if ready:
            (tmp_path / name / READY_MARKER).write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in complete_versions(tmp_path)] == ["v2", "v9", "v10"]
    assert complete_versions(tmp_path / "nowhere") == []


def test_watching_a_directory_swaps_in_each_new_complete_version(tmp_path: Path) -> None:
    watch = tmp_path / "models"
    save_bundle(Popularity(), watch / "v1")
    (watch / "v1" / READY_MARKER).write_text("")
    settings = make_settings(None, model_dir_watch=watch, model_watch_interval_s=0.05)
    app = create_app(settings, encoder=HashingEncoder(DIM))

    def wait_for(predicate, what: str) -> None:
        deadline = time.monotonic() + 20
        while not predicate():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    with TestClient(app) as client:
        health = ok(client.get("/health"))
        assert (health["model_dir"], health["swaps"]) == (str((watch / "v1").resolve()), 0)
        assert (watch / "serve_state" / "lmrec.sqlite3").exists()  # state next to the versions, kept across swaps
        save_pop(watch / "v2", BOOK_HISTORY)  # not complete yet: no READY
        time.sleep(0.3)
        assert ok(client.get("/health"))["swaps"] == 0
        (watch / "v2" / READY_MARKER).write_text("")
        wait_for(lambda: ok(client.get("/health"))["swaps"] == 1, "v2 was not swapped in")
        assert ok(client.get("/health"))["model_dir"] == str((watch / "v2").resolve())
        assert ids(client.post("/recommend", json={"user_id": "stranger", "k": 1})) == ["b2"]
        (watch / "v3").mkdir()  # a complete but broken version: logged, not retried, v2 keeps serving
        (watch / "v3" / READY_MARKER).write_text("")
        wait_for(lambda: ok(client.get("/admin/model"))["swap_failures"] == 1, "v3 was not tried")
        time.sleep(0.3)
        status = ok(client.get("/admin/model"))
        assert (status["swaps"], status["swap_failures"], status["watching"]) == (1, 1, str(watch))
        assert "no config.json" in status["last_error"]
        assert ok(client.get("/health"))["model_dir"] == str((watch / "v2").resolve())


def test_watch_settings_need_a_model_or_a_directory(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from lmrec.serve.settings import ServeSettings

    with pytest.raises(ValidationError, match="model_dir: give a model directory, or model_dir_watch"):
        ServeSettings()
    assert ServeSettings(model_dir_watch=tmp_path).resolved_state_dir == tmp_path / "serve_state"
    with pytest.raises(FileNotFoundError, match="no complete model version in"):
        open_service(ServeSettings(model_dir_watch=tmp_path), encoder=HashingEncoder(DIM))


def test_writes_while_the_new_model_loads_reach_it(tmp_path: Path, two_pops, monkeypatch) -> None:
    """Items PUT and events logged after the successor was built, but before the switch, are applied
    to it at the switch (the swap waits for running writes, then catches up from the stores)."""
    import lmrec.serve.swap as swap_module

    built = threading.Event()
    go_on = threading.Event()

    def load_then_wait(*args, **kwargs):
        service = open_successor(*args, **kwargs)
        built.set()
        assert go_on.wait(10)
        return service

    open_successor = swap_module.open_successor
    monkeypatch.setattr(swap_module, "open_successor", load_then_wait)
    a, b = two_pops
    app = create_app(make_settings(a, state_dir=tmp_path / "state"), encoder=HashingEncoder(DIM))
    with TestClient(app) as client:
        swap = threading.Thread(target=lambda: ok(client.post("/admin/model", json={"path": str(b)})))
        swap.start()
        assert built.wait(10)
        ok(client.put("/items/n1", json={"text": "gardening book of roses"}))
        ok(client.delete("/items/s4"))
        click(client, "late", ["t4"] * 5, "late")  # 5 events on t4 (B's training count: 0)
        assert ok(client.get("/health"))["swaps"] == 0  # still model A
        go_on.set()
        swap.join(10)
        new = app.state.host.service
        assert new.swaps == 1 and new.items.row("n1") is not None and new.items.row("s4") is None
        assert new.items.popularity()[new.items.row("t4")] == 5
        assert ids(client.post("/recommend", json={"query": "gardening roses", "k": 1})) == ["n1"]
