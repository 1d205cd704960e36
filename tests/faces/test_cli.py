"""``recog faces`` in process with Typer's runner, on a real store file."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from recog.cli.main import app


def run(args, env, code=0):
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == code, (result.output, result.exception)
    return result


def out_json(result):
    return json.loads(result.stdout)


@pytest.fixture
def env(tmp_path):
    return {"RECOG_FACES_DB": str(tmp_path / "cli.db")}


def test_detect_with_draw(face_photos, tmp_path, env):
    drawn = tmp_path / "out.jpg"
    d = out_json(run(["faces", "detect", str(face_photos["grace_hopper"]), "--draw", str(drawn)], env))
    assert d["count"] == 1 and len(d["faces"][0]["box"]) == 4 and len(d["faces"][0]["landmarks"]) == 5
    assert Image.open(drawn).size == (512, 600)
    none = out_json(run(["faces", "detect", str(face_photos["coffee"]), "--max-faces", "3"], env))
    assert none["count"] == 0


def test_verify(face_photos, env):
    v = out_json(run(["faces", "verify", str(face_photos["hopper"]), str(face_photos["hopper_crop"])], env))
    assert v["same"] is True and v["threshold"] == 0.6
    v = out_json(run(["faces", "verify", str(face_photos["hopper"]), str(face_photos["astronaut_face"]),
                      "-t", "0.5"], env))
    assert v["same"] is False and v["threshold"] == 0.5


def test_enroll_identify_delete_export_import(staff, face_photos, tmp_path, env):
    r = run(["faces", "enroll", str(staff), "--collection", "office"], env)
    report = out_json(r)
    assert report["enrolled_count"] == 3 and report["skipped_count"] == 3
    assert "skipped" in r.stderr and "multiple_faces" in r.stderr
    run(["faces", "enroll", str(staff), "--collection", "office", "--strict"], env, code=1)
    who = out_json(run(["faces", "identify", str(face_photos["hopper_flip"]), "-c", "office", "-k", "2"], env))
    assert who["faces"][0]["person"] == "Grace Hopper"
    listing = out_json(run(["faces", "list", "-c", "office"], env))
    assert [p["name"] for p in listing["people"]] == ["Eileen Collins", "Grace Hopper"]
    export = tmp_path / "office.json"
    run(["faces", "export", str(export), "-c", "office"], env)
    out_json(run(["faces", "delete", "--collection", "office", "--person", "Grace Hopper"], env))
    who = out_json(run(["faces", "identify", str(face_photos["hopper_flip"]), "-c", "office"], env))
    assert who["faces"][0]["person"] is None and who["faces"][0]["unknown"] is True
    run(["faces", "delete", "--collection", "office"], env, code=1)  # asks, and stdin says nothing
    run(["faces", "delete", "--collection", "office", "--yes"], env)
    assert out_json(run(["faces", "list"], env))["collections"] == []
    imported = out_json(run(["faces", "import", str(export), "--as", "restored"], env))
    assert imported["faces"] == 3
    who = out_json(run(["faces", "identify", str(face_photos["hopper_flip"]), "-c", "restored"], env))
    assert who["faces"][0]["person"] == "Grace Hopper"


def test_single_image_enroll_and_errors(face_photos, env):
    r = run(["faces", "enroll", str(face_photos["hopper"]), "-c", "solo", "--person", "Grace Hopper",
             "--threshold", "0.5"], env)
    assert out_json(r)["enrolled_count"] == 1
    assert out_json(run(["faces", "list"], env))["collections"][0]["threshold"] == 0.5
    run(["faces", "enroll", str(face_photos["hopper"]), "-c", "solo"], env, code=2)  # needs --person
    from recog.errors import NotFoundError

    result = CliRunner().invoke(app, ["faces", "identify", str(face_photos["hopper"]), "-c", "nope"], env=env)
    assert isinstance(result.exception, NotFoundError)  # main() turns it into "error: ..." and exit 3


def test_evaluate(face_photos, tmp_path, env):
    import shutil

    for name in ("hopper", "hopper_flip", "astronaut_face", "astronaut_flip"):
        shutil.copy(face_photos[name], tmp_path / f"{name}.jpg")
    (tmp_path / "pairs.csv").write_text("image1,image2,same,group\nhopper.jpg,hopper_flip.jpg,1,g1\n"
                                        "hopper.jpg,astronaut_face.jpg,0,g1\n"
                                        "astronaut_face.jpg,astronaut_flip.jpg,1,g2\n"
                                        "astronaut_flip.jpg,hopper_flip.jpg,0,g2\n")
    r = run(["faces", "evaluate", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "r.json"),
             "--plot", str(tmp_path / "roc.png")], env)
    summary = out_json(r)
    assert summary["overall"]["accuracy"] == 1.0 and set(summary["groups"]) == {"g1", "g2"}
    assert "threshold sweep" in r.stderr
    assert json.loads((tmp_path / "r.json").read_text())["roc"]["curve"]
    assert (tmp_path / "roc.png").stat().st_size > 1000


def test_detect_min_score_drops_weak_detections(photos):
    """--min-score filters by the detector's score (the full astronaut photo has one weak false detection)."""
    import json

    from typer.testing import CliRunner

    from recog.cli.main import app

    runner = CliRunner()
    scores = {}
    for s in ("0", "0.5"):
        res = runner.invoke(app, ["faces", "detect", str(photos["astronaut"]), "--min-score", s])
        assert res.exit_code == 0, res.output
        scores[s] = [f["score"] for f in json.loads(res.stdout)["faces"]]
    assert all(x > 0.5 for x in scores["0.5"]) and len(scores["0.5"]) >= 1
    assert len(scores["0"]) >= len(scores["0.5"])
