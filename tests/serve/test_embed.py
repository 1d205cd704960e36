"""``POST /v1/models/{name}:embed`` (issue 11): same inputs, limits, admission and deadline as :predict."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest

from tests.serve.conftest import serving, settings_for

pytestmark = pytest.mark.anyio

EMBED = "/v1/models/tiny:embed"


async def test_embed_answers_embeddings_that_match_the_library(tiny_bundle, photos):
    import recog

    names = ["chelsea", "coffee"]
    files = [("image", (photos[n].name, photos[n].read_bytes())) for n in names]
    async with serving(settings_for(tiny_bundle)) as (app, client):
        r = await client.post(EMBED, files=files)
        assert r.status_code == 200, r.text
        doc = r.json()
        served = app.state.recog.pool.get("tiny")
        assert doc["model"] == "tiny" and doc["version"] == served.version
        rows = doc["embeddings"]
        assert [e["source"] for e in rows] == [photos[n].name for n in names]
        assert all(set(e) == {"embedding", "dim", "source"} for e in rows)
        vectors = np.array([e["embedding"] for e in rows])
        assert vectors.shape == (2, rows[0]["dim"]) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
        local = recog.load(tiny_bundle).embed([photos[n].read_bytes() for n in names])
        assert np.allclose(vectors, local, atol=1e-5)
        # the other two input forms give the same vector
        data = photos["chelsea"].read_bytes()
        raw = (await client.post(EMBED, content=data, headers={"content-type": "image/jpeg"})).json()
        js = (await client.post(EMBED, json={"image": base64.b64encode(data).decode()})).json()
        for doc in (raw, js):
            assert "source" not in doc["embeddings"][0]
            assert np.allclose(doc["embeddings"][0]["embedding"], vectors[0], atol=1e-6)
        # concurrent :embed and :predict share the model's batcher; each gets its own kind of answer
        calls = [client.post(EMBED if i % 2 else "/v1/models/tiny:predict", content=data) for i in range(8)]
        answers = await asyncio.gather(*calls)
        assert {r.status_code for r in answers} == {200}
        assert all(("embeddings" in r.json()) == bool(i % 2) for i, r in enumerate(answers))
        assert served.batcher.depth == 0


async def test_embed_shares_limits_admission_and_deadline_with_predict(tiny_bundle, photos):
    data = photos["coffee"].read_bytes()
    settings = settings_for(tiny_bundle, max_queue=4, max_images_per_request=4, max_batch_size=8, max_delay_ms=50)
    async with serving(settings) as (app, client):
        r = await client.post(EMBED, json={"image": base64.b64encode(data).decode(), "top_k": 3})
        assert r.status_code == 400 and r.json()["code"] == "bad_request"
        assert (await client.post(EMBED, files=[("image", (f"{i}.jpg", data)) for i in range(5)])).status_code == 400
        assert (await client.post(EMBED, content=b"not an image")).json()["code"] == "unsupported_format"
        r = await client.post(EMBED, content=data, headers={"X-Request-Timeout": "0.000001"})
        assert r.status_code == 504 and r.json()["code"] == "deadline_exceeded"
        assert (await client.post("/v1/models/nope:embed", content=data)).status_code == 404
        batcher = app.state.recog.pool.get("tiny").batcher
        ticket = batcher.admit(4)  # :predict requests hold every slot of the model's queue
        try:
            r = await client.post(EMBED, content=data)
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        finally:
            ticket.release()
        assert (await client.post(EMBED, content=data)).status_code == 200
