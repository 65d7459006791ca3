"""The feedback loop through the HTTP API: request ids, impressions, responses, negative feedback, re-ranker state."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import make_settings

from lmrec.serve.app import create_app
from lmrec.serve.feedback.impressions import ImpressionLog
from lmrec.serve.feedback.linear import LinearThompson
from lmrec.serve.profiles import absorb
from lmrec.serve.stores.base import StoredEvent


@contextmanager
def client_for(model_dir: Path, **feedback: Any) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(model_dir, feedback=feedback))) as client:
        yield client


def events(client: TestClient, *evs: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/events", json={"events": list(evs)})
    assert r.status_code == 200, r.text
    return r.json()


def ids(answer: dict[str, Any]) -> list[str]:
    return [i["item_id"] for i in answer["items"]]


def test_negative_event_moves_the_profile_away_by_hand() -> None:
    # P = [1, 0] (one purchase of E1 with a = 1); a dislike of H = [0, 1] with alpha 0.5, w = -1: a = 0.5
    # P' = P - a |P| H = [1, -0.5]: cosine to H goes from 0 to -0.5 / sqrt(1.25)
    e1, e2 = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    w = {"purchase": 2.0, "dislike": -1.0}
    evs = [
        StoredEvent("a", "u", "i", "purchase", None, 0.0, None, seq=1),
        StoredEvent("b", "u", "j", "dislike", None, 0.0, None, seq=2),
    ]
    p = absorb(None, evs, [e1, e2], alpha=0.5, weights=w, space="s")
    np.testing.assert_allclose(p.vector, [1.0, -0.5])
    # a dislike on an empty profile leaves it empty (it does not invent a direction)
    q = absorb(None, evs[1:], [e2], alpha=0.5, weights=w, space="s")
    np.testing.assert_allclose(q.vector, [0.0, 0.0])
    assert q.n_events == 1


def test_every_answer_has_a_request_id_and_responses_are_matched(vec_dir: Path) -> None:
    with client_for(vec_dir, impression_sample=1.0) as client:
        a = client.post("/recommend", json={"user_id": "u1", "k": 3}).json()
        b = client.post("/recommend", json={"k": 2}).json()
        assert len(a["request_id"]) == 32 and a["request_id"] != b["request_id"]
        service = client.app.state.host.service  # type: ignore[attr-defined]
        record = ImpressionLog(service.store).get(a["request_id"])
        assert record is not None and record.items == ids(a) and record.user_id == "u1"
        np.testing.assert_allclose(record.scores, [i["score"] for i in a["items"]], rtol=1e-6)
        np.testing.assert_allclose(record.propensities, [1.0, 1.0, 1.0])  # not randomised
        clicked = ids(a)[1]
        out = events(
            client,
            {"event_id": "e1", "user_id": "u1", "item_id": clicked, "type": "click", "request_id": a["request_id"]},
            {"event_id": "e2", "user_id": "u1", "item_id": "b4", "type": "view", "request_id": "no-such-request"},
            {"event_id": "e3", "user_id": "u9", "item_id": "b4", "type": "view", "request_id": a["request_id"]},
        )
        assert out["accepted"] == 3  # unmatched responses are logged as plain events
        metrics = client.get("/metrics").text
        assert 'lmrec_feedback_responses_total{matched="yes"} 1' in metrics
        assert 'lmrec_feedback_responses_total{matched="no"} 2' in metrics  # unknown id; another user's id
        assert client.get("/health").json()["feedback"]["unmatched_responses"] == 2
        exported = [r for r in ImpressionLog(service.store).export() if r.request_id == a["request_id"]]
        assert [(x.item_id, x.type) for x in exported[0].responses] == [(clicked, "click")]


def test_impression_sampling_off_logs_nothing(vec_dir: Path) -> None:
    with client_for(vec_dir, impression_sample=0.0) as client:
        a = client.post("/recommend", json={"user_id": "u1", "k": 3}).json()
        assert a["request_id"]
        assert ImpressionLog(client.app.state.host.service.store).count() == 0  # type: ignore[attr-defined]
        # an in-memory answer is still matched
        events(
            client,
            {"event_id": "e1", "user_id": "u1", "item_id": ids(a)[0], "type": "click", "request_id": a["request_id"]},
        )
        assert 'lmrec_feedback_responses_total{matched="yes"} 1' in client.get("/metrics").text


def _profile_cos(client: TestClient, user: str, item: str) -> float:
    service = client.app.state.host.service  # type: ignore[attr-defined]
    vec = np.asarray(client.get(f"/users/{user}/export").json()["online_profile"]["vector"])
    item_vec = service.items.vector(service.items.row(item))
    return float(vec @ item_vec / (np.linalg.norm(vec) * np.linalg.norm(item_vec)))


def test_dislike_suppresses_the_item_and_moves_the_profile_away(vec_dir: Path) -> None:
    with client_for(vec_dir) as client:
        events(
            client,
            {"event_id": "c1", "user_id": "u1", "item_id": "s2", "type": "click"},
            {"event_id": "c2", "user_id": "u1", "item_id": "s3", "type": "click"},
        )
        before = client.post("/recommend", json={"user_id": "u1", "k": 12, "exclude_seen": False}).json()
        assert "s4" in ids(before)
        cos_before = _profile_cos(client, "u1", "s4")
        events(client, {"event_id": "d1", "user_id": "u1", "item_id": "s4", "type": "dislike"})
        assert _profile_cos(client, "u1", "s4") < cos_before - 0.05
        for body in (
            {"user_id": "u1", "k": 12, "exclude_seen": False},
            {"user_id": "u1", "k": 12, "query": "leather dress shoes", "exclude_seen": False},
            {"user_id": "u1", "k": 12, "diversity": 0.5, "exclude_seen": False},
        ):
            assert "s4" not in ids(client.post("/recommend", json=body).json())
        # another user still gets it
        assert "s4" in ids(client.post("/recommend", json={"user_id": "u2", "k": 12, "exclude_seen": False}).json())


def test_negative_events_never_make_an_item_popular(vec_dir: Path) -> None:
    def pop(client: TestClient, item: str) -> float:
        service = client.app.state.host.service  # type: ignore[attr-defined]
        return float(service.items.popularity()[service.items.row(item)])

    with client_for(vec_dir) as client:
        base = pop(client, "b4")
        events(
            client,
            {"event_id": "n1", "user_id": "u1", "item_id": "b4", "type": "dislike"},
            {"event_id": "n2", "user_id": "u2", "item_id": "b4", "type": "dismiss"},
            {"event_id": "n3", "user_id": "u3", "item_id": "b4", "type": "skip"},
            {"event_id": "p1", "user_id": "u3", "item_id": "b4", "type": "click"},
        )
        assert pop(client, "b4") == base + 1  # the click only
    with client_for(vec_dir) as restarted:  # popularity rebuilt from the log: the same count
        assert pop(restarted, "b4") == base + 1


def test_dismiss_can_suppress_near_duplicates(vec_dir: Path) -> None:
    with client_for(vec_dir) as probe:
        service = probe.app.state.host.service  # type: ignore[attr-defined]
        v = service.items.index.vectors
        rows = {i: service.items.row(i) for i in ("s1", "s2", "b4")}
        unit = v / np.linalg.norm(v, axis=1, keepdims=True)
        cos_s2 = float(unit[rows["s1"]] @ unit[rows["s2"]])
        cos_b4 = float(unit[rows["s1"]] @ unit[rows["b4"]])
    assert cos_s2 > cos_b4  # "red running shoes" is nearer "blue running shoes" than "history book of rome"
    with client_for(vec_dir, suppress_similar=round(cos_s2 - 1e-3, 6)) as client:
        events(client, {"event_id": "d1", "user_id": "u3", "item_id": "s1", "type": "dismiss"})
        shown = ids(client.post("/recommend", json={"user_id": "u3", "k": 12, "exclude_seen": False}).json())
        assert "s1" not in shown and "s2" not in shown and "b4" in shown


def test_skip_unclicked_above_logs_weak_negatives(vec_dir: Path) -> None:
    with client_for(vec_dir, skip_unclicked_above=True) as client:
        a = client.post("/recommend", json={"user_id": "u1", "k": 4}).json()
        shown = ids(a)
        out = events(
            client,
            {"event_id": "c", "user_id": "u1", "item_id": shown[2], "type": "click", "request_id": a["request_id"]},
        )
        assert out["accepted"] == 3  # the click and two skips
        recent = client.get("/users/u1").json()["recent_events"]
        assert sorted((e["item_id"], e["type"]) for e in recent) == sorted(
            [(shown[2], "click"), (shown[0], "skip"), (shown[1], "skip")]
        )
        # a retried batch adds nothing twice
        again = events(
            client,
            {"event_id": "c", "user_id": "u1", "item_id": shown[2], "type": "click", "request_id": a["request_id"]},
        )
        assert again["accepted"] == 0


def test_epsilon_exploration_logs_exact_propensities(vec_dir: Path) -> None:
    with client_for(vec_dir, reranker="epsilon", explore_rate=1.0, rerank_pool=8, impression_sample=1.0) as client:
        a = client.post("/recommend", json={"k": 3}).json()
        record = ImpressionLog(client.app.state.host.service.store).get(a["request_id"])  # type: ignore[attr-defined]
        assert record is not None and record.explored and record.policy == "epsilon"
        assert len(record.pool) == 8 and record.features is not None and record.features.shape == (8, 9)
        # a uniform arrangement of 8 items: each item is in its slot with probability 1/8
        np.testing.assert_allclose(record.propensities, [1 / 8] * 3)


def test_reranker_learns_saves_and_survives_a_restart(vec_dir: Path) -> None:
    with client_for(vec_dir, reranker="thompson", explore_rate=0.5, save_every=1000) as client:
        assert client.get("/health").json()["feedback"] == {
            "reranker": "thompson",
            "state": "fresh",
            "problem": None,
            "updates": 0,
            "open_impressions": 0,
            "unmatched_responses": 0,
        }
        for i in range(3):
            a = client.post("/recommend", json={"user_id": "u2", "k": 3}).json()
            events(
                client,
                {
                    "event_id": f"c{i}",
                    "user_id": "u2",
                    "item_id": ids(a)[0],
                    "type": "click",
                    "request_id": a["request_id"],
                },
            )
        client.post("/recommend", json={"user_id": "u2", "k": 3})  # closes the third list
        assert client.get("/health").json()["feedback"]["updates"] == 9  # three lists of three
    state = vec_dir / "serve_state" / "feedback" / "reranker.json"
    assert json.loads(state.read_text())["n_updates"] == 9  # saved at shutdown
    with client_for(vec_dir, reranker="thompson") as client:
        health = client.get("/health").json()["feedback"]
        assert (health["state"], health["updates"]) == ("loaded", 9)
    state.with_suffix(".npz").write_bytes(b"not an npz file")
    with client_for(vec_dir, reranker="thompson") as client:
        health = client.get("/health").json()
        assert health["status"] == "ok"
        assert health["feedback"]["state"] == "fresh" and health["feedback"]["updates"] == 0
        assert "did not load; started fresh" in health["feedback"]["problem"]
        assert client.post("/recommend", json={"user_id": "u2", "k": 3}).status_code == 200


def test_periodic_saves_run_off_the_request_path(vec_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writers: list[str] = []
    original = LinearThompson.save

    def recording_save(self: LinearThompson, path: str | Path) -> None:
        writers.append(threading.current_thread().name)
        original(self, path)

    monkeypatch.setattr(LinearThompson, "save", recording_save)
    state = vec_dir / "serve_state" / "feedback" / "reranker.json"
    with client_for(vec_dir, reranker="thompson", save_every=1) as client:
        client.post("/recommend", json={"user_id": "u2", "k": 3})
        client.post("/recommend", json={"user_id": "u2", "k": 3})  # closes the first list: a save is due
        deadline = time.monotonic() + 10
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert json.loads(state.read_text())["n_updates"] == 3  # one list of three, written while serving
        assert writers and writers[0] == "lmrec-feedback-saver"
    assert writers[-1] != "lmrec-feedback-saver"  # the shutdown save is synchronous


def test_export_lists_and_erasure_deletes_the_users_impressions(vec_dir: Path) -> None:
    with client_for(vec_dir, impression_sample=1.0) as client:
        a = client.post("/recommend", json={"user_id": "u5", "k": 3}).json()
        log = ImpressionLog(client.app.state.host.service.store)  # type: ignore[attr-defined]
        assert log.get(a["request_id"]) is not None
        exported = client.get("/users/u5/export").json()["impressions"]
        assert [(x["request_id"], x["items"], x["policy"]) for x in exported] == [(a["request_id"], ids(a), "static")]
        assert client.delete("/users/u5").status_code == 200
        assert log.get(a["request_id"]) is None


def test_linear_thompson_by_hand_and_round_trip(tmp_path: Path) -> None:
    # l2 = 1, prior [0, 0]: rows x = [1, 0], [1, 1] with rewards 1, 0
    # A = I + [[2, 1], [1, 1]] = [[3, 1], [1, 2]], b = [1, 0] -> mean = A^-1 b = [2, -1] / 5
    m = LinearThompson(("a", "b"), np.zeros(2), l2=1.0, noise=0.1)
    m.update(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(m.mean, [0.4, -0.2])
    draws = np.stack([m.sample(np.random.default_rng(i)) for i in range(2000)])
    # posterior covariance noise^2 A^-1 = 0.01 * [[2, -1], [-1, 3]] / 5
    np.testing.assert_allclose(np.cov(draws.T), 0.01 * np.array([[2, -1], [-1, 3]]) / 5, atol=3e-4)
    m.save(tmp_path / "r")
    back = LinearThompson.load(tmp_path / "r", ("a", "b"), noise=0.1)
    np.testing.assert_allclose(back.mean, m.mean)
    assert back.n_updates_ == 2
    with pytest.raises(ValueError, match=r"has features \['a', 'b'\], expected \['a', 'c'\]"):
        LinearThompson.load(tmp_path / "r", ("a", "c"))
    (tmp_path / "r.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read the re-ranker state"):
        LinearThompson.load(tmp_path / "r", ("a", "b"))


def test_a_model_swap_keeps_the_reranker(tmp_path: Path, vec_dir: Path) -> None:
    from serve_helpers import save_bundle

    from lmrec.models.popularity import Popularity

    other = save_bundle(Popularity(), tmp_path / "pop")
    settings = make_settings(
        vec_dir, feedback={"reranker": "greedy"}, models_root=tmp_path, encoder="hashing-32", encoder_backend="fake"
    )
    with TestClient(create_app(settings)) as client:
        a = client.post("/recommend", json={"user_id": "u1", "k": 3}).json()
        events(
            client,
            {"event_id": "c", "user_id": "u1", "item_id": ids(a)[0], "type": "click", "request_id": a["request_id"]},
        )
        old = client.app.state.host.service  # type: ignore[attr-defined]
        assert client.post("/admin/model", json={"path": str(other)}).status_code == 200
        new = client.app.state.host.service  # type: ignore[attr-defined]
        assert new is not old and new.feedback is old.feedback
        client.post("/recommend", json={"user_id": "u1", "k": 3})  # closes u1's list, shown before the swap
        assert client.get("/health").json()["feedback"]["updates"] == 3


def test_an_expired_request_id_is_a_plain_event_counted_unmatched(vec_dir: Path) -> None:
    with client_for(vec_dir, impression_ttl_s=0.05, impression_sample=1.0) as client:
        a = client.post("/recommend", json={"user_id": "u1", "k": 3}).json()
        time.sleep(0.1)
        item = ids(a)[0]
        out = events(
            client,
            {"event_id": "late", "user_id": "u1", "item_id": item, "type": "click", "request_id": a["request_id"]},
        )
        assert out["accepted"] == 1
        assert client.get("/health").json()["feedback"]["unmatched_responses"] == 1
        assert client.get("/users/u1").json()["recent_events"][0]["event_id"] == "late"


def test_retention_deletes_old_impressions_and_their_responses(vec_dir: Path) -> None:
    from lmrec.serve.retention import DAY_S, RetentionReport, enforce_retention

    settings = make_settings(
        vec_dir, feedback={"impression_sample": 1.0}, retention_days={"impression": 1.0, "*": 30.0}
    )
    with TestClient(create_app(settings)) as client:
        service = client.app.state.host.service  # type: ignore[attr-defined]
        shown = ImpressionLog(service.store)
        answers = [client.post("/recommend", json={"user_id": u, "k": 2}).json() for u in ("u1", "u2")]
        events(
            client,
            {
                "event_id": "r1",
                "user_id": "u1",
                "item_id": ids(answers[0])[0],
                "type": "click",
                "request_id": answers[0]["request_id"],
            },
        )
        start = time.time()
        assert enforce_retention(service, start + 0.5 * DAY_S) == RetentionReport(0, 0, 0)
        assert shown.count() == 2
        # two days on: both answers (1 day) and the response to one go; the click event (30 days) stays
        assert enforce_retention(service, start + 2 * DAY_S) == RetentionReport(events=0, queries=0, impressions=2)
        assert shown.count() == 0 and list(shown.export()) == []
        conn = service.store.connection()
        assert conn.execute("SELECT count(*) FROM impression_responses").fetchone()[0] == 0
        assert [e["event_id"] for e in client.get("/users/u1/export").json()["events"]] == ["r1"]
        assert "lmrec_impressions_expired_total 2" in client.get("/metrics").text


def test_unknown_retention_keys_name_impression_as_valid(vec_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown event type\(s\) \['impresion'\]; valid: .*'impression'"):
        make_settings(vec_dir, retention_days={"impresion": 1.0})
