"""recog explain (CLI, in process) and POST /v1/models/{name}:explain (in-process ASGI client)."""

from __future__ import annotations

import base64
import io
import json
from contextlib import asynccontextmanager

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner


def test_cli_one_image_and_folder(explain_cli, tiny_bundle, photos, tmp_path):
    import shutil

    png = tmp_path / "c.explain.png"
    r = CliRunner().invoke(explain_cli, ["explain", str(tiny_bundle), str(photos["chelsea"]), "--method", "gradcam",
                                    "--target", "dog", "--out", str(png)])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["target"] == "dog" and png.exists() and (tmp_path / "c.explain.npy").exists()
    from PIL import Image

    assert Image.open(png).size == Image.open(photos["chelsea"]).size

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(photos["coffee"], folder / "sub" / "coffee.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    r = CliRunner().invoke(explain_cli, ["explain", str(tiny_bundle), str(folder), "--method", "gradcam",
                                    "--out", str(tmp_path / "out")])
    assert r.exit_code == 1  # one image could not be read; the other was explained
    assert (tmp_path / "out" / "sub" / "coffee.explain.png").exists()
    lines = (tmp_path / "out" / "explanations.jsonl").read_text().splitlines()
    assert len(lines) == 2 and sum("error" in json.loads(x) for x in lines) == 1


def test_cli_unknown_target_and_method(explain_cli, tiny_bundle, photos):
    from recog.errors import ConfigError

    r = CliRunner().invoke(explain_cli, ["explain", str(tiny_bundle), str(photos["chelsea"]), "--target", "cta"])
    assert isinstance(r.exception, ConfigError) and "did you mean cat" in str(r.exception)
    r = CliRunner().invoke(explain_cli, ["explain", str(tiny_bundle), str(photos["chelsea"]), "--method", "lime"])
    from recog.explain import METHODS

    assert isinstance(r.exception, ConfigError) and ", ".join(METHODS) in str(r.exception)


@asynccontextmanager
async def _serving(bundle, tmp_path, **kw):
    from recog.serve import create_app, load_settings

    settings = load_settings(models={"tiny": str(bundle)}, env={}, faces_db=tmp_path / "faces.db", **kw)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000", timeout=60) as client:
            yield app, client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_http_explain(tiny_bundle, photos, tmp_path):
    from PIL import Image

    from recog.serve.routers import explain as route

    jpeg = photos["chelsea"].read_bytes()
    async with _serving(tiny_bundle, tmp_path) as (app, client):
        body = {"image": base64.b64encode(jpeg).decode()}
        r = await client.post("/v1/models/tiny:explain?method=gradcam&target=bird", json=body)
        assert r.status_code == 200, r.text
        e = r.json()["explanations"][0]
        assert e["target"] == "bird" and e["method"] == "gradcam" and 0 <= e["score"] <= 1
        overlay = Image.open(io.BytesIO(base64.b64decode(e["overlay_png"])))
        assert overlay.size == Image.open(photos["chelsea"]).size
        q = np.frombuffer(base64.b64decode(e["map"]["data"]), np.uint8).reshape(e["map"]["shape"])
        assert q.shape == (32, 32)

        r = await client.post("/v1/models/tiny:explain?method=occlusion&output=map",
                              files={"image": ("c.jpg", jpeg, "image/jpeg")})
        assert r.status_code == 200 and "overlay_png" not in r.json()["explanations"][0]

        r = await client.post("/v1/models/tiny:explain?target=dgo", content=jpeg,
                              headers={"content-type": "image/jpeg"})
        assert r.status_code == 400 and "did you mean dog" in r.json()["detail"]
        r = await client.post("/v1/models/tiny:explain?method=shap", content=jpeg)
        assert r.status_code == 400
        r = await client.post("/v1/models/tiny:explain", content=b"\xff\xd8\xff\xe0 not really")
        assert r.status_code == 422
        r = await client.post("/v1/models/nope:explain", content=jpeg)
        assert r.status_code == 404

        # over budget: the explanation queue is full -> 429 at once, with Retry-After
        budget = route._budget(app.state.recog)
        budget.admission.admit(route.MAX_QUEUE)
        try:
            r = await client.post("/v1/models/tiny:explain", content=jpeg)
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        finally:
            budget.admission.release(route.MAX_QUEUE)

        # past the deadline: 504, and the stopped work gives its slot back (never a hang)
        route_opts = budget.explainers[app.state.recog.pool.get("tiny")].result().options
        import dataclasses

        ex = budget.explainers[app.state.recog.pool.get("tiny")].result()
        ex.options = dataclasses.replace(route_opts, occlusion_window=0.01, occlusion_batch=1)  # ~960 passes
        r = await client.post("/v1/models/tiny:explain?method=occlusion", content=jpeg,
                              headers={"x-request-timeout": "0.3"})
        assert r.status_code == 504
        import asyncio

        for _ in range(200):  # bounded wait for the worker to notice the stop
            if budget.admission.admitted == 0:
                break
            await asyncio.sleep(0.05)
        assert budget.admission.admitted == 0
        ex.options = route_opts


@pytest.mark.anyio
async def test_http_explain_key_checked_before_body(tiny_bundle, tmp_path):
    from recog.serve.auth import add_key

    keys = tmp_path / "keys.json"
    key = add_key(keys, name="t")
    async with _serving(tiny_bundle, tmp_path, api_keys_file=keys) as (_, client):
        r = await client.post("/v1/models/tiny:explain", content=b"{malformed", headers={"content-type":
                                                                                         "application/json"})
        assert r.status_code == 401
        r = await client.post("/v1/models/tiny:explain", content=b"{malformed",
                              headers={"content-type": "application/json", "authorization": f"Bearer {key}"})
        assert r.status_code == 400
