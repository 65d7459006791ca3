"""Off-policy evaluation of re-ranking policies from the impression log, and `lmrec policy evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import make_settings
from typer.testing import CliRunner

from lmrec.cli import app as cli_app
from lmrec.serve.app import create_app
from lmrec.serve.feedback.features import FEATURES
from lmrec.serve.feedback.linear import LinearThompson
from lmrec.serve.feedback.policy import SlotLog, evaluate, evaluate_records, policy_weights

SCORE = FEATURES.index("score")


def test_policy_specs(tmp_path: Path) -> None:
    assert policy_weights("retrieval").tolist() == [1.0 if f == "score" else 0.0 for f in FEATURES]
    w = policy_weights("weights:score=1,novelty=0.5")
    assert (w[SCORE], w[FEATURES.index("novelty")], w.sum()) == (1.0, 0.5, 1.5)
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['colour'\]; valid: \['bias'"):
        policy_weights("weights:colour=1")
    (tmp_path / "p.json").write_text(json.dumps({"weights": {"popularity": 2}}))
    assert policy_weights(str(tmp_path / "p.json"))[FEATURES.index("popularity")] == 2.0
    state = LinearThompson(FEATURES, np.arange(len(FEATURES), dtype=float))
    state.save(tmp_path / "reranker")
    np.testing.assert_allclose(policy_weights(str(tmp_path / "reranker.json")), np.arange(len(FEATURES)))
    with pytest.raises(ValueError, match="not 'retrieval'"):
        policy_weights(str(tmp_path / "missing.txt"))


def test_evaluate_records_by_hand() -> None:
    # two lists of one slot over pools of two items; the "retrieval" policy shows the item with the larger score
    pool0 = np.zeros((2, len(FEATURES)))
    pool0[0, SCORE] = 1.0  # list 0: the policy shows pool item 0
    pool1 = np.zeros((2, len(FEATURES)))
    pool1[1, SCORE] = 1.0  # list 1: the policy shows pool item 1
    log = SlotLog(
        rewards=np.array([[1.0], [0.0]]),
        logging_p=np.array([[0.5], [0.5]]),
        shown_x=np.stack([pool0[[0]], pool1[[0]]]),  # pool item 0 was shown in both lists
        pool_x=[pool0, pool1],
        shown_pos=np.array([[0], [0]]),
    )
    report = evaluate_records(log, policy_weights("retrieval"))
    # IPS: list 0 weight 1 / 0.5 = 2, reward 1 -> 2; list 1 weight 0 -> 0; mean 1
    assert report.ips.value == pytest.approx(1.0)
    # SNIPS: sum w r / sum w = 2 / 2
    assert report.snips.value == pytest.approx(1.0)
    assert (report.n_lists, report.match_rate, report.logged_value) == (2, 0.5, 0.5)


def test_evaluate_reads_the_service_log_and_the_cli_prints_it(vec_dir: Path) -> None:
    settings = make_settings(
        vec_dir, feedback={"reranker": "epsilon", "explore_rate": 0.5, "rerank_pool": 6, "impression_sample": 1.0}
    )
    with TestClient(create_app(settings)) as client:
        for i, user in enumerate(["u1", "u2", "u3", "u4", "u5"] * 2):
            a = client.post("/recommend", json={"user_id": user, "k": 3}).json()
            first = a["items"][0]["item_id"]
            event = {"event_id": f"e{i}", "user_id": user, "item_id": first, "type": "click"}
            r = client.post("/events", json={"events": [{**event, "request_id": a["request_id"]}]})
            assert r.status_code == 200
    state = vec_dir / "serve_state"
    report = evaluate(state, "retrieval")
    assert report.n_lists == 10
    assert report.logged_value == pytest.approx(1.0)  # one click per list, on its first item
    assert report.ips.lower <= report.ips.value <= report.ips.upper
    result = CliRunner().invoke(cli_app, ["policy", "evaluate", "--log", str(state), "--policy", "retrieval", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["n_lists"] == 10 and out["dr"]["value"] == pytest.approx(report.dr.value)
    bad = CliRunner().invoke(cli_app, ["policy", "evaluate", "--log", str(state / "nope"), "--policy", "retrieval"])
    assert bad.exit_code != 0 and "does not exist" in bad.output
