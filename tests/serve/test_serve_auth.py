"""Access control: hashed API keys with scopes on every route, checked before the body is read;
refusal to serve a public address without keys; swaps only from below the models root; rate limits."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, make_settings, save_bundle

from lmrec.encoders.fake import HashingEncoder
from lmrec.models.popularity import Popularity
from lmrec.serve.app import create_app
from lmrec.serve.auth import (
    SCOPES,
    AccessControl,
    KeyEntry,
    RateLimit,
    TokenBucket,
    add_key,
    check_bind,
    hash_key,
    load_keys,
    verify_key,
)
from lmrec.serve.settings import ServeSettings

FAST = 2**8  # scrypt cost for tests (the default, 2**14, takes tens of milliseconds per check)

# every guarded route: (method, path, body, the scope it needs, the status the right key gets)
ROUTES = [
    ("POST", "/recommend", {"k": 2}, "recommend", 200),
    ("POST", "/explain", {"item_id": "s1"}, "recommend", 200),
    ("GET", "/items/s1/similar?k=2", None, "recommend", 200),
    ("GET", "/items/s1/related?k=2", None, "recommend", 200),
    (
        "POST",
        "/events",
        {"events": [{"event_id": "e1", "user_id": "x1", "item_id": "s2", "type": "click"}]},
        "events",
        200,
    ),
    ("GET", "/users/u1", None, "users", 200),
    ("GET", "/users/u1/export", None, "users", 200),
    ("DELETE", "/users/u5", None, "users", 200),
    ("PUT", "/items/n1", {"text": "wool socks"}, "catalog", 200),
    ("DELETE", "/items/s4", None, "catalog", 200),
    ("GET", "/admin/model", None, "admin", 200),
    ("POST", "/admin/model", {"path": "no-such-model"}, "admin", 422),
    ("GET", "/metrics", None, "admin", 200),
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A server over the tiny shop with one key per scope (named after it) and one rate-limited key."""
    model = save_bundle(Popularity(), tmp_path / "models" / "pop")
    keys_file = tmp_path / "keys.json"
    keys = {scope: add_key(keys_file, scope, [scope], n=FAST) for scope in SCOPES}
    keys["slow"] = add_key(keys_file, "slow", ["recommend"], rate_limit=RateLimit(per_second=0.01, burst=2), n=FAST)
    settings = make_settings(model, api_keys_file=keys_file)
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as client:
        yield client, keys


# ---------------------------------------------------------------------- hashing and the keys file
def test_hash_is_salted_scrypt_and_verifies_only_the_key() -> None:
    h1, h2 = hash_key("s3cret-key", n=FAST), hash_key("s3cret-key", n=FAST)
    assert h1.startswith(f"scrypt${FAST}$8$1$") and h1 != h2  # a fresh salt each time
    assert verify_key("s3cret-key", h1) and verify_key("s3cret-key", h2)
    assert not verify_key("s3cret-kez", h1) and not verify_key("", h1)
    with pytest.raises(ValueError, match=r"hash: expected 'scrypt\$<n>\$<r>\$<p>\$<salt>\$<digest>'"):
        verify_key("x", "sha256$abc")
    with pytest.raises(ValueError, match="key: an API key must not be empty"):
        hash_key("")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_add_key_stores_only_the_hash(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"keys{suffix}"
    raw = add_key(path, "shop", ["recommend", "events"], rate_limit=RateLimit(per_second=5), n=FAST)
    other = add_key(path, "ops", ["admin"], key="my-own-admin-key", n=FAST)
    text = path.read_text()
    assert raw not in text and "my-own-admin-key" not in text and len(raw) >= 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    entries = load_keys(path)
    assert [(e.name, e.scopes) for e in entries] == [("shop", ("recommend", "events")), ("ops", ("admin",))]
    assert entries[0].rate_limit == RateLimit(per_second=5) and entries[0].rate_limit.capacity == 5
    assert verify_key(raw, entries[0].hash) and verify_key(other, entries[1].hash)
    with pytest.raises(ValueError, match="name: a key named 'shop' is already in"):
        add_key(path, "shop", ["recommend"], n=FAST)
    with pytest.raises(ValueError, match=r"scopes: unknown scope\(s\) \['write'\]; valid: \['recommend', 'events'"):
        add_key(path, "w", ["write"], n=FAST)


def test_bad_keys_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"name": "a", "hash": "plain-text-key", "scopes": ["recommend"]}]))
    with pytest.raises(ValueError, match=r"api_keys_file .*keys.json: keys\[0\].hash: hash: expected 'scrypt") as info:
        load_keys(path)
    assert "plain-text-key" not in str(info.value)  # the bad value is not echoed
    h = hash_key("k", n=FAST)
    path.write_text(json.dumps({"keys": [{"name": "a", "hash": h, "scopes": ["recommend"]}] * 2}))
    with pytest.raises(ValueError, match=r"key names must be unique; repeated: \['a'\]"):
        load_keys(path)
    with pytest.raises(ValueError, match="cannot read it"):
        load_keys(tmp_path / "missing.json")


def test_keys_from_the_environment_through_the_settings(tmp_path: Path) -> None:
    h = hash_key("env-key", n=FAST)
    env = {"LMREC_API_KEYS": json.dumps([{"name": "env", "hash": h, "scopes": ["events"]}])}
    settings = ServeSettings.from_env(env, model_dir=tmp_path)
    assert settings.api_keys == (KeyEntry(name="env", hash=h, scopes=("events",)),)
    assert "env-key" not in repr(settings) and h not in repr(settings)
    access = AccessControl.from_settings(settings)
    assert access.has_keys and access.authorize("Bearer env-key", "events").name == "env"


def test_verification_is_cached_by_hmac_not_by_the_raw_key() -> None:
    access = AccessControl([KeyEntry(name="a", hash=hash_key("good", n=FAST), scopes=("recommend",))])
    assert access.cached("good") == (False, None)
    assert access.identify("good").name == "a" and access.identify("bad") is None
    assert access.cached("good")[1].name == "a" and access.cached("bad") == (True, None)
    cache_keys = [*access._good, *access._bad]  # noqa: SLF001 - what the caches hold
    assert all(isinstance(k, bytes) and len(k) == 32 and k not in (b"good", b"bad") for k in cache_keys)


# ---------------------------------------------------------------------- the scope matrix
@pytest.mark.parametrize(("method", "path", "body", "scope", "status"), ROUTES, ids=[f"{r[0]} {r[1]}" for r in ROUTES])
def test_scope_matrix(keyed, method: str, path: str, body, scope: str, status: int) -> None:
    client, keys = keyed

    def call(headers: dict[str, str]):
        return client.request(method, path, json=body, headers=headers)

    missing = call({})
    assert missing.status_code == 401, missing.text
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="lmrec"'
    assert missing.json() == {
        "detail": "authorization: an API key is required: send 'Authorization: Bearer <key>'",
        "field": "authorization",
    }
    for wrong in ("Bearer not-a-key", "Basic dXNlcjpwYXNz", f"Bearer {keys[scope]}x", "Bearer " + "k" * 600):
        answer = call({"Authorization": wrong})
        assert answer.status_code == 401, (wrong, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="lmrec"')
    other = next(s for s in SCOPES if s != scope)
    forbidden = call(bearer(keys[other]))
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == f"authorization: API key {other!r} lacks the scope {scope!r} this route needs"
    right = call(bearer(keys[scope]))
    assert right.status_code == status, right.text


def test_the_key_is_checked_before_the_body_is_read(keyed) -> None:
    client, keys = keyed
    json_type = {"Content-Type": "application/json"}
    assert client.post("/recommend", content=b"{not json", headers=json_type).status_code == 401
    assert (
        client.post("/recommend", content=b"{not json", headers={**json_type, **bearer(keys["events"])}).status_code
        == 403
    )
    assert (
        client.post("/recommend", content=b"{not json", headers={**json_type, **bearer(keys["recommend"])}).status_code
        == 422
    )
    assert client.post("/events", json={"events": "nope"}).status_code == 401
    assert client.get("/items/" + "x" * 300 + "/similar").status_code == 401  # an over-long path id: 401 before 422


def test_health_is_open_but_says_only_the_status_without_a_key(keyed) -> None:
    client, keys = keyed
    anonymous = client.get("/health")
    assert anonymous.status_code == 200
    assert {k: v for k, v in anonymous.json().items() if v not in (None, [])} == {"status": "ok"}
    full = client.get("/health", headers=bearer(keys["events"])).json()  # any valid key
    assert full["model"] == "Popularity" and full["items"] == 12 and full["model_dir"].endswith("pop")
    assert client.get("/health", headers=bearer("wrong")).json()["model_dir"] is None


def test_rate_limit_answers_429_with_retry_after(keyed) -> None:
    client, keys = keyed
    statuses = [client.post("/recommend", json={"k": 1}, headers=bearer(keys["slow"])).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # a burst of 2, then 1 token per 100 s
    limited = client.post("/recommend", json={"k": 1}, headers=bearer(keys["slow"]))
    assert limited.headers["Retry-After"] == "100"  # ceil((1 - ~0 tokens) / 0.01 per s)
    assert limited.json()["detail"].startswith(
        "authorization: API key 'slow' exceeded its rate limit of 0.01 requests/s"
    )
    assert client.post("/recommend", json={"k": 1}, headers=bearer(keys["recommend"])).status_code == 200  # per key


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=2.0, capacity=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # empty: one token takes 1 / 2 s
    now[0] += 0.25
    assert bucket.take() == pytest.approx(0.25)  # half a token refilled
    now[0] += 0.25
    assert bucket.take() == 0.0
    now[0] += 100.0
    assert [bucket.take() for _ in range(4)][-1] == pytest.approx(0.5)  # refills only up to the capacity


def test_no_keys_on_loopback_leaves_every_route_open(pop_client: TestClient) -> None:
    assert pop_client.post("/recommend", json={"k": 1}).status_code == 200
    assert pop_client.get("/metrics").status_code == 200
    assert pop_client.get("/health").json()["model"] == "Popularity"


# ---------------------------------------------------------------------- binding
def test_a_public_address_without_keys_is_refused_unless_insecure(caplog: pytest.LogCaptureFixture) -> None:
    for host in ("0.0.0.0", "::", "192.168.1.20", "example.org"):
        with pytest.raises(
            ValueError, match=f"host: refusing to serve '{host}' \\(not a loopback address\\) without API keys"
        ):
            check_bind(host, has_keys=False, insecure=False)
    check_bind("0.0.0.0", has_keys=True, insecure=False)  # keys: fine, nothing to say
    with caplog.at_level(logging.WARNING, logger="lmrec.serve.auth"):
        check_bind("0.0.0.0", has_keys=False, insecure=True)
        for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
            check_bind(host, has_keys=False, insecure=False)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("INSECURE: serving 0.0.0.0 without API keys")
    assert len(messages) == 5 and all("no API keys configured" in m for m in messages[1:])


def test_lmrec_serve_refuses_a_public_address_without_keys(pop_dir: Path) -> None:
    from typer.testing import CliRunner

    from lmrec.cli import app

    result = CliRunner().invoke(app, ["serve", "--model", str(pop_dir), "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "refusing to serve '0.0.0.0' (not a loopback address) without API keys" in result.output


# ---------------------------------------------------------------------- swaps only below the models root
def test_swaps_load_only_from_below_the_models_root(tmp_path: Path) -> None:
    root = tmp_path / "models"
    served = save_bundle(Popularity(), root / "a")
    save_bundle(Popularity(), root / "b")
    outside = save_bundle(Popularity(), tmp_path / "outside" / "c")
    (root / "link").symlink_to(outside)
    (root / "file").write_text("x")
    (root / "empty").mkdir()
    generic = {"detail": "path: no model directory at this path below the models root", "field": "path"}
    with TestClient(create_app(make_settings(served), encoder=HashingEncoder(DIM))) as client:
        for path in [
            "../outside/c",
            str(outside),
            "link",
            str(root / "link"),
            "a/../../outside/c",
            "/etc",
            "/etc/passwd",
            "/",
            "..",
            "missing",
            "file",
            "empty",
            "a\x00b",
            str(tmp_path),
            "~",
            "../../../../../../etc",
        ]:
            answer = client.post("/admin/model", json={"path": path})
            assert (answer.status_code, answer.json()) == (422, generic), path
        status = client.get("/admin/model").json()
        assert status["swaps"] == 0 and status["last_error"] == "no model directory at this path below the models root"
        assert client.post("/admin/model", json={"path": "b"}).json()["model_dir"] == str((root / "b").resolve())
        assert client.post("/admin/model", json={"path": str(root / "a" / ".." / "a")}).json()["swaps"] == 2


def test_the_models_root_can_be_set(tmp_path: Path) -> None:
    served = save_bundle(Popularity(), tmp_path / "m" / "a")
    other = save_bundle(Popularity(), tmp_path / "elsewhere" / "b")
    settings = make_settings(served, models_root=tmp_path / "elsewhere")
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as client:
        assert client.post("/admin/model", json={"path": "b"}).json()["model_dir"] == str(other.resolve())
        assert client.post("/admin/model", json={"path": str(served)}).status_code == 422


# ---------------------------------------------------------------------- the OpenAPI schema
def test_openapi_declares_the_scheme_the_scopes_every_answer_and_the_bounds(pop_dir: Path) -> None:
    app = create_app(make_settings(pop_dir, max_k=50, max_query_chars=300), encoder=HashingEncoder(DIM))
    schema = app.openapi()
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "description": "An API key (lmrec.serve.auth) as 'Authorization: Bearer <key>'; each route names the scope it needs.",
        "scheme": "bearer",
        "bearerFormat": "API key",
    }
    paths = schema["paths"]
    scopes = {(m.upper(), p): op.get("x-required-scope") for p, ops in paths.items() for m, op in ops.items()}
    expected = {
        (
            m,
            p.split("?")[0]
            .replace("s1", "{item_id}")
            .replace("n1", "{item_id}")
            .replace("s4", "{item_id}")
            .replace("u1", "{user_id}")
            .replace("u5", "{user_id}"),
        ): s
        for m, p, _, s, _ in ROUTES
    }
    assert scopes == {**expected, ("GET", "/health"): None}
    for (method, path), scope in scopes.items():
        op = paths[path][method.lower()]
        codes = set(op["responses"])
        if scope is None:
            assert "security" not in op and codes == {"200", "500"}
            continue
        assert op["security"] == [{"apiKey": []}]
        assert {"200", "401", "403", "429", "500"} <= codes, (method, path)
        assert ("422" in codes) == ("parameters" in op or "requestBody" in op)
        assert (
            "WWW-Authenticate" in op["responses"]["401"]["headers"]
            and "Retry-After" in op["responses"]["429"]["headers"]
        )
        if method in ("POST", "PUT"):
            assert {"400", "413"} <= codes
    request = schema["components"]["schemas"]["RecommendRequest"]["properties"]
    assert (request["k"]["minimum"], request["k"]["maximum"]) == (1, 50)
    assert {"type": "string", "maxLength": 300} in request["query"]["anyOf"]
    similar_k = next(p for p in paths["/items/{item_id}/similar"]["get"]["parameters"] if p["name"] == "k")
    assert (similar_k["schema"]["minimum"], similar_k["schema"]["maximum"]) == (1, 50)
