"""Schema-driven fuzzing (schemathesis) of the live service on loopback: every route, with valid and
invalid inputs generated from the OpenAPI schema, must never answer 5xx, must answer only with
statuses, headers and bodies the schema declares, and the service must restart on the state the
run left, healthy and consistent."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, make_settings, save_bundle, serve_in_thread

from lmrec.encoders.fake import HashingEncoder
from lmrec.models.popularity import Popularity
from lmrec.serve.app import create_app
from lmrec.serve.auth import SCOPES, add_key

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

POSITIVE_EXAMPLES = 50  # per route: inputs the schema accepts
NEGATIVE_EXAMPLES = 15  # per route: inputs it rejects
# (is a DELETE, path parameter) -> an id the service knows; deletions get their own, so reads still find theirs
KNOWN_IDS = {(False, "item_id"): "s1", (False, "user_id"): "u1", (True, "item_id"): "t4", (True, "user_id"): "u5"}


def _checks() -> list:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]


def fuzz_one(
    op,
    mode,
    n: int,
    url: str,
    auth: dict,
    checks: list,
    statuses: Counter,
    failures: list[str],
    path: dict | None = None,
) -> None:
    """Up to ``n`` generated requests to one operation (``path``: fixed path parameters); each check
    failure is recorded in ``failures``, each answer's status counted in ``statuses`` by (operation, status)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.core.failures import FailureGroup

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode, path_parameters=path))
    def fuzz(case) -> None:
        response = case.call(base_url=url, headers=auth)
        statuses[(op.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=checks, headers=auth)
        except (AssertionError, FailureGroup) as exc:  # collect them all rather than stop at the first
            failures.append(f"{op.label} [{mode.value}] {response.status_code}: {str(exc)[:600]}")

    try:
        fuzz()
    except hypothesis.errors.Unsatisfiable:  # a route without inputs has no invalid ones to generate
        if mode.value != "negative":
            raise


@pytest.mark.slow
def test_fuzzing_every_route_finds_no_server_error_and_no_answer_outside_the_schema(tmp_path: Path) -> None:
    from schemathesis import GenerationMode

    model = save_bundle(Popularity(), tmp_path / "models" / "pop")
    keys_file = tmp_path / "keys.json"
    key = add_key(keys_file, "fuzz", SCOPES, n=2**8)
    auth = {"Authorization": f"Bearer {key}"}
    state = tmp_path / "state"
    serve = make_settings(model, state_dir=state, api_keys_file=keys_file, max_k=50, max_events_per_batch=20)
    checks = _checks()
    statuses: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []
    app = create_app(serve, encoder=HashingEncoder(DIM))
    with serve_in_thread(app) as url:
        seed = TestClient(app, base_url=url)  # some state for the fuzzer to meet (and the restart to keep)
        assert (
            seed.put(
                "/items/n1", json={"text": "wool socks", "attributes": {"category": "socks", "price": 5}}, headers=auth
            ).status_code
            == 200
        )
        events = [
            {"event_id": f"s{i}", "user_id": f"v{i % 3}", "item_id": item, "type": "click"}
            for i, item in enumerate(["s1", "n1", "b2", "t1"])
        ]
        assert seed.post("/events", json={"events": events}, headers=auth).json()["accepted"] == 4
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 14
        for op in operations:
            for mode, n in ((GenerationMode.POSITIVE, POSITIVE_EXAMPLES), (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)):
                fuzz_one(op, mode, n, url, auth, checks, statuses, failures)
            # random ids are nearly always unknown (404): also fuzz the other inputs at ids that exist
            known = {
                name: KNOWN_IDS[(op.method.upper() == "DELETE", name)]
                for name in ("item_id", "user_id")
                if "{" + name + "}" in op.path
            }
            if known:
                fuzz_one(op, GenerationMode.POSITIVE, POSITIVE_EXAMPLES, url, auth, checks, statuses, failures, known)
        items = app.state.host.service.items  # the state the run left
        before = {item_id: items.texts[row] for item_id, row in items.row_of.items()}
        n_events = app.state.host.service.store.count_events()
    calls = Counter(label for label, _ in statuses.elements())
    # what -s shows (the figures RESULTS.md quotes)
    print(f"\nfuzzed {len(calls)} routes, {sum(calls.values())} requests, {len(failures)} check failures")
    for label in sorted(calls):
        answers = ", ".join(f"{s}: {n}" for (lbl, s), n in sorted(statuses.items()) if lbl == label)
        print(f"  {label}: {calls[label]} examples ({answers})")
    assert not failures, "\n\n".join(failures[:10])
    with_inputs = [label for label in calls if label not in ("GET /health", "GET /metrics", "GET /admin/model")]
    assert len(with_inputs) == len(operations) - 3
    assert all(calls[label] >= POSITIVE_EXAMPLES for label in with_inputs), calls
    # the key was sent and honoured: every route answered something other than 401/403
    assert all(any(s not in (401, 403) for (lbl, s) in statuses if lbl == label) for label in calls), statuses
    assert not any(s >= 500 for _, s in statuses), statuses
    # the service restarts on that state: healthy, consistent, with every item and event it had
    with TestClient(create_app(serve, encoder=HashingEncoder(DIM))) as client:
        health = client.get("/health", headers=auth).json()
        assert (health["status"], health["problems"]) == ("ok", [])
        assert health["quarantined"] == {"items": 0, "events": 0}
        items = client.app.state.host.service.items
        assert {item_id: items.texts[row] for item_id, row in items.row_of.items()} == before
        assert health["live_items"] == len(before) and health["events"] == n_events >= 4
        assert client.post("/recommend", json={"k": 3}, headers=auth).status_code == 200
