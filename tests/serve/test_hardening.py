"""Issue 10, service side: decode bombs stopped at the deadline; faces and writes behind a key; Host and
Origin checks; no server paths in errors; malformed JSON is a 400 and never outruns the key check."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import time

import pytest

from recog.serve.auth import add_key
from tests.serve import slow_decode
from tests.serve.conftest import serving, settings_for

pytestmark = pytest.mark.anyio

PREDICT = "/v1/models/tiny:predict"


def assert_problem(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert body["status"] == status and body["code"] == code, body
    return body


# --------------------------------------------------------------------------- 1. decode bombs


async def test_slow_decodes_are_stopped_at_their_deadline_and_free_their_workers(tiny_bundle, photos,
                                                                                 monkeypatch):
    """Two decodes that would run a minute fill both decode workers; at their 1 s deadline they get 504,
    their workers are killed and replaced, and a good image sent with them is answered right after."""
    monkeypatch.setattr("recog.serve.routers.models.preprocess_image", slow_decode.preprocess_image)
    good = photos["coffee"].read_bytes()
    async with serving(settings_for(tiny_bundle, preprocess_workers=2)) as (app, client):
        decoder = app.state.recog.decoder
        before = set(decoder.pids)
        slow = [client.post(PREDICT, content=b"SLOW" + good, headers={"X-Request-Timeout": "1"}) for _ in range(2)]

        async def timed_good():
            await asyncio.sleep(0.2)  # the slow ones hold both workers by now
            start = time.monotonic()
            r = await client.post(PREDICT, content=good, headers={"X-Request-Timeout": "10"})
            return r, time.monotonic() - start

        *bombs, (r, seconds) = await asyncio.gather(*slow, timed_good())
        for bomb in bombs:
            assert_problem(bomb, 504, "deadline_exceeded")
        assert r.status_code == 200, r.text
        assert seconds < 2.5, f"the good image waited {seconds:.1f} s behind the stopped decodes"
        assert decoder.replaced == 2
        after = set(decoder.pids)
        assert len(after) == 2 and not (before & after)  # both stuck workers are gone, two fresh ones serve
        for pid in before:
            with pytest.raises(OSError):
                for _ in range(100):  # bounded: the killed process is reaped within moments
                    os.kill(pid, 0)
                    await asyncio.sleep(0.05)


async def test_a_crashing_decoder_fails_only_its_image(tiny_bundle, photos, monkeypatch):
    monkeypatch.setattr("recog.serve.routers.models.preprocess_image", slow_decode.preprocess_image)
    good = photos["rocket"].read_bytes()
    async with serving(settings_for(tiny_bundle, preprocess_workers=1)) as (app, client):
        body = assert_problem(await client.post(PREDICT, files={"image": ("bad.jpg", b"CRASH" + good)}),
                              422, "corrupt_image")
        assert body["detail"].startswith("bad.jpg: ")
        assert (await client.post(PREDICT, content=good)).status_code == 200
        assert app.state.recog.decoder.replaced == 1


async def test_face_routes_stop_slow_decodes_too(tiny_bundle, photos, monkeypatch, tmp_path):
    monkeypatch.setattr("recog.serve.routers.faces.check_image", slow_decode.check_image)
    good = photos["astronaut"].read_bytes()
    settings = settings_for(tiny_bundle, preprocess_workers=1, faces_db=tmp_path / "f.db", allow_open_faces=True)
    async with serving(settings) as (app, client):
        r = await client.post("/v1/faces:detect", content=b"SLOW" + good, headers={"X-Request-Timeout": "1"})
        assert_problem(r, 504, "deadline_exceeded")
        start = time.monotonic()
        r = await client.post("/v1/faces:detect?upsample=0", content=good)
        assert r.status_code == 200 and time.monotonic() - start < 20, r.text
        assert app.state.recog.decoder.replaced == 1


# --------------------------------------------------------------------------- 2. keys, Host, Origin, paths


async def test_face_routes_need_a_key_by_default(tiny_bundle, photos, tmp_path):
    data = photos["astronaut"].read_bytes()
    async with serving(settings_for(tiny_bundle, faces_db=tmp_path / "f.db")) as (app, client):
        for method, url, kw in [("GET", "/v1/collections", {}),
                                ("POST", "/v1/collections", {"json": {"name": "office"}}),
                                ("POST", "/v1/faces:detect", {"content": data}),
                                ("POST", "/v1/collections/office/people/eve/faces?create=true",
                                 {"files": {"image": ("eve.jpg", data)}}),
                                ("DELETE", "/v1/collections/office", {})]:
            body = assert_problem(await client.request(method, url, **kw), 403, "forbidden")
            assert "--allow-open-faces" in body["detail"] and "--api-keys" in body["detail"], body
        assert app.state.recog.faces.recognizer.collections() == []
        # classification stays open on loopback without keys
        assert (await client.post(PREDICT, content=data)).status_code == 200


async def test_allow_open_faces_opens_them_and_warns_at_start(tiny_bundle, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="recog.serve"):
        async with serving(settings_for(tiny_bundle, faces_db=tmp_path / "f.db", allow_open_faces=True)) as (_, c):
            assert (await c.get("/v1/collections")).json() == {"collections": []}
    assert any("--allow-open-faces" in r.getMessage() for r in caplog.records)
    # with a key file the flag changes nothing: a key is needed
    keys = tmp_path / "keys.txt"
    user = add_key(keys, name="web")
    settings = settings_for(tiny_bundle, faces_db=tmp_path / "f.db", allow_open_faces=True, api_keys_file=keys)
    async with serving(settings) as (_, client):
        assert_problem(await client.get("/v1/collections"), 401, "unauthorized")
        assert (await client.get("/v1/collections", headers={"x-api-key": user})).status_code == 200


async def test_unknown_host_names_are_refused(tiny_bundle):
    """DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 sends Host: evil.example."""
    settings = settings_for(tiny_bundle, allowed_hosts=("recog.example.com", ".corp.example"))
    async with serving(settings) as (_, client):
        for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "corp.example.evil"):
            body = assert_problem(await client.get("/v1/models", headers={"host": host}), 400, "bad_request")
            assert "--allowed-host" in body["detail"]
        assert_problem(await client.get("/", headers={"host": "evil.example"}), 400, "bad_request")
        for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "127.0.0.2",
                     "recog.example.com", "api.corp.example:443", "corp.example"):
            assert (await client.get("/v1/models", headers={"host": host})).status_code == 200, host
    async with serving(settings_for(tiny_bundle, allowed_hosts=("*",))) as (_, client):
        assert (await client.get("/v1/models", headers={"host": "anything.example"})).status_code == 200


async def test_cross_origin_writes_are_refused(tiny_bundle, photos, tmp_path):
    """A page on another site can POST multipart without a preflight: the Origin check stops it."""
    face = photos["astronaut"].read_bytes()
    app_origin = "https://app.example.com"
    settings = settings_for(tiny_bundle, faces_db=tmp_path / "f.db", allow_open_faces=True,
                            cors_origins=(app_origin,))
    async with serving(settings) as (app, client):
        enroll = "/v1/collections/office/people/eve/faces?create=true"
        for headers in ({"origin": "https://evil.example"}, {"origin": "null"},
                        {"origin": "http://127.0.0.1:9999"}, {"sec-fetch-site": "cross-site"}):
            r = await client.post(enroll, files={"image": ("eve.jpg", face)}, headers=headers)
            assert_problem(r, 403, "forbidden")
            assert_problem(await client.delete("/v1/collections/office", headers=headers), 403, "forbidden")
            assert_problem(await client.post(PREDICT, content=face, headers=headers), 403, "forbidden")
        assert app.state.recog.faces.recognizer.collections() == []
        # reads from another origin are not refused (CORS decides whether the page may read the answer)
        assert (await client.get("/v1/models", headers={"origin": "https://evil.example"})).status_code == 200
        # the service's own page, a configured origin, and clients that send no Origin may write
        assert (await client.post("/v1/collections", json={"name": "a"},
                                  headers={"origin": "http://127.0.0.1:8000"})).status_code == 201
        assert (await client.post("/v1/collections", json={"name": "b"},
                                  headers={"origin": app_origin, "sec-fetch-site": "cross-site"})).status_code == 201
        assert (await client.post("/v1/collections", json={"name": "c"})).status_code == 201


async def test_error_details_never_name_server_paths(tiny_bundle, photos, tmp_path):
    bundle = tmp_path / "bundles" / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    db = tmp_path / "secret-place" / "faces.db"
    keys = tmp_path / "keys.txt"
    admin = add_key(keys, name="ops", role="admin")
    auth = {"authorization": f"Bearer {admin}"}
    async with serving(settings_for(bundle, faces_db=db, api_keys_file=keys)) as (_, client):
        details = []
        body = assert_problem(await client.get("/v1/collections/nope", headers=auth), 404, "not_found")
        assert "no face collection named 'nope'" in body["detail"]
        details.append(body["detail"])
        (bundle / "config.json").write_text((bundle / "config.json").read_text() + " ")
        details.append(assert_problem(await client.post("/v1/models/tiny:reload", headers=auth), 422,
                                      "bundle_tampered")["detail"])
        for detail in details:
            for secret in (str(tmp_path), str(db), "secret-place", str(bundle), "/tmp/", os.path.expanduser("~")):
                assert secret not in detail, (secret, detail)


# --------------------------------------------------------------------------- 3. malformed JSON, key first


DEEP = b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _bad_json_bodies(image: bytes) -> dict[str, bytes]:
    b64 = base64.b64encode(image).decode()
    return {"100,000-deep nesting": DEEP,
            "top_k 1e400": ('{"image": "%s", "top_k": 1e400}' % b64).encode(),
            "5,000-digit top_k": ('{"image": "%s", "top_k": %s}' % (b64, "9" * 5000)).encode(),
            "4,000-digit top_k": ('{"image": "%s", "top_k": %s}' % (b64, "9" * 4000)).encode(),
            "NaN top_k": ('{"image": "%s", "top_k": NaN}' % b64).encode(),
            "not UTF-8": b'{"image": "\xff\xfe"}'}


@pytest.mark.parametrize("route", [PREDICT, "/v1/faces:detect"])
async def test_malformed_json_is_a_400(tiny_bundle, photos, tmp_path, route):
    settings = settings_for(tiny_bundle, faces_db=tmp_path / "f.db", allow_open_faces=True)
    async with serving(settings) as (_, client):
        for case, body in _bad_json_bodies(photos["coffee"].read_bytes()).items():
            r = await client.post(route, content=body, headers={"content-type": "application/json"})
            problem = assert_problem(r, 400, "bad_request")
            assert len(problem["detail"]) < 400, (case, problem)
        if route == PREDICT:  # detect takes no top_k query parameter
            r = await client.post(f"{route}?top_k={'9' * 5000}", content=photos["coffee"].read_bytes())
            assert_problem(r, 400, "invalid_request")


async def test_json_settings_bodies_are_read_after_the_key_check(tiny_bundle, tmp_path):
    keys = tmp_path / "keys.txt"
    user = add_key(keys, name="web")
    admin = add_key(keys, name="ops", role="admin")
    settings = settings_for(tiny_bundle, faces_db=tmp_path / "f.db", api_keys_file=keys)
    json_type = {"content-type": "application/json"}
    async with serving(settings) as (_, client):
        for url in ("/v1/collections", "/v1/collections:import", PREDICT, "/v1/faces:detect"):
            for body in (b"{oops", DEEP):
                assert_problem(await client.post(url, content=body, headers=json_type), 401, "unauthorized")
        assert_problem(await client.post("/v1/collections:import", content=b"{oops",
                                         headers={**json_type, "x-api-key": user}), 403, "forbidden")
        for url, key in (("/v1/collections", user), ("/v1/collections:import", admin)):
            for body in (b"{oops", DEEP, b"[1, 2]", b'{"name": "x", "threshold": 1e400}'):
                r = await client.post(url, content=body, headers={**json_type, "x-api-key": key})
                assert r.status_code == 400 and r.json()["code"] in ("bad_request", "invalid_input"), r.text
