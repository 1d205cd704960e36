"""Face routes on the service app (in process, lifespan running): same keys, limits and problem+json."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient


def _client(tmp_path, **kw):
    from recog.serve import create_app, load_settings

    kw.setdefault("allow_open_faces", True)  # the face routes need a key unless opened on purpose
    settings = load_settings(env={}, faces_db=str(tmp_path / "svc.db"), **kw)
    return TestClient(create_app(settings), base_url="http://127.0.0.1:8000")  # Host must be the bound address


def _files(*paths):
    return [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def test_detect_verify(tmp_path, face_photos):
    with _client(tmp_path) as c:
        r = c.post("/v1/faces:detect", files=_files(face_photos["grace_hopper"], face_photos["coffee"]))
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["count"] for x in results] == [1, 0] and results[0]["source"] == "grace_hopper.jpg"
        r = c.post("/v1/faces:detect?max_faces=1&upsample=0", content=face_photos["astronaut"].read_bytes(),
                   headers={"Content-Type": "image/jpeg"})
        assert r.json()["results"][0]["count"] == 1
        r = c.post("/v1/faces:verify", json={"images": [base64.b64encode(face_photos[n].read_bytes()).decode()
                                                        for n in ("hopper", "hopper_flip")]})
        assert r.status_code == 200 and r.json()["same"] is True and r.json()["threshold"] == 0.6
        r = c.post("/v1/faces:verify", files=_files(face_photos["hopper"]))
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
        r = c.post("/v1/faces:verify", files=_files(face_photos["hopper"], face_photos["rocket"]))
        assert r.status_code == 422 and r.json()["code"] == "no_face"
        r = c.post("/v1/faces:detect", content=b"<svg/>", headers={"Content-Type": "image/svg+xml"})
        assert r.status_code == 415 and r.json()["code"] == "unsupported_format"
        r = c.post("/v1/faces:detect", files=_files(face_photos["grace_hopper"]),
                   headers={"X-Request-Timeout": "0.000001"})  # the client's deadline holds here too
        assert r.status_code == 504 and r.json()["code"] == "deadline_exceeded"
        r = c.post("/v1/faces:detect", content=b"truncated", headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 415 and not r.json()["detail"].startswith("<bytes>")


def test_collections_lifecycle(tmp_path, face_photos):
    with _client(tmp_path) as c:
        assert c.post("/v1/collections", json={"name": "office", "threshold": 0.55}).status_code == 201
        assert c.post("/v1/collections", json={"name": "office"}).json()["code"] == "conflict"
        r = c.post("/v1/collections/office/people/Grace%20Hopper/faces",
                   files=_files(face_photos["hopper"], face_photos["hopper_bright"], face_photos["coffee"]))
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["enrolled_count"] == 2 and doc["skipped"][0]["code"] == "no_face"
        r = c.post("/v1/collections/office/people/Eileen%20Collins/faces", files=_files(face_photos["astronaut"]))
        assert r.status_code == 422 and r.json()["code"] == "multiple_faces"
        r = c.post("/v1/collections/office/people/Eileen%20Collins/faces",
                   files=_files(face_photos["astronaut_face"]))
        assert r.status_code == 201
        r = c.post("/v1/collections/office:identify?top_k=2", files=_files(face_photos["hopper_flip"]))
        assert r.status_code == 200, r.text
        face = r.json()["faces"][0]
        assert face["person"] == "Grace Hopper" and r.json()["threshold"] == 0.55
        info = c.get("/v1/collections/office").json()
        assert info["collection"]["faces"] == 3 and len(info["people"]) == 2
        assert [x["name"] for x in c.get("/v1/collections").json()["collections"]] == ["office"]
        eileen_face = [p for p in info["people"] if p["name"] == "Eileen Collins"][0]["face_ids"][0]
        assert c.delete(f"/v1/collections/office/faces/{eileen_face}").json()["person"] == "Eileen Collins"
        assert c.delete("/v1/collections/office/people/Grace%20Hopper").json()["faces"] == 2
        r = c.post("/v1/collections/office:identify", files=_files(face_photos["hopper_flip"]))
        assert r.json()["faces"][0]["unknown"] is True
        assert c.delete("/v1/collections/office/people/Grace%20Hopper").json()["code"] == "not_found"
        assert c.delete("/v1/collections/office").status_code == 200
        r = c.post("/v1/collections/office:identify", files=_files(face_photos["hopper_flip"]))
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        assert c.get("/v1/collections/office:export").status_code == 403  # admin only; no key file here


def test_api_keys_and_body_limit(tmp_path, face_photos):
    from recog.serve.auth import add_key

    keys = tmp_path / "keys.txt"
    user = add_key(keys, name="web")
    admin = add_key(keys, name="ops", role="admin")
    with _client(tmp_path, api_keys_file=str(keys), max_body_bytes=64 * 1024) as c:
        assert c.get("/v1/collections").status_code == 401
        auth = {"Authorization": f"Bearer {user}"}
        assert c.post("/v1/collections", json={"name": "k"}, headers=auth).status_code == 201
        assert c.get("/v1/collections/k:export", headers=auth).status_code == 403
        doc = c.get("/v1/collections/k:export", headers={"X-API-Key": admin}).json()
        assert doc["format"] == "recog.faces.collection"
        r = c.post("/v1/collections:import?name=k2", json=doc, headers={"X-API-Key": admin})
        assert r.status_code == 201 and r.json()["name"] == "k2"
        r = c.post("/v1/faces:detect", files=_files(face_photos["astronaut"]), headers=auth)
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"  # 68 KB > the 64 KiB cap


@pytest.mark.parametrize("query", ["threshold=9", "upsample=7", "detector=yolo"])
def test_bad_query_parameters(tmp_path, face_photos, query):
    with _client(tmp_path) as c:
        route = "/v1/faces:verify" if query.startswith("threshold") else "/v1/faces:detect"
        r = c.post(f"{route}?{query}", files=_files(face_photos["hopper"], face_photos["hopper"]))
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
