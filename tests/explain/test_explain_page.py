"""The web page explains a detector's box in headless Chromium: click a box (in the picture or the list),
see its heatmap beside the detections; a busy server's 429 is shown, not swallowed."""

from __future__ import annotations

import base64
import io
import threading

import httpx
import numpy as np
import pytest

from tests.serve.test_browser import browser, open_page  # noqa: F401  (browser: the shared Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # trains the two-square detector, runs a server


def _decoded(src: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"), np.int16)


def test_click_a_box_for_its_heatmap(browser, two_objects, tmp_path):  # noqa: F811
    from tests.serve.conftest import server_process

    bundle, test = two_objects
    photo, other = tmp_path / "two.png", tmp_path / "other.png"
    test.images[3].save(photo)
    test.images[5].save(other)
    with server_process([str(bundle), "--name", "squares"]) as server:
        url = f"{server.url}/v1/models/squares"
        found = httpx.post(f"{url}:predict", files={"image": (photo.name, photo.read_bytes())}).json()["predictions"][0]
        assert len(found["boxes"]) >= 2
        page, outside, errors = open_page(browser, server.url, model="squares")
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("#results button.box-pick[data-box='1']", timeout=30_000)
        assert page.locator("#box-layer rect").count() == len(found["boxes"])
        assert page.locator("#results button.box-pick").count() == len(found["boxes"])
        assert page.locator("#heatmap-figure").is_hidden()  # "Heatmap" not ticked: nothing explained yet
        assert page.locator("#results-title").inner_text() == "Detections"

        # a box picked in the list: its overlay beside the detections, the one the API gives for ?box=1
        page.click("#results button.box-pick[data-box='1']")
        page.wait_for_selector("#heatmap-figure[data-state='done'][data-box='1']", timeout=60_000)
        caption = page.locator("#heatmap-caption").inner_text()
        assert caption.startswith("Grad-CAM of box #1 square"), caption
        assert page.locator("#heatmap").evaluate("img => img.decode().then(() => img.naturalWidth)") == 96
        api = httpx.post(f"{url}:explain?box=1&output=overlay", timeout=60,
                         files={"image": (photo.name, photo.read_bytes())}).json()["explanations"][0]
        shown = _decoded(page.locator("#heatmap").get_attribute("src"))
        assert np.abs(shown - _decoded("data:," + api["overlay_png"])).mean() < 1.0
        assert "picked" in page.locator("#results button.box-pick[data-box='1']").get_attribute("class")

        # a box clicked in the picture, then another method
        page.click("#box-layer rect[data-box='0']")
        page.wait_for_selector("#heatmap-figure[data-state='done'][data-box='0']", timeout=60_000)
        assert "picked" in page.locator("#box-layer rect[data-box='0']").get_attribute("class")
        assert "picked" not in page.locator("#results button.box-pick[data-box='1']").get_attribute("class")
        page.select_option("#explain-method", "occlusion")
        page.click("#results button.box-pick[data-box='1']")
        page.wait_for_selector("#heatmap-figure[data-state='done'][data-box='1']", timeout=60_000)
        assert page.locator("#heatmap-caption").inner_text().startswith("Occlusion of box #1 square")

        # "Heatmap" ticked: a new photo's top box is explained as soon as its boxes are drawn
        page.select_option("#explain-method", "gradcam")
        page.check("#explain")
        page.set_input_files("#file", str(other))
        page.wait_for_selector("#heatmap-figure[data-state='done'][data-box='0']", timeout=60_000)
        assert "other.png" in page.locator("#filename").inner_text()

        # under load (the explanation queue full of other clients' 4-image occlusions): the page shows
        # the 429 and when to try again, hides the stale heatmap, and works again once the load is gone
        stop = threading.Event()
        four = [("image", (photo.name, photo.read_bytes(), "image/png"))] * 4

        def load() -> None:
            with httpx.Client(timeout=120) as client:
                while not stop.is_set():
                    client.post(f"{url}:explain?method=occlusion&output=overlay", files=four)

        workers = [threading.Thread(target=load) for _ in range(2)]
        for w in workers:
            w.start()
        try:
            with httpx.Client(timeout=120) as client:  # the queue is full once a probe is refused
                assert any(client.post(f"{url}:explain?output=overlay", files=four[:1]).status_code == 429
                           for _ in range(200))
            message = None
            for _ in range(20):  # a click can land between two loads; the next one finds the queue full
                page.click("#results button.box-pick[data-box='0']")
                page.wait_for_selector("#error:not([hidden]), #heatmap-figure[data-state='done']", timeout=120_000)
                if page.locator("#error").is_visible():
                    message = page.locator("#error").inner_text()
                    break
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=120)
        assert message is not None and "429" in message and "Try again in" in message, message
        assert page.locator("#heatmap-figure").is_hidden()
        page.click("#results button.box-pick[data-box='0']")
        page.wait_for_selector("#heatmap-figure[data-state='done'][data-box='0']", timeout=60_000)
        assert page.locator("#error").is_hidden()
        assert outside == [], outside
        assert all("429" in e for e in errors), errors  # Chromium logs the refused fetch; nothing else
        page.close()
