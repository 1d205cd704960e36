"""The detect task end to end on a tiny synthetic set: train, predict (Python, CLI), evaluate, task refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import recog
from recog.cli.main import app
from recog.detect.result import Detections
from recog.errors import ConfigError


def test_training_writes_a_detect_bundle_with_history(tiny_detector):
    manifest = recog.load(tiny_detector).manifest
    assert manifest.task == "detect" and manifest.labels == ("disc", "square")
    assert manifest.preprocessing.resize == "stretch" and manifest.preprocessing.size == (64, 64)
    assert 0.0 <= manifest.metrics["val_map50"] <= 1.0
    run = tiny_detector.parent
    assert (run / "last" / "recog.json").is_file() and len((run / "metrics.csv").read_text().splitlines()) == 3
    training = json.loads((tiny_detector / "recog.json").read_text())["training"]
    assert training["batch_size"] == 8 and training["label_smoothing"] == 0.0   # the task's defaults applied


def test_predict_returns_detections_in_original_pixels(tiny_detector, shapes_voc):
    model = recog.load(tiny_detector)
    image = sorted((shapes_voc / "JPEGImages").glob("*.png"))[0]
    d = model.predict(image, min_score=0.0, max_detections=7)
    assert isinstance(d, Detections) and len(d) == 7 and d.image_size == (96, 72)
    assert np.all(d.boxes[:, 2] <= 96) and np.all(d.boxes[:, 3] <= 72)
    assert list(d.scores) == sorted(d.scores, reverse=True)
    out = d.to_dict()
    assert set(out) == {"boxes", "scores", "class_ids", "labels", "counts", "image_size", "source"}
    assert sum(out["counts"].values()) == 7 and set(out["counts"]) == {"disc", "square"}
    assert len(d[d.scores > d.scores[2]]) == 2
    with pytest.raises(ConfigError, match="min_score"):
        model.predict(image, min_score=1.5)


def test_cli_predict_draw_and_evaluate(tiny_detector, shapes_voc, tmp_path):
    runner = CliRunner()
    image = sorted((shapes_voc / "JPEGImages").glob("*.png"))[0]
    res = runner.invoke(app, ["predict", str(tiny_detector), str(image), "--min-score", "0.0",
                              "--draw", str(tmp_path / "drawn.png")])
    assert res.exit_code == 0, res.output
    row = json.loads([line for line in res.stdout.splitlines() if line.startswith("{")][0])
    assert row["source"] == str(image) and len(row["boxes"]) == len(row["labels"]) > 0
    from PIL import Image

    assert Image.open(tmp_path / "drawn.png").size == (96, 72)
    res = runner.invoke(app, ["evaluate", str(tiny_detector), str(shapes_voc), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["split"] == "test" and m["images"] == 6 and 0 <= m["map50"] <= 1
    assert m["confusion_matrix"]["labels"] == ["disc", "square", "background"]
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "Precision-recall" in page or "PR curves" in page
    assert page.count("data:image/png") >= 2


def test_task_mismatch_is_one_line(tiny_detector, tiny_bundle, shapes_voc):
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(tiny_bundle), str(next((shapes_voc / "JPEGImages").glob("*.png"))),
                              "--min-score", "0.5"])
    assert res.exit_code != 0 and "'classify' model" in str(res.exception or res.output)


def test_resume_continues_a_detect_run_from_last(tiny_detector, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_detector.parent, run)
    res = CliRunner().invoke(app, ["train", "--resume", str(run), "--epochs", "3"])
    assert res.exit_code == 0, res.output
    assert "trained 3 epochs" in res.output and "best val mAP@0.5" in res.output
    assert len((run / "metrics.csv").read_text().splitlines()) == 4   # header + epochs 1, 2 and the resumed 3


def test_evaluate_refuses_data_of_the_other_task(tiny_detector, tiny_bundle, shapes_voc, tmp_path):
    (tmp_path / "cls" / "a").mkdir(parents=True)
    (tmp_path / "cls" / "b").mkdir(parents=True)
    for p in sorted((shapes_voc / "JPEGImages").glob("*.png"))[:2]:
        (tmp_path / "cls" / "a" / p.name).write_bytes(p.read_bytes())
        (tmp_path / "cls" / "b" / p.name).write_bytes(p.read_bytes())
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", str(tiny_detector), str(tmp_path / "cls")])
    assert res.exit_code != 0 and "is a 'detect' model" in str(res.exception)
    res = runner.invoke(app, ["evaluate", str(tiny_bundle), str(shapes_voc)])
    assert res.exit_code != 0 and "'classify' model" in str(res.exception) and "VOC" in str(res.exception)


def test_in_memory_images_get_boxes_in_their_own_pixels(tiny_detector, shapes_voc):
    from PIL import Image

    model = recog.load(tiny_detector)
    path = sorted((shapes_voc / "JPEGImages").glob("*.png"))[2]
    from_path = model.predict(path, min_score=0.05)
    array = np.asarray(Image.open(path).convert("RGB"))
    for source in (array, Image.open(path), path.read_bytes()):
        d = model.predict(source, min_score=0.05)
        assert d.image_size == (96, 72)
        np.testing.assert_allclose(d.boxes, from_path.boxes, atol=0.05)
