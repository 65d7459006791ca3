"""The web console in a real browser: headless Chromium from Debian's packages driven by Selenium,
against a real ``lmrec serve`` process on a free loopback port.

Nothing downloads a browser or a driver: the test points Selenium at the system's ``chromium`` and
``chromedriver`` (``LMREC_CHROMIUM`` / ``LMREC_CHROMEDRIVER`` override the paths) and turns Selenium
Manager off-line. Without them (``apt-get install -y chromium chromium-driver``) it is skipped, saying so.
Screenshots of each step are written under pytest's tmp dir; the path and the page load times
(navigationStart -> loadEventEnd) are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serve_helpers import HISTORY, ITEMS, free_port

from lmrec.data.catalog import ItemCatalog
from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.models.bundle import ModelBundle
from lmrec.models.popularity import Popularity

pytestmark = pytest.mark.slow

XSS = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=\"document.title='pwned'\">"
#: items whose titles are markup: they must show as text
MARKUP_ITEMS = [("x1", XSS, "shoes", "acme", 1.0), ("x2", XSS_IMG, "books", "orbit", 2.0)]
WAIT_S = 20.0


def _find(env: str, names: tuple[str, ...]) -> str | None:
    given = os.environ.get(env)
    if given:
        return given if Path(given).exists() else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser() -> tuple[str, str]:
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    chromium = _find("LMREC_CHROMIUM", ("chromium", "chromium-browser"))
    driver = _find("LMREC_CHROMEDRIVER", ("chromedriver",))
    if chromium is None or driver is None:
        pytest.skip(
            "no system Chromium and chromedriver found (apt-get install -y chromium chromium-driver, "
            "or set LMREC_CHROMIUM and LMREC_CHROMEDRIVER)"
        )
    return chromium, driver


def _bundle(directory: Path) -> Path:
    """Popularity on the tiny shop catalogue plus two items whose titles are markup."""
    rows = ITEMS + MARKUP_ITEMS
    frame = pd.DataFrame(rows, columns=["item_id", "title", "category", "brand", "price"]).set_index("item_id")
    catalog = ItemCatalog(frame, text_fields=["title"], categorical=["category", "brand"], numeric=["price"])
    events = pd.DataFrame(HISTORY, columns=["user_id", "item_id"])
    events["timestamp"] = np.arange(len(events), dtype=float)
    interactions = Interactions.from_frame(events, item_map=IdMap([r[0] for r in rows]))
    data = Dataset(interactions, items=catalog, name="tiny-shop")
    return ModelBundle(Popularity().fit(data), catalog, None, {"dataset": data.name}).save(directory)


def _report(prefix: Path) -> None:
    """An evaluation report as ``lmrec evaluate --report`` lays it out (md, json, png)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".md").write_text(
        "# ml-100k, leave-one-out\n\n| model | ndcg@10 | recall@10 |\n|---|---:|---:|\n"
        f"| pop | 0.0500 | 0.1000 |\n| {XSS} | **0.0700** | 0.1300 |\n"
    )
    prefix.with_suffix(".json").write_text(json.dumps({"results": {"pop": {"ndcg@10": 0.05}}}))
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().bar(["pop", "ease"], [0.05, 0.07])
    fig.savefig(prefix.with_suffix(".png"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``lmrec serve`` (python -m lmrec.cli) on a free loopback port; yields its base URL."""
    _browser()  # skip before training anything when there is no browser
    root = tmp_path_factory.mktemp("console-serve")
    model = _bundle(root / "model")
    _report(root / "reports" / "ml100k-loo")
    port = free_port()
    cmd = [
        sys.executable, "-m", "lmrec.cli", "serve", "--model", str(model), "--port", str(port),
        "--encoder", "hashing-32", "--encoder-backend", "fake",
        "--set", "items_sync_interval_s=0", "--set", f"reports_dir={json.dumps(str(root / 'reports'))}",
    ]  # fmt: skip
    log = (root / "serve.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"lmrec serve did not start:\n{(root / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver_path = _browser()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console-screenshots")
    print(f"\nconsole screenshots: {path}")
    return path


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the DOM is changing under us; retry
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def load_ms(driver: Any) -> float:
    """navigationStart -> loadEventEnd of the current page, in milliseconds."""
    wait_for(lambda: driver.execute_script("return performance.timing.loadEventEnd > 0"), "the load event")
    return float(driver.execute_script("var t = performance.timing; return t.loadEventEnd - t.navigationStart;"))


def text(driver: Any, css: str) -> str:
    return driver.find_element("css selector", css).text


def list_state(driver: Any) -> tuple[int, list[str]]:
    recs = driver.find_element("css selector", "#recs")
    ids = recs.get_attribute("data-ids") or ""
    return int(recs.get_attribute("data-list") or 0), [i for i in ids.split(",") if i]


def next_list(driver: Any, after: int) -> list[str]:
    number = wait_for(lambda: list_state(driver)[0] > after and list_state(driver)[0], f"a list after list {after}")
    return list_state(driver)[1] if number else []


def no_alert(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_try_it_pick_a_user_query_click_and_see_the_list_change(server: str, browser: Any, shots: Path) -> None:
    d = browser
    times: dict[str, float] = {}
    d.get(server + "/ui")
    times["/ui"] = load_ms(d)
    wait_for(lambda: list_state(d)[0] >= 1, "the first list")
    assert "anonymous" in text(d, "#list-meta") and "popularity" in text(d, "#list-meta")
    d.save_screenshot(str(shots / "01-anonymous.png"))

    # pick a user
    number = list_state(d)[0]
    d.find_element("css selector", "#user-input").send_keys("u1")
    d.find_element("css selector", "#user-pick").click()
    for_user = next_list(d, number)
    wait_for(lambda: "for u1" in text(d, "#list-meta"), "u1's list")
    wait_for(lambda: "known to the model" in text(d, "#user-state"), "u1's summary")
    # u1 bought s1 and t1 in training: excluded from their list
    assert for_user and not {"s1", "t1"} & set(for_user)
    d.save_screenshot(str(shots / "02-user-u1.png"))

    # type a query: the list follows it
    number = list_state(d)[0]
    d.find_element("css selector", "#query").send_keys("science fiction novel book")
    wait_for(lambda: "science fiction novel book" in text(d, "#list-meta"), "the query's list")
    with_query = list_state(d)[1]
    assert list_state(d)[0] > number and with_query != for_user
    assert "query+profile" in text(d, "#list-meta")
    assert with_query[0] == "b3"  # the item whose text is the query
    d.save_screenshot(str(shots / "03-query.png"))

    # every card shows its reason; "why?" asks /explain
    first = d.find_element("css selector", "#recs li.card")
    assert first.find_element("css selector", ".title").text == "science fiction novel book"
    assert first.find_element("css selector", ".reason").text.startswith("#1 ")
    first.find_element("css selector", "details.why summary").click()
    wait_for(lambda: "strategy query+profile" in first.find_element("css selector", ".explain").text, "the explanation")
    d.save_screenshot(str(shots / "04-why.png"))

    # click an item: an event is sent, the next list changes, and the event is in GET /users/u1
    number = list_state(d)[0]
    clicked = with_query[0]
    first.find_element("css selector", "button.send").click()
    wait_for(lambda: "sent click on science fiction novel book as u1" in text(d, "#event-msg"), "the event sent")
    after_click = next_list(d, number)
    assert after_click != with_query and clicked not in after_click  # a clicked item counts as seen
    wait_for(
        lambda: d.find_elements("css selector", '#events li[data-item="b3"][data-type="click"]'), "the event listed"
    )
    user = httpx.get(server + "/users/u1").json()
    assert [(e["item_id"], e["type"]) for e in user["recent_events"]] == [("b3", "click")]
    d.save_screenshot(str(shots / "05-after-click.png"))

    # add an item from text and find it
    d.find_element("css selector", "#item-id").send_keys("n1")
    d.find_element("css selector", "#item-text").send_keys("handmade wool socks warm winter")
    d.find_element("css selector", "#item-add").click()
    wait_for(lambda: text(d, "#item-msg").startswith("added n1 · index size"), "the item added")
    wait_for(lambda: "handmade wool socks warm winter" in text(d, "#item-found"), "the new item found")
    wait_for(lambda: list_state(d)[1][:1] == ["n1"], "the new item at the top of the list for its own text")
    d.save_screenshot(str(shots / "06-new-item.png"))

    # a write the API rejects shows the API's message
    d.find_element("css selector", "#item-id").clear()
    d.find_element("css selector", "#item-id").send_keys("n2")
    attrs = d.find_element("css selector", "#item-attrs")
    attrs.clear()
    attrs.send_keys('{"price": "cheap"}')
    d.find_element("css selector", "#item-add").click()
    wait_for(lambda: "attributes.price: expected a number, got 'cheap'" in text(d, "#item-msg"), "the API's error")
    assert httpx.get(server + "/ui/api/items", params={"ids": "n2"}).json()["items"] == []
    d.save_screenshot(str(shots / "07-rejected-write.png"))

    # look inside and reports: they load, and their load times are measured
    d.get(server + "/ui/inspect")
    times["/ui/inspect"] = load_ms(d)
    wait_for(lambda: "Popularity (pop)" in text(d, "#model-info"), "the model panel")
    wait_for(lambda: "ok" in text(d, "#live-info") and "requests/s" in text(d, "#live-info"), "the live panel")
    wait_for(lambda: "measuring" not in text(d, "#live-info"), "a rate from two polls", timeout=10)
    assert "tiny-shop" in text(d, "#model-info")
    d.find_element("css selector", "#catalog-q").send_keys("shirt")
    d.find_element("css selector", "#catalog-form button").click()
    wait_for(lambda: len(d.find_elements("css selector", "#catalog-results li.card")) == 4, "four shirts")
    d.find_element("css selector", "#catalog-results li.card button.similar").click()
    wait_for(lambda: "Similar to cotton shirt white" in text(d, "#similar-title"), "similar items")
    assert len(d.find_elements("css selector", "#similar-results li.card")) == 10
    d.save_screenshot(str(shots / "08-inspect.png"))

    d.get(server + "/ui/reports")
    times["/ui/reports"] = load_ms(d)
    wait_for(lambda: d.find_elements("css selector", "#reports-list button.link"), "the report list")
    d.find_element("css selector", "#reports-list button.link").click()
    wait_for(lambda: d.find_elements("css selector", "#report-md table td"), "the report table")
    cells = [c.text for c in d.find_elements("css selector", "#report-md table td")]
    assert cells[:3] == ["pop", "0.0500", "0.1000"] and cells[3] == XSS  # markup in a report is text too
    wait_for(
        lambda: d.execute_script("var i = document.querySelector('#report-png img'); return i && i.naturalWidth > 0"),
        "the chart",
    )
    assert no_alert(d)
    d.save_screenshot(str(shots / "09-report.png"))

    d.get(server + "/ui")  # the first page again, the browser warm
    times["/ui (again)"] = load_ms(d)
    wait_for(lambda: list_state(d)[0] >= 1, "the first list")
    (shots / "page-load-ms.json").write_text(json.dumps(times, indent=2))
    print(
        "\nconsole page load (navigationStart -> loadEventEnd, ms): "
        + ", ".join(f"{p} {ms:.0f}" for p, ms in times.items())
    )


def test_item_titles_with_markup_render_as_text(server: str, browser: Any, shots: Path) -> None:
    d = browser
    d.get(server + "/ui/inspect")
    d.find_element("css selector", "#catalog-q").send_keys("x")
    d.find_element("css selector", "#catalog-form button").click()
    wait_for(lambda: len(d.find_elements("css selector", "#catalog-results li.card")) >= 2, "the markup items")
    titles = [t.text for t in d.find_elements("css selector", "#catalog-results li.card .title")]
    assert XSS in titles and XSS_IMG in titles
    assert no_alert(d)
    assert d.title == "lmrec console · Look inside"  # the onerror handler never ran
    assert not d.find_elements("css selector", "#catalog-results script, #catalog-results img[src=x]")
    # and in the recommendation list: the anonymous list for a query naming the markup
    d.get(server + "/ui")
    wait_for(lambda: list_state(d)[0] >= 1, "the first list")
    d.find_element("css selector", "#query").send_keys("script alert")
    wait_for(lambda: "script alert" in text(d, "#list-meta"), "the query's list")
    assert XSS in [t.text for t in d.find_elements("css selector", "#recs li.card .title")]
    assert no_alert(d) and d.title == "lmrec console · Try it"
    d.save_screenshot(str(shots / "10-markup-as-text.png"))


def test_with_keys_the_console_asks_for_a_key_once_and_sends_it_only_as_a_header(
    browser: Any, shots: Path, tmp_path: Path
) -> None:
    from serve_helpers import DIM, make_settings, save_bundle, serve_in_thread

    from lmrec.encoders.fake import HashingEncoder
    from lmrec.serve.app import create_app
    from lmrec.serve.auth import KeyEntry, hash_key

    key = "console-key-7f3a"
    entry = KeyEntry(name="console", hash=hash_key(key, n=2**4), scopes=("recommend", "events", "users", "admin"))
    settings = make_settings(save_bundle(Popularity(), tmp_path / "pop"), api_keys=(entry,))
    d = browser
    with serve_in_thread(create_app(settings, encoder=HashingEncoder(DIM))) as base:
        d.get(base + "/ui")
        wait_for(lambda: d.find_element("css selector", "#key-panel").is_displayed(), "the key form")
        assert list_state(d)[0] == 0  # nothing fetched without a key
        d.save_screenshot(str(shots / "11-key-form.png"))
        d.find_element("css selector", "#key-input").send_keys("wrong-key")
        d.find_element("css selector", "#key-form button").click()
        wait_for(lambda: "invalid API key" in text(d, "#key-msg"), "the API's 401 message")
        d.find_element("css selector", "#key-input").send_keys(key)
        d.find_element("css selector", "#key-form button").click()
        wait_for(lambda: list_state(d)[0] >= 1, "the first list with the key")
        assert not d.find_element("css selector", "#key-panel").is_displayed()
        d.get(base + "/ui/inspect")  # asked once: the tab keeps the key
        wait_for(lambda: "Popularity (pop)" in text(d, "#model-info"), "the model panel with the key")
        assert not d.find_element("css selector", "#key-panel").is_displayed()
        assert key not in d.current_url and key not in d.page_source
        urls = d.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
        assert urls and not [u for u in urls if key in u]
        d.save_screenshot(str(shots / "12-with-key.png"))
        d.execute_script("sessionStorage.clear()")
