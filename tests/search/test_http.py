"""The search routes in process (ASGI transport): query, add, delete, list; keys before bodies; 404s without paths."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from recog.serve.auth import add_key
from tests.serve.conftest import serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def shop(tiny_bundle, photos, tmp_path, monkeypatch):
    """An index 'shop' of four photos embedded by the tiny bundle, in a scratch search.db."""
    from recog.search import Indexes
    from recog.search.images import index_images, load_embedder

    db = tmp_path / "search.db"
    monkeypatch.setenv("RECOG_SEARCH_DB", str(db))
    monkeypatch.setenv("RECOG_FACES_DB", str(tmp_path / "faces.db"))
    model, ref = load_embedder(str(tiny_bundle))
    names = ["astronaut", "coffee", "rocket", "chelsea"]
    meta = {f"{n}.jpg": (n, {"category": "space" if n in ("astronaut", "rocket") else "home", "n": i})
            for i, n in enumerate(names)}
    with Indexes(db) as indexes:
        index = indexes.create("shop", model=ref)
        report = index_images(index, model, ref, [photos[n] for n in names], photos["coffee"].parent, meta=meta)
        assert report.added == 4
    return db


def settings(bundle, **kw):
    from recog.serve import load_settings

    return load_settings(models={"tiny": str(bundle)}, env={}, preprocess_workers=1, **kw)


def problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()


async def test_query_add_delete_and_list(shop, tiny_bundle, photos, tmp_path):
    keys = tmp_path / "keys.txt"
    key = {"x-api-key": add_key(keys, name="web")}
    async with serving(settings(tiny_bundle, api_keys_file=keys)) as (_, client):
        listed = (await client.get("/v1/indexes", headers=key)).json()["indexes"]
        assert [i["name"] for i in listed] == ["shop"] and listed[0]["items"] == 4
        assert listed[0]["model"]["name"] == "tiny" and str(tmp_path) not in str(listed)

        r = await client.post("/v1/indexes/shop:query?k=2", content=photos["rocket"].read_bytes(), headers=key)
        assert r.status_code == 200, r.text
        hits = r.json()["results"][0]["hits"]
        assert hits[0]["id"] == "rocket" and hits[0]["metadata"] == {"category": "space", "n": 2} and len(hits) == 2

        r = await client.post("/v1/indexes/shop:query", params={"where": "category = 'home'"},
                              files=[("image", ("q.jpg", photos["rocket"].read_bytes(), "image/jpeg"))], headers=key)
        assert {h["id"] for h in r.json()["results"][0]["hits"]} == {"coffee", "chelsea"}
        assert r.json()["results"][0]["source"] == "q.jpg"

        r = await client.post("/v1/indexes/shop/items", params={"id": "cam", "metadata": '{"category": "tools"}'},
                              content=photos["camera_png"].read_bytes(), headers=key)
        assert r.status_code == 201 and r.json()["added"] == 1
        r = await client.post("/v1/indexes/shop:query?k=1", params={"where": "category = 'tools'"},
                              content=photos["camera_png"].read_bytes(), headers=key)
        assert r.json()["results"][0]["hits"][0]["id"] == "cam"

        # thumbnails for the web page's grid: items indexed from files have one, uploaded items do not
        r = await client.get("/v1/indexes/shop/items/rocket/thumbnail?size=64", headers=key)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(r.content)).size) == 64
        assert str(tmp_path) not in problem(await client.get("/v1/indexes/shop/items/cam/thumbnail", headers=key),
                                            404)["detail"]
        problem(await client.get("/v1/indexes/shop/items/nope/thumbnail", headers=key), 404)
        problem(await client.get("/v1/indexes/shop/items/rocket/thumbnail"), 401)

        r = await client.delete("/v1/indexes/shop/items/cam", headers=key)
        assert r.status_code == 200 and r.json()["vectors"] == 1
        r = await client.post("/v1/indexes/shop:query?k=10", content=photos["camera_png"].read_bytes(), headers=key)
        assert "cam" not in [h["id"] for h in r.json()["results"][0]["hits"]]
        problem(await client.delete("/v1/indexes/shop/items/cam", headers=key), 404)


async def test_refusals(shop, tiny_bundle, photos, tmp_path):
    keys = tmp_path / "keys.txt"
    key = {"x-api-key": add_key(keys, name="web")}
    async with serving(settings(tiny_bundle, api_keys_file=keys)) as (_, client):
        # the key is checked before the body is read: a broken body still gets 401
        problem(await client.post("/v1/indexes/shop:query", content=b"not an image"), 401)
        problem(await client.post("/v1/indexes/shop/items?id=x", content=b"not an image"), 401)
        problem(await client.delete("/v1/indexes/shop/items/rocket"), 401)
        # unknown index: 404 naming the ones that exist, no server path
        body = problem(await client.post("/v1/indexes/shpo:query", content=b"x", headers=key), 404)
        assert "shop" in body["detail"] and str(tmp_path) not in body["detail"]
        # a filter syntax error says where, before the body is read
        body = problem(await client.post("/v1/indexes/shop:query", params={"where": "category = "}, content=b"x",
                                         headers=key), 400)
        assert "position" in body["detail"]
        body = problem(await client.post("/v1/indexes/shop:query", content=b"\xff\xd8\xff broken", headers=key), 422)
        assert str(tmp_path) not in body["detail"]
        problem(await client.post("/v1/indexes/shop/items?id=x&metadata=[1]", content=photos["coffee"].read_bytes(),
                                  headers=key), 400)
    # without a key file, reads work on loopback but writes are refused
    async with serving(settings(tiny_bundle)) as (_, client):
        assert (await client.get("/v1/indexes")).status_code == 200
        problem(await client.post("/v1/indexes/shop/items?id=x", content=photos["coffee"].read_bytes()), 403)
        problem(await client.delete("/v1/indexes/shop/items/rocket"), 403)
