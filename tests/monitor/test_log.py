"""The prediction log: what a request writes, the ring bound, feedback, and a log that fails."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

pytestmark = pytest.mark.anyio


def _digit_files(digits_tree, n=3):
    return [("image", (p.name, p.read_bytes(), "image/png")) for p in sorted((digits_tree / "test").rglob("*.png"))[:n]]


async def test_log_records_predictions_and_feedback(digits_model, digits_tree, photos, tmp_path, serving):
    db = tmp_path / "ops.db"
    async with serving(digits_model, tmp_path, log_predictions=db) as (app, client):
        r = await client.post("/v1/models/digits:predict?top_k=2", files=_digit_files(digits_tree))
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        r2 = await client.post("/v1/models/digits:predict", content=photos["coffee"].read_bytes(),
                               headers={"content-type": "image/jpeg"})
        coffee = r2.json()["predictions"][0]
        assert coffee["ood"]["unknown"] is True
        fb = await client.post("/v1/models/digits:feedback",
                               json={"prediction_id": preds[0]["prediction_id"], "label": "7"})
        assert fb.status_code == 200, fb.text
        assert fb.json()["correct"] == (preds[0]["label"] == "7")
        missing = await client.post("/v1/models/digits:feedback", json={"prediction_id": "nope", "label": "7"})
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        health = (await client.get("/health")).json()
        assert health["status"] == "ok" and health["prediction_log"]["written"] == 4
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT id, model, version, width, height, label, score, top, ood, unknown, logits, "
                        "latency_ms, image, input_sha256 FROM predictions ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [p["prediction_id"] for p in preds] + [coffee["prediction_id"]]
    first = rows[0]
    assert first[1] == "digits" and first[3:5] == (28, 28) and first[5] == preds[0]["label"]
    assert json.loads(first[7])[0][0] == preds[0]["label"] and len(json.loads(first[7])) == 2
    assert first[8] == pytest.approx(preds[0]["ood"]["score"], abs=1e-5)
    assert np.frombuffer(first[10], np.float32).shape == (3,)
    assert first[11] > 0 and first[12] is None          # no image bytes without --log-images
    assert rows[3][9] == 1                               # the coffee photo: unknown
    import hashlib

    assert first[13] == hashlib.sha256(_digit_files(digits_tree)[0][1][1]).hexdigest()
    assert conn.execute("SELECT label FROM feedback").fetchall() == [("7",)]


async def test_locked_or_corrupt_log_keeps_serving(digits_model, digits_tree, tmp_path, serving):
    db = tmp_path / "ops.db"
    async with serving(digits_model, tmp_path, log_predictions=db) as (app, client):
        log = app.state.recog.prediction_log
        assert (await client.post("/v1/models/digits:predict", files=_digit_files(digits_tree, 1))).status_code == 200
        log.flush()
        blocker = sqlite3.connect(db)
        blocker.execute("BEGIN EXCLUSIVE")                 # another process holds the write lock
        r = await client.post("/v1/models/digits:predict", files=_digit_files(digits_tree, 2))
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        log.flush()
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded" and "locked" in health["prediction_log"]["reason"]
        assert health["prediction_log"]["dropped"] == 2
        blocker.rollback()
        blocker.close()
        await client.post("/v1/models/digits:predict", files=_digit_files(digits_tree, 1))
        log.flush()
        assert (await client.get("/health")).json()["status"] == "ok"
    bad = tmp_path / "corrupt.db"
    bad.write_bytes(b"this is not a database" * 100)
    async with serving(digits_model, tmp_path, log_predictions=bad) as (app, client):
        r = await client.post("/v1/models/digits:predict", files=_digit_files(digits_tree, 1))
        assert r.status_code == 200
        app.state.recog.prediction_log.flush()
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded" and "not a database" in health["prediction_log"]["reason"]
    assert bad.read_bytes() == b"this is not a database" * 100     # nothing of it lost or overwritten


async def test_feedback_without_a_log_is_404(digits_model, tmp_path, serving):
    async with serving(digits_model, tmp_path) as (_, client):
        r = await client.post("/v1/models/digits:feedback", json={"prediction_id": "x", "label": "7"})
        assert r.status_code == 404 and "--log-predictions" in r.json()["detail"] + r.json().get("hint", "")
        assert (await client.get("/health")).json()["prediction_log"] == {"status": "off"}


def test_ring_keeps_the_newest_rows(digits_model, digits_tree, tmp_path, serving):
    import recog
    from recog.monitor.log import PredictionLog

    model = recog.load(digits_model)
    paths = sorted((digits_tree / "test").rglob("*.png"))[:12]
    results = model.predict([str(p) for p in paths])
    raw, _, _ = model.outputs_many([str(p) for p in paths])
    log = PredictionLog(tmp_path / "ring.db", max_rows=5, store_images=True)
    ids = [log.record("digits", "v1", [(p.read_bytes(), p.name)], [r], raw[i:i + 1], 1.0)[0]
           for i, (p, r) in enumerate(zip(paths, results))]
    assert log.flush()
    log.close()
    kept = sqlite3.connect(tmp_path / "ring.db").execute("SELECT id, image FROM predictions ORDER BY seq").fetchall()
    assert [k[0] for k in kept] == ids[-5:]
    assert kept[-1][1] == paths[-1].read_bytes()


async def test_dashboard_page_and_data(digits_model, digits_tree, tmp_path, serving):
    async with serving(digits_model, tmp_path, log_predictions=tmp_path / "ops.db") as (app, client):
        r = await client.post("/v1/models/digits:predict", files=_digit_files(digits_tree, 4))
        pid = r.json()["predictions"][0]["prediction_id"]
        await client.post("/v1/models/digits:feedback",
                          json={"prediction_id": pid, "label": r.json()["predictions"][0]["label"]})
        app.state.recog.prediction_log.flush()
        d = (await client.get("/v1/monitor/digits?minutes=5&buckets=5")).json()
        assert d["total"] == 4 and sum(b["count"] for b in d["buckets"]) == 4
        assert sum(sum(b["classes"].values()) for b in d["buckets"]) == 4
        assert d["feedback"] == {"count": 1, "accuracy": 1.0} and d["log"]["status"] == "ok"
        page = await client.get("/dashboard")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
        assert "/static/dashboard.js" in page.text and "http" not in page.text.split("<body>")[1]
        assert (await client.get("/static/dashboard.js")).status_code == 200
        assert (await client.get("/v1/monitor/nope")).status_code == 404


def test_drift_gauges_per_model(digits_model, digits_tree, tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest

    import recog
    from recog.monitor.log import PredictionLog

    model = recog.load(digits_model)
    paths = sorted((digits_tree / "test").rglob("*.png"))
    raw, _, _ = model.outputs_many([str(p) for p in paths])
    results = model.postprocess(raw)
    registry = CollectorRegistry()
    log = PredictionLog(tmp_path / "g.db", drift_every=20, registry=registry)
    log.record("digits", model.manifest.version, [(p.read_bytes(), p.name) for p in paths], results, raw, 1.0,
               model.manifest)
    log.close()
    assert log.drift["digits"]["images"] == 20 and log.drift["digits"]["status"] in ("ok", "drift")
    text = generate_latest(registry).decode()
    assert 'recog_drift_status{model="digits"}' in text and 'recog_ood_rate{model="digits"}' in text


async def test_feedback_on_a_locked_log_is_503(digits_model, digits_tree, tmp_path, serving):
    db = tmp_path / "ops.db"
    async with serving(digits_model, tmp_path, log_predictions=db) as (app, client):
        pid = (await client.post("/v1/models/digits:predict", files=_digit_files(digits_tree, 1))).json()["predictions"][0]["prediction_id"]
        app.state.recog.prediction_log.flush()
        blocker = sqlite3.connect(db, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            r = await client.post("/v1/models/digits:feedback", json={"prediction_id": pid, "label": "7"})
        finally:
            blocker.rollback()
            blocker.close()
        assert r.status_code == 503 and r.json()["code"] == "log_unavailable"
        assert sqlite3.connect(db).execute("SELECT count(*) FROM feedback").fetchone() == (0,)
