"""The service's shared dependencies: one admission policy, the request deadline, faces state from the lifespan."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from recog.errors import DeadlineExceededError, OverloadedError
from recog.serve.deps import Admission, Deadline
from tests.serve.conftest import serving, settings_for

pytestmark = pytest.mark.anyio


async def test_admission_refuses_past_the_limit_and_recovers():
    rejected = []
    admission = Admission("the test queue", 3, retry_after=lambda admitted: admitted * 0.5,
                          on_reject=lambda: rejected.append(1))
    with admission.slots(3):
        with pytest.raises(OverloadedError, match="the test queue is at capacity") as err:
            admission.admit(1)
        assert err.value.retry_after == 1.5 and rejected == [1]
    assert admission.admitted == 0
    with admission.slots(1), admission.slots(2):
        assert admission.admitted == 3


async def test_deadline_names_what_the_request_was_doing():
    deadline = Deadline(0.01, time.monotonic() - 1.0)  # already passed
    with pytest.raises(DeadlineExceededError, match="0.01 s deadline while waiting"):
        await deadline.wait(asyncio.sleep(1), "while waiting")


async def test_faces_state_opens_in_the_lifespan(tiny_bundle, tmp_path):
    from recog.serve import create_app

    db = tmp_path / "lifespan.db"
    app = create_app(settings_for(tiny_bundle, faces_db=db, allow_open_faces=True))
    assert app.state.recog.faces is None and not db.exists()  # building the app opens nothing
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        r = await client.get("/v1/collections")
        assert r.status_code == 503 and r.json()["code"] == "not_ready"
        async with app.router.lifespan_context(app):
            assert db.exists() and app.state.recog.faces is not None
            assert (await client.get("/v1/collections")).json() == {"collections": []}


async def test_faces_routes_share_the_admission_policy(tiny_bundle, photos, tmp_path):
    settings = settings_for(tiny_bundle, faces_db=tmp_path / "f.db", max_queue=32, allow_open_faces=True)
    async with serving(settings) as (app, client):
        admission = app.state.recog.faces.admission
        assert admission.limit == settings.max_queue
        with admission.slots(32):  # as if 32 images were being analysed
            r = await client.post("/v1/faces:detect", content=photos["coffee"].read_bytes())
        assert r.status_code == 429 and r.json()["code"] == "overloaded" and int(r.headers["retry-after"]) >= 1
        assert admission.admitted == 0
