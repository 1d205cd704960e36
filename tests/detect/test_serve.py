"""The service answers boxes for a detect bundle: same JSON fields as the CLI and Python."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def client(tiny_detector, tiny_bundle, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from recog.serve import create_app, load_settings

    monkeypatch.setenv("RECOG_FACES_DB", str(tmp_path / "faces.db"))
    app = create_app(load_settings(models={"shapes": str(tiny_detector), "tiny": str(tiny_bundle)}, env={}))
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c


def _png(path) -> bytes:
    return path.read_bytes()


def test_predict_returns_boxes_in_upload_pixels(client, shapes_voc, tiny_detector):
    import recog

    image = sorted((shapes_voc / "JPEGImages").glob("*.png"))[1]
    r = client.post("/v1/models/shapes:predict?min_score=0.05", files={"image": (image.name, _png(image), "image/png")})
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    local = recog.load(tiny_detector).predict(image, min_score=0.05).to_dict()
    assert set(pred) >= {"boxes", "scores", "class_ids", "labels", "counts", "image_size"}
    assert pred["image_size"] == [96, 72] and pred["labels"] == local["labels"]
    np.testing.assert_allclose(pred["boxes"], local["boxes"], atol=0.2)
    # a bigger copy of the same photo: boxes scale with it
    big = io.BytesIO()
    Image.open(image).resize((192, 144)).save(big, format="PNG")
    r2 = client.post("/v1/models/shapes:predict?min_score=0.05", content=big.getvalue(),
                     headers={"content-type": "image/png"})
    assert r2.json()["predictions"][0]["image_size"] == [192, 144]


def test_min_score_on_a_classifier_names_the_task(client, shapes_voc):
    image = sorted((shapes_voc / "JPEGImages").glob("*.png"))[0]
    r = client.post("/v1/models/tiny:predict?min_score=0.5", content=_png(image), headers={"content-type": "image/png"})
    assert r.status_code == 400 and "'classify' model" in r.json()["detail"]


def test_web_page_loads_the_box_drawing_script(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/boxes.js" defer></script>' in page.text
    script = client.get("/static/boxes.js")
    assert script.status_code == 200 and "prediction.class_ids" in script.text and "createElementNS" in script.text


def test_prediction_log_leaves_detect_answers_unlogged(tiny_detector, shapes_voc, tmp_path, monkeypatch):
    """The opt-in prediction log records classification results; a detector on the same service still answers."""
    from fastapi.testclient import TestClient

    from recog.serve import create_app, load_settings

    monkeypatch.setenv("RECOG_FACES_DB", str(tmp_path / "faces.db"))
    app = create_app(load_settings(models={"shapes": str(tiny_detector)}, env={}, log_predictions=tmp_path / "ops.db"))
    image = sorted((shapes_voc / "JPEGImages").glob("*.png"))[0]
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        r = c.post("/v1/models/shapes:predict", files={"image": (image.name, _png(image), "image/png")})
        assert r.status_code == 200, r.text
        assert "boxes" in r.json()["predictions"][0] and "prediction_id" not in r.json()["predictions"][0]
        health = c.get("/health").json()
    assert health["status"] == "ok" and health["prediction_log"]["written"] == 0


def test_the_python_client_and_predict_server_read_boxes_from_a_running_service(tiny_detector, tiny_bundle, shapes_voc,
                                                                               tmp_path, capsys):
    """A real `recog serve` process with a detector and a classifier: `Client.predict` gives the task's typed result
    (Detections equal to the local ones), `recog predict --server --min-score` prints boxes, and --min-score
    against the classifier is refused in one line before any upload."""
    import json

    import recog
    from recog.detect.result import Detections
    from recog.types import Classification
    from tests.cli.test_cli_end_to_end import run_cli
    from tests.serve.conftest import ServerProcess

    image = sorted((shapes_voc / "JPEGImages").glob("*.png"))[1]
    server = ServerProcess([str(tiny_detector), "--name", "shapes", str(tiny_bundle), "--name", "tiny"],
                           env={"RECOG_FACES_DB": str(tmp_path / "faces.db")})
    try:
        server.wait_ready()
        client = recog.Client(server.url)
        remote = client.predict(image, model="shapes", min_score=0.05)
        local = recog.load(tiny_detector).predict(image, min_score=0.05)
        assert isinstance(remote, Detections) and remote.source == str(image) and len(remote) == len(local) > 0
        assert remote.labels == local.labels and remote.image_size == local.image_size
        np.testing.assert_allclose(remote.boxes, local.boxes, atol=0.2)
        assert isinstance(client.predict(image, model="tiny"), Classification)

        code, stdout, stderr = run_cli(["predict", "--server", server.url, "--model", "shapes", "--min-score", "0.05",
                                        "--format", "jsonl", image], capsys)
        assert code == 0, stderr
        printed = json.loads(stdout.splitlines()[0])
        assert printed["labels"] == list(local.labels) and len(printed["boxes"]) == len(local)

        code, _, stderr = run_cli(["predict", "--server", server.url, "--model", "tiny", "--min-score", "0.5", image],
                                  capsys)
        assert code != 0 and "'classify' model" in stderr and "--min-score" in stderr
    finally:
        server.stop()
