"""The HTTP API in process, through an ASGI transport, with the real app, model and images."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil

import pytest

from recog.serve.auth import add_key
from tests.serve.conftest import serving, settings_for

pytestmark = pytest.mark.anyio

PROBLEM_KEYS = {"type", "title", "status", "code", "detail"}


def assert_problem(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert PROBLEM_KEYS <= set(body) and body["status"] == status and body["code"] == code, body
    assert body["detail"]
    return body


async def test_not_ready_until_models_are_loaded(tiny_bundle):
    import httpx

    from recog.serve import create_app

    app = create_app(settings_for(tiny_bundle))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert_problem(await client.get("/readyz"), 503, "not_ready")
        async with app.router.lifespan_context(app):
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["models"] == ["tiny"]
        assert_problem(await client.get("/readyz"), 503, "not_ready")


async def test_models_metadata(tiny_bundle):
    async with serving(settings_for(tiny_bundle)) as (_, client):
        models = (await client.get("/v1/models")).json()["models"]
        assert [m["name"] for m in models] == ["tiny"]
        m = models[0]
        assert m["labels"] == ["cat", "dog", "bird"] and m["input_size"] == [32, 32]
        assert m["backend"] == "torch" and m["default"] is True and len(m["version"]) == 12
        assert "path" not in m
        assert (await client.get("/v1/models/tiny")).json()["name"] == "tiny"
        body = assert_problem(await client.get("/v1/models/tinny"), 404, "not_found")
        assert "tiny" in body["detail"]


async def test_predict_three_ways_agree(tiny_bundle, photos):
    data = photos["chelsea"].read_bytes()
    async with serving(settings_for(tiny_bundle)) as (_, client):
        url = "/v1/models/tiny:predict"
        multipart = await client.post(url, files={"image": ("chelsea.jpg", data, "image/jpeg")})
        raw = await client.post(url, content=data, headers={"content-type": "image/jpeg"})
        js = await client.post(url, json={"image": base64.b64encode(data).decode(), "top_k": 2})
        for r in (multipart, raw, js):
            assert r.status_code == 200, r.text
        a, b, c = (r.json()["predictions"][0] for r in (multipart, raw, js))
        assert a["source"] == "chelsea.jpg" and a["label"] == b["label"] == c["label"]
        assert len(a["top"]) == 3 and len(c["top"]) == 2
        assert a["top"][0]["score"] == pytest.approx(b["top"][0]["score"], abs=1e-6)
        # agrees with the library on the same bytes
        import recog

        local = recog.load(tiny_bundle).predict(data, top_k=3)
        assert local.label == a["label"] and local.score == pytest.approx(a["score"], abs=1e-5)


async def test_predict_several_images_and_top_k(tiny_bundle, photos):
    names = ["chelsea", "coffee", "rocket", "camera_png"]
    files = [("image", (photos[n].name, photos[n].read_bytes())) for n in names]
    async with serving(settings_for(tiny_bundle)) as (_, client):
        r = await client.post("/v1/models/tiny:predict?top_k=1", files=files)
        preds = r.json()["predictions"]
        assert [p["source"] for p in preds] == [photos[n].name for n in names]
        assert all(len(p["top"]) == 1 for p in preds)
        data = [base64.b64encode(photos[n].read_bytes()).decode() for n in names]
        r = await client.post("/v1/models/tiny:predict", json={"images": data})
        assert [p["label"] for p in r.json()["predictions"]] == [p["label"] for p in preds]
        assert_problem(await client.post("/v1/models/tiny:predict?top_k=0", files=files), 400, "invalid_request")


async def test_client_deadline_header(tiny_bundle, photos):
    """X-Request-Timeout tightens the server's deadline for one request (504 past it); bad values are 400."""
    files = {"image": ("astronaut.jpg", photos["astronaut"].read_bytes())}
    async with serving(settings_for(tiny_bundle)) as (_, client):
        url = "/v1/models/tiny:predict"
        assert_problem(await client.post(url, files=files, headers={"X-Request-Timeout": "0.000001"}), 504,
                       "deadline_exceeded")
        for bad in ("soon", "0", "-1"):
            assert_problem(await client.post(url, files=files, headers={"X-Request-Timeout": bad}), 400,
                           "bad_request")
        r = await client.post(url, files=files, headers={"X-Request-Timeout": "30"})
        assert r.status_code == 200


async def test_bad_inputs_each_get_a_clear_4xx_and_the_service_keeps_serving(tiny_bundle, photos, bad_uploads):
    good = photos["grace_hopper"].read_bytes()
    async with serving(settings_for(tiny_bundle)) as (_, client):
        url = "/v1/models/tiny:predict"
        for case, (filename, data, status, code) in bad_uploads.items():
            body = assert_problem(await client.post(url, files={"image": (filename, data)}), status, code)
            assert filename in body["detail"], (case, body)
            assert (await client.post(url, content=good)).status_code == 200, case
        assert_problem(await client.post(url, content=b""), 400, "bad_request")
        assert_problem(await client.post(url, content=b"\x00" * (11 * 1024 * 1024)), 413, "payload_too_large")
        big_field = {"top_k": "9" * (200 * 1024)}
        assert_problem(await client.post(url, data=big_field, files={"image": ("a.jpg", good)}), 413,
                       "payload_too_large")
        for form in ({"data": {"image": "cat.jpg"}},                                  # curl -d image=cat.jpg
                     {"data": {"image": "cat.jpg"}, "files": {"x": ("x.jpg", good)}}):  # curl -F image=cat.jpg
            body = assert_problem(await client.post(url, **form), 400, "bad_request")
            assert "-F image=@" in body["detail"]
        assert_problem(await client.post(url, json={"image": "https://example.com/cat.jpg"}), 400, "url_not_allowed")
        assert_problem(await client.post(url, content=b"https://example.com/cat.jpg"), 400, "url_not_allowed")
        assert_problem(await client.post(url, content=b"https://example.com/cat.jpg",  # curl -d URL
                                         headers={"content-type": "application/x-www-form-urlencoded"}),
                       400, "url_not_allowed")
        assert_problem(await client.post(url, json={"images": [base64.b64encode(good).decode()], "top_k": True}),
                       400, "bad_request")
        assert_problem(await client.post(url, json={"image": "not base64!"}), 400, "bad_request")
        assert_problem(await client.post(url, content=b"{oops", headers={"content-type": "application/json"}),
                       400, "bad_request")
        too_many = [("image", (f"{i}.jpg", good)) for i in range(33)]
        assert_problem(await client.post(url, files=too_many), 400, "bad_request")
        # one bad image among good ones names which one
        mixed = [("image", ("ok.jpg", good)), ("image", ("notes.jpg", b"plain text, not a picture"))]
        body = assert_problem(await client.post(url, files=mixed), 415, "unsupported_format")
        assert "image 2 of 2 (notes.jpg)" in body["detail"]
        assert (await client.post(url, content=good)).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'status="415"' in metrics and 'status="413"' in metrics


async def test_api_keys_required_when_configured(tiny_bundle, photos, tmp_path):
    keys = tmp_path / "keys.txt"
    user = add_key(keys, name="web")
    text = keys.read_text()
    assert user not in text and "sha256:" in text  # hashed at rest
    async with serving(settings_for(tiny_bundle, api_keys_file=keys)) as (_, client):
        url = "/v1/models/tiny:predict"
        data = photos["coffee"].read_bytes()
        r = assert_problem(await client.post(url, content=data), 401, "unauthorized")
        assert r and "Bearer" in (await client.post(url, content=data)).headers["www-authenticate"]
        assert_problem(await client.post(url, content=data, headers={"authorization": "Bearer rk_wrong"}), 401,
                       "unauthorized")
        assert_problem(await client.get("/v1/models", headers={"x-api-key": user + "x"}), 401, "unauthorized")
        assert_problem(await client.get("/metrics"), 401, "unauthorized")
        ok = await client.post(url, content=data, headers={"authorization": f"Bearer {user}"})
        assert ok.status_code == 200
        assert (await client.get("/v1/models", headers={"x-api-key": user})).status_code == 200
        assert (await client.get("/healthz")).status_code == 200 and (await client.get("/readyz")).status_code == 200
        # a user key is not an admin key
        assert_problem(await client.post("/v1/models/tiny:reload", headers={"x-api-key": user}), 403, "forbidden")


async def test_reload_needs_admin_key_and_refuses_tampered_bundle(tiny_bundle, photos, tmp_path):
    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    data = photos["rocket"].read_bytes()
    async with serving(settings_for(bundle)) as (_, client):
        # no key file: admin operations are off
        body = assert_problem(await client.post("/v1/models/tiny:reload"), 403, "forbidden")
        assert "--api-keys" in body["detail"]
    keys = tmp_path / "keys.txt"
    admin = add_key(keys, name="ops", role="admin")
    hdr = {"authorization": f"Bearer {admin}"}
    async with serving(settings_for(bundle, api_keys_file=keys)) as (app, client):
        before = (await client.post("/v1/models/tiny:predict", content=data, headers=hdr)).json()
        r = await client.post("/v1/models/tiny:reload", headers=hdr)
        assert r.status_code == 200 and r.json()["version"] == before["version"]
        weights = bundle / "model.safetensors"
        blob = bytearray(weights.read_bytes())
        blob[-100] ^= 0xFF
        weights.write_bytes(bytes(blob))
        assert_problem(await client.post("/v1/models/tiny:reload", headers=hdr), 422, "bundle_tampered")
        after = await client.post("/v1/models/tiny:predict", content=data, headers=hdr)
        assert after.status_code == 200 and after.json()["predictions"] == before["predictions"]
        metrics = (await client.get("/metrics", headers=hdr)).text
        assert 'recog_model_reloads_total{model="tiny",result="refused"} 1.0' in metrics


async def test_concurrent_requests_are_batched(tiny_bundle, photos):
    data = photos["astronaut"].read_bytes()
    async with serving(settings_for(tiny_bundle, max_batch_size=8, max_delay_ms=50)) as (app, client):
        rs = await asyncio.gather(*(client.post("/v1/models/tiny:predict", content=data) for _ in range(24)))
        assert {r.status_code for r in rs} == {200}
        assert len({json.dumps(r.json()["predictions"]) for r in rs}) == 1
        metrics = (await client.get("/metrics")).text
        count = next(float(line.split()[-1]) for line in metrics.splitlines()
                     if line.startswith('recog_batch_size_count{model="tiny"}'))
        assert count < 24  # fewer inference calls than requests


async def test_queue_full_gets_429_with_retry_after(tiny_bundle, photos):
    data = photos["coffee"].read_bytes()
    async with serving(settings_for(tiny_bundle, max_queue=4, max_images_per_request=4)) as (app, client):
        served = app.state.recog.pool.get("tiny")
        ticket = served.batcher.admit(4)  # hold every slot, as 4 images in flight would
        try:
            r = await client.post("/v1/models/tiny:predict", content=data)
            assert_problem(r, 429, "overloaded")
            assert int(r.headers["retry-after"]) >= 1
        finally:
            ticket.release()
        assert (await client.post("/v1/models/tiny:predict", content=data)).status_code == 200


async def test_web_page_and_docs_are_local(tiny_bundle):
    async with serving(settings_for(tiny_bundle)) as (_, client):
        page = await client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "http://" not in page.text.replace('xmlns="http://', "") and "https://" not in page.text
        for asset in ("/static/app.js", "/static/style.css"):
            r = await client.get(asset)
            assert r.status_code == 200 and "https://" not in r.text
        spec = (await client.get("/openapi.json")).json()
        assert "/v1/models/{name}:predict" in spec["paths"]
        assert page.headers["x-content-type-options"] == "nosniff"
        # CORS is off unless configured
        r = await client.get("/v1/models", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_cors_when_configured(tiny_bundle):
    origin = "https://app.example.com"
    async with serving(settings_for(tiny_bundle, cors_origins=(origin,))) as (_, client):
        r = await client.get("/v1/models", headers={"origin": origin})
        assert r.headers["access-control-allow-origin"] == origin
        r = await client.get("/v1/models", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
