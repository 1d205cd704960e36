"""The operations dashboard (/dashboard) in headless Chromium, on a real server that logs its predictions.

The page's CSP forbids eval, so the test waits on attribute selectors: the page mirrors its figures
as ``data-*`` attributes of ``#status``.
"""

from __future__ import annotations

import shutil

import httpx
import numpy as np
import pytest

from tests.serve.conftest import server_process
from tests.serve.test_browser import browser  # noqa: F401  (the shared headless Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _with_reference(tiny_bundle, photos, out):
    """A copy of the tiny bundle with an OOD reference fitted on its own logits of four photos: its
    answers carry ``unknown`` verdicts, so the page has an OOD rate to show."""
    import recog
    from recog.models.bundle import update_bundle
    from recog.monitor.reference import fit_reference

    shutil.copytree(tiny_bundle, out)
    raw, _, _ = recog.load(out).outputs_many([str(photos[k]) for k in ("astronaut", "coffee", "rocket", "chelsea")])
    update_bundle(out, updates={"reference": fit_reference(raw, raw.argmax(axis=1))})
    return out


def test_dashboard_shows_the_logged_traffic(browser, tiny_bundle, photos, tmp_path):  # noqa: F811
    bundle = _with_reference(tiny_bundle, photos, tmp_path / "tiny")
    with server_process([str(bundle), "--name", "tiny", "--log-predictions", str(tmp_path / "ops.db")]) as server:
        answers = []
        for photo in photos.values():
            r = httpx.post(f"{server.url}/v1/models/tiny:predict", files={"image": (photo.name, photo.read_bytes())})
            assert r.status_code == 200, r.text
            answers.append(r.json()["predictions"][0])
        first = answers[0]
        r = httpx.post(f"{server.url}/v1/models/tiny:feedback",
                       json={"prediction_id": first["prediction_id"], "label": first["label"]})
        assert r.status_code == 200, r.text
        expected = httpx.get(f"{server.url}/v1/monitor/tiny?minutes=60").json()
        assert expected["total"] == len(answers) and expected["ood_rate"] is not None

        page = browser.new_page()
        outside, errors = [], []
        page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(
            (server.url, "data:")) else None)
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(server.url + "/dashboard")
        page.wait_for_selector(f"#status[data-model='tiny'][data-total='{len(answers)}'][data-feedback='1']",
                               timeout=20_000)
        status = page.locator("#status")
        assert status.get_attribute("data-ood-rate") == f"{expected['ood_rate']:.4f}"
        assert status.get_attribute("data-log") == "ok" and status.get_attribute("data-drift") == ""
        text = status.inner_text()
        assert f"{len(answers)} predictions in the span" in text
        assert f"OOD rate: {100 * expected['ood_rate']:.1f}%" in text
        assert "100.0% right of 1 with feedback" in text and "drift: not computed yet" in text
        # the legend names exactly the classes predicted, and the class chart has ink on it
        assert sorted(page.locator("#legend li").all_inner_texts()) == sorted({a["label"] for a in answers})
        pixels = np.array(page.locator("#classes").evaluate(
            "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"))
        assert (pixels.reshape(-1, 4)[:, 3] > 0).mean() > 0.05
        assert outside == [], outside
        assert errors == [], errors
        page.close()
