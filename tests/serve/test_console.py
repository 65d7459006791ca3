"""The web console (`lmrec.serve.ui`) without a browser: pages, escaping, access control, its JSON routes,
the metrics summary and the reports listing. The browser test is test_console_browser.py."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, ITEMS, dataset, make_settings

from lmrec.data.catalog import ItemCatalog
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.bundle import ModelBundle
from lmrec.models.popularity import Popularity
from lmrec.serve.app import create_app
from lmrec.serve.auth import KeyEntry, hash_key
from lmrec.serve.ui.live import histogram_quantile, parse_prometheus, summarize_metrics
from lmrec.serve.ui.reports import find_report_file, list_reports

FAST = 2**4  # scrypt cost for test keys
XSS = "<script>alert(1)</script>"
PAGES = ("/ui", "/ui/inspect", "/ui/reports")


def client_for(model_dir: Path, **overrides: object) -> TestClient:
    return TestClient(create_app(make_settings(model_dir, **overrides), encoder=HashingEncoder(DIM)))


@pytest.fixture
def ui(pop_dir: Path) -> Iterator[TestClient]:
    with client_for(pop_dir) as client:
        yield client


# ---------------------------------------------------------------------- pages
@pytest.mark.parametrize("path", PAGES)
def test_each_page_answers_html_with_a_strict_content_security_policy(ui: TestClient, path: str) -> None:
    res = ui.get(path)
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    csp = res.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp and "form-action 'none'" in csp
    assert "unsafe-inline" not in csp
    assert res.headers["x-content-type-options"] == "nosniff"
    page = path.rsplit("/", 1)[-1] if path != "/ui" else "try"
    assert f'data-page="{page}"' in res.text
    # one script, the console's own, and no inline script or handler
    assert res.text.count("<script") == 1 and '<script src="/ui/static/console.js" defer></script>' in res.text
    assert " onclick=" not in res.text and " onload=" not in res.text
    assert "http://" not in res.text and "https://" not in res.text  # no CDN: everything is served here


def test_the_static_files_are_served_and_nothing_else_by_that_route(ui: TestClient) -> None:
    js = ui.get("/ui/static/console.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in js.text  # the script inserts text only
    assert ui.get("/ui/static/console.css").headers["content-type"].startswith("text/css")
    assert ui.get("/ui/static/..%2Froutes.py").status_code == 404
    assert ui.get("/ui/static/routes.py").json()["field"] == "name"


def test_the_page_config_is_escaped(pop_dir: Path) -> None:
    weights = {"click": 0.5, XSS: 1.0}
    with client_for(pop_dir, event_weights=weights) as client:
        text = client.get("/ui").text
    assert XSS not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    config = text.split('data-config="', 1)[1].split('"', 1)[0]
    decoded = json.loads(config.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert decoded["eventTypes"] == sorted(weights) and decoded["authRequired"] is False


def test_the_console_is_off_when_the_setting_says_so_and_by_default_off_loopback(pop_dir: Path) -> None:
    with client_for(pop_dir, console=False) as client:
        assert client.get("/ui").status_code == 404
        assert client.get("/ui/api/items?ids=s1").status_code == 404
        assert client.get("/health").status_code == 200
    assert make_settings(pop_dir).console_enabled is True  # 127.0.0.1
    assert make_settings(pop_dir, host="0.0.0.0", insecure=True).console_enabled is False
    assert make_settings(pop_dir, host="0.0.0.0", console=True).console_enabled is True


def test_console_routes_stay_out_of_the_openapi_schema(ui: TestClient) -> None:
    assert not [p for p in ui.get("/openapi.json").json()["paths"] if p.startswith("/ui")]


# ---------------------------------------------------------------------- access control
@pytest.fixture
def keyed(pop_dir: Path) -> Iterator[TestClient]:
    keys = (
        KeyEntry(name="reader", hash=hash_key("reader-key-123", n=FAST), scopes=("recommend",)),
        KeyEntry(name="ops", hash=hash_key("ops-key-456", n=FAST), scopes=("recommend", "users", "admin")),
    )
    with client_for(pop_dir, api_keys=keys) as client:
        yield client


def test_with_keys_the_pages_load_but_every_data_fetch_needs_a_key(keyed: TestClient) -> None:
    for path in PAGES:
        res = keyed.get(path)
        assert res.status_code == 200
        assert "&quot;authRequired&quot;: true" in res.text
    for path in (
        "/ui/api/items?ids=s1",
        "/ui/api/catalog?q=shoes",
        "/ui/api/users?q=u",
        "/ui/api/model",
        "/ui/api/live",
        "/ui/api/reports",
        "/ui/api/reports/file?name=x&kind=md",
    ):
        res = keyed.get(path)
        assert res.status_code == 401, path
        assert res.json()["detail"] == "authorization: an API key is required: send 'Authorization: Bearer <key>'"
        assert res.headers["www-authenticate"] == 'Bearer realm="lmrec"'
    bad = keyed.get("/ui/api/items?ids=s1", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["detail"] == "authorization: invalid API key"


def test_console_routes_need_the_scope_of_what_they_show(keyed: TestClient) -> None:
    reader = {"Authorization": "Bearer reader-key-123"}
    assert keyed.get("/ui/api/items?ids=s1", headers=reader).json()["items"][0]["title"] == "red running shoes"
    assert keyed.get("/ui/api/catalog?q=s1", headers=reader).status_code == 200
    for path, scope in (("/ui/api/users", "users"), ("/ui/api/model", "admin"), ("/ui/api/live", "admin")):
        res = keyed.get(path, headers=reader)
        assert res.status_code == 403
        assert res.json()["detail"] == f"authorization: API key 'reader' lacks the scope '{scope}' this route needs"
    ops = {"Authorization": "Bearer ops-key-456"}
    assert keyed.get("/ui/api/model", headers=ops).json()["model_name"] == "pop"


def test_the_key_is_never_echoed_in_a_page(keyed: TestClient) -> None:
    for path in PAGES:
        res = keyed.get(path, headers={"Authorization": "Bearer ops-key-456"})
        assert "ops-key-456" not in res.text
    # the key form has no name: a browser never submits the key as a form field (into a URL)
    form = keyed.get("/ui").text.split('<form id="key-form"', 1)[1].split("</form>", 1)[0]
    assert 'id="key-input"' in form and "name=" not in form


# ---------------------------------------------------------------------- the JSON routes
def test_item_cards_keep_the_order_given_and_leave_out_unknown_ids(ui: TestClient) -> None:
    items = ui.get("/ui/api/items?ids=t2,zz,s1,t2").json()["items"]
    assert [i["item_id"] for i in items] == ["t2", "s1"]
    assert items[0] == {
        "item_id": "t2",
        "title": "linen shirt blue",
        "text": "linen shirt blue",
        "attributes": {"category": "shirts", "brand": "zoom", "price": 35.0},
        "image": None,
        "live": True,
    }
    # t4 has no price: the attribute is absent, not NaN
    assert ui.get("/ui/api/items?ids=t4").json()["items"][0]["attributes"] == {"category": "shirts", "brand": "oxford"}


def test_an_item_titled_with_markup_comes_back_as_the_literal_text(ui: TestClient) -> None:
    assert ui.put("/items/x1", json={"text": XSS, "attributes": {"brand": XSS}}).status_code == 200
    card = ui.get("/ui/api/items?ids=x1").json()["items"][0]
    assert card["title"] == XSS and card["attributes"]["brand"] == XSS
    # the page carries no item data at all: the script fetches it and inserts it as text
    assert "alert(1)" not in ui.get("/ui").text


def test_a_deleted_item_is_shown_as_deleted(ui: TestClient) -> None:
    assert ui.delete("/items/b4").status_code == 200
    assert ui.get("/ui/api/items?ids=b4").json()["items"][0]["live"] is False


def test_catalog_search_puts_the_exact_id_first_then_id_prefixes_then_text_matches(ui: TestClient) -> None:
    assert [i["item_id"] for i in ui.get("/ui/api/catalog?q=b1").json()["items"]] == ["b1"]
    # "b" is a prefix of b1..b4, then every other text holding a "b" in row order: s2 ("blue"),
    # t2 ("linen shirt blue"), t4 ("silk shirt black")
    got = [i["item_id"] for i in ui.get("/ui/api/catalog?q=B").json()["items"]]
    assert got == ["b1", "b2", "b3", "b4", "s2", "t2", "t4"]
    assert [i["item_id"] for i in ui.get("/ui/api/catalog?q=NOVEL").json()["items"]] == ["b1", "b3"]
    assert [i["item_id"] for i in ui.get("/ui/api/catalog?q=book&limit=2").json()["items"]] == ["b1", "b2"]
    assert ui.get("/ui/api/catalog?q=%20").json()["items"] == []
    assert ui.get("/ui/api/catalog?q=x&limit=0").status_code == 422


def test_user_search_finds_model_users_and_event_only_users_by_exact_id(ui: TestClient) -> None:
    assert ui.get("/ui/api/users").json()["users"] == ["u1", "u2", "u3", "u4", "u5"]
    assert ui.get("/ui/api/users?q=u3").json()["users"] == ["u3"]
    assert ui.get("/ui/api/users?q=new").json()["users"] == []
    ev = {"event_id": "e1", "user_id": "newbie", "item_id": "s1", "type": "click"}
    assert ui.post("/events", json={"events": [ev]}).status_code == 200
    assert ui.get("/ui/api/users?q=newbie").json()["users"] == ["newbie"]


def test_the_model_panel_shows_the_bundle_and_its_offline_metrics(pop_dir: Path) -> None:
    (pop_dir / "metrics.json").write_text(json.dumps({"ndcg@10": 0.25, "recall@10": 0.5}))
    with client_for(pop_dir) as client:
        model = client.get("/ui/api/model").json()
    assert model["model_type"] == "Popularity" and model["model_name"] == "pop"
    assert model["dataset"] == "tiny-shop" and model["n_users"] == 5 and model["n_items"] == 12
    assert model["metrics"] == {"ndcg@10": 0.25, "recall@10": 0.5}
    assert model["model_version"].startswith("pop-") and model["trained_at"].endswith("+00:00")
    assert model["model_dir"] == str(pop_dir.resolve()) or model["model_dir"] == str(pop_dir)


def test_images_come_from_an_image_url_column_and_only_as_web_urls(tmp_path: Path) -> None:
    frame = pd.DataFrame(ITEMS, columns=["item_id", "title", "category", "brand", "price"]).set_index("item_id")
    frame["image_url"] = ""
    frame.loc["s1", "image_url"] = "https://img.example/s1.jpg"
    frame.loc["s2", "image_url"] = "javascript:alert(1)"
    catalog = ItemCatalog(frame, text_fields=["title"], categorical=["category", "brand"], numeric=["price"])
    data = dataset()
    model = Popularity().fit(data)
    directory = ModelBundle(model, catalog, None, {"dataset": "tiny-shop"}).save(tmp_path / "img")
    with client_for(directory) as client:
        items = {i["item_id"]: i["image"] for i in client.get("/ui/api/items?ids=s1,s2,s3").json()["items"]}
    assert items == {"s1": "https://img.example/s1.jpg", "s2": None, "s3": None}


# ---------------------------------------------------------------------- live metrics
def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    buckets = [(0.1, 2.0), (0.5, 6.0), (math.inf, 8.0)]
    # q=0.5: rank 4 lies in (0.1, 0.5] holding counts 2..6: 0.1 + 0.4 * (4 - 2) / (6 - 2) = 0.3
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)
    # q=0.25: rank 2 fills the first bucket [0, 0.1]: 0 + 0.1 * 2 / 2 = 0.1
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)
    # q=0.95: rank 7.6 lies in the +Inf bucket: the highest finite bound
    assert histogram_quantile(0.95, list(reversed(buckets))) == 0.5
    assert histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    with pytest.raises(ValueError, match=r"q: a quantile must lie in \[0, 1\], got 1.5"):
        histogram_quantile(1.5, buckets)


SCRAPE = """# HELP lmrec_http_requests_total HTTP requests
# TYPE lmrec_http_requests_total counter
lmrec_http_requests_total{method="POST",route="/recommend",status="200"} 6
lmrec_http_requests_total{method="POST",route="/recommend",status="422"} 2
lmrec_http_requests_total{method="GET",route="/ui/api/live",status="200"} 50
lmrec_http_requests_total{method="POST",route="/events",status="200"} 2
lmrec_events_ingested_total 5
lmrec_index_items 13
lmrec_live_items 12
lmrec_http_request_duration_seconds_bucket{le="0.01",route="/recommend"} 4
lmrec_http_request_duration_seconds_bucket{le="0.1",route="/recommend"} 8
lmrec_http_request_duration_seconds_bucket{le="+Inf",route="/recommend"} 8
lmrec_http_request_duration_seconds_bucket{le="0.01",route="/events"} 0
lmrec_http_request_duration_seconds_bucket{le="0.1",route="/events"} 2
lmrec_http_request_duration_seconds_bucket{le="+Inf",route="/events"} 2
lmrec_http_request_duration_seconds_bucket{le="0.01",route="/ui/api/live"} 50
lmrec_http_request_duration_seconds_bucket{le="+Inf",route="/ui/api/live"} 50
not a sample line
"""


def test_the_metrics_summary_adds_up_api_routes_and_leaves_the_console_out() -> None:
    assert parse_prometheus('a{b="x\\"y"} 1.5\nc +Inf\n')[0] == ("a", {"b": 'x"y'}, 1.5)
    s = summarize_metrics(SCRAPE)
    assert s["requests_total"] == 10  # 6 + 2 + 2; the console's 50 left out
    assert s["events_total"] == 5 and s["index_items"] == 13 and s["live_items"] == 12
    # merged API buckets: le 0.01 -> 4, le 0.1 -> 10, +Inf -> 10. p50: rank 5 in (0.01, 0.1] holding 4..10:
    # 0.01 + 0.09 * (5 - 4) / 6 = 0.025; p95: rank 9.5: 0.01 + 0.09 * 5.5 / 6 = 0.0925
    assert s["latency_s"]["p50"] == pytest.approx(0.025)
    assert s["latency_s"]["p95"] == pytest.approx(0.0925)
    # /events alone: rank 1.9 of 2 in (0.01, 0.1] holding 0..2: 0.01 + 0.09 * 1.9 / 2 = 0.0955
    assert s["routes"]["/events"] == {"requests": 2, "p95_s": pytest.approx(0.0955)}
    assert set(s["routes"]) == {"/recommend", "/events"}


def test_the_live_route_counts_what_the_api_served(ui: TestClient) -> None:
    for _ in range(3):
        assert ui.post("/recommend", json={"k": 3}).status_code == 200
    ev = {"event_id": "e1", "user_id": "u1", "item_id": "s2", "type": "click"}
    ui.post("/events", json={"events": [ev]})
    ui.get("/ui/api/live")
    live = ui.get("/ui/api/live").json()
    assert live["requests_total"] == 4 and live["events_total"] == 1
    assert live["routes"]["/recommend"]["requests"] == 3
    assert live["health"]["status"] == "ok" and live["health"]["events"] == 1
    assert live["index_items"] == 12 and live["latency_s"]["p50"] > 0


# ---------------------------------------------------------------------- reports
def write_report(prefix: Path) -> None:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".md").write_text(f"# Results\n\n| model | ndcg@10 |\n|---|---:|\n| {XSS} | 0.1 |\n")
    prefix.with_suffix(".json").write_text(json.dumps({"results": {"pop": {"ndcg@10": 0.1}}}))
    prefix.with_suffix(".png").write_bytes(b"\x89PNG\r\n\x1a\nfake")


def test_reports_are_listed_by_prefix_and_paths_never_leave_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    write_report(root / "ml100k")
    write_report(root / "runs" / "office")
    (root / "lonely.png").parent.mkdir(exist_ok=True)
    (root / "lonely.png").write_bytes(b"x")  # a picture with no report
    write_report(tmp_path / "secret")  # outside the directory
    (root / "link.md").symlink_to(tmp_path / "secret.md")
    entries = list_reports(root)
    assert sorted(e.name for e in entries) == ["ml100k", "runs/office"]
    assert entries[0].kinds == ("md", "json", "png")
    assert find_report_file(root, "ml100k", "md") == root / "ml100k.md"
    for name in ("../secret", str(tmp_path / "secret"), "link", "lonely"):
        assert find_report_file(root, name, "md") is None, name
    assert find_report_file(root, "ml100k", "exe") is None
    assert list_reports(None) == [] and list_reports(tmp_path / "missing") == []


def test_report_files_are_served_as_text_json_and_png(pop_dir: Path, tmp_path: Path) -> None:
    write_report(tmp_path / "reports" / "ml100k")
    with client_for(pop_dir, reports_dir=tmp_path / "reports") as client:
        listing = client.get("/ui/api/reports").json()
        md = client.get("/ui/api/reports/file", params={"name": "ml100k", "kind": "md"})
        png = client.get("/ui/api/reports/file", params={"name": "ml100k", "kind": "png"})
        js = client.get("/ui/api/reports/file", params={"name": "ml100k", "kind": "json"})
        missing = client.get("/ui/api/reports/file", params={"name": "../ml100k", "kind": "md"})
        bad_kind = client.get("/ui/api/reports/file", params={"name": "ml100k", "kind": "html"})
    assert listing["configured"] is True and [r["name"] for r in listing["reports"]] == ["ml100k"]
    assert md.headers["content-type"].startswith("text/plain") and XSS in md.text  # text, rendered as text
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert js.json() == {"results": {"pop": {"ndcg@10": 0.1}}}
    assert missing.status_code == 404 and missing.json()["detail"] == "name: no md file of a report named '../ml100k'"
    assert bad_kind.status_code == 422 and bad_kind.json()["field"] == "kind"
