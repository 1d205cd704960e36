"""Evaluation: pure metrics on given distances, and a pairs CSV end to end with groups."""

from __future__ import annotations

import pytest

from recog.errors import DatasetError
from recog.faces import evaluate_distances, evaluate_pairs


def test_rates_at_the_threshold():
    r = evaluate_distances([0.2, 0.5, 0.7, 0.4, 0.9, 0.65], [True, True, True, False, False, False], threshold=0.6)
    o = r.overall
    assert (o["pairs"], o["genuine"], o["impostor"]) == (6, 3, 3)
    assert o["fnmr"] == pytest.approx(1 / 3)  # 0.7 genuine rejected
    assert o["fmr"] == pytest.approx(1 / 3)  # 0.4 impostor accepted
    assert o["accuracy"] == pytest.approx(4 / 6)
    assert 0 <= o["auc"] <= 1 and o["eer"] is not None
    sweep = {row["threshold"]: row for row in r.sweep}
    assert sweep[0.3]["fmr"] == 0 and sweep[0.9]["fnmr"] == 0
    fmrs = [row["fmr"] for row in r.sweep]
    assert fmrs == sorted(fmrs)  # a looser threshold never lowers the false match rate
    curve = r.roc["curve"]
    assert curve[0]["fmr"] == 0 and curve[-1]["fmr"] == 1


def test_groups_and_the_largest_gap():
    d = [0.3, 0.4, 0.8, 0.7, 0.3, 0.35, 0.5, 0.9]
    same = [True, True, False, False, True, True, False, False]
    groups = ["a", "a", "a", "a", "b", "b", "b", "b"]
    r = evaluate_distances(d, same, groups=groups)
    assert r.groups["a"]["fmr"] == 0 and r.groups["b"]["fmr"] == 0.5
    assert r.largest_gap["metric"] in ("fmr", "accuracy") and r.largest_gap["worst_group"] == "b"
    assert r.gaps["fmr"] == {"gap": 0.5, "worst_group": "b", "best_group": "a", "worst": 0.5, "best": 0.0}
    assert r.to_dict()["largest_gap"] == r.largest_gap


def test_bad_inputs():
    with pytest.raises(DatasetError):
        evaluate_distances([0.1, 0.2], [True])
    with pytest.raises(DatasetError):
        evaluate_distances([0.1], [True], groups=["a", "b"])


def test_pairs_csv_end_to_end(face_photos, analyzer, tmp_path):
    import shutil

    for name in ("hopper", "hopper_flip", "astronaut_face", "astronaut_flip", "coffee"):
        shutil.copy(face_photos[name], tmp_path / f"{name}.jpg")
    (tmp_path / "pairs.csv").write_text(
        "image1,image2,same,group\n"
        "hopper.jpg,hopper_flip.jpg,1,older\n"
        "hopper.jpg,astronaut_face.jpg,0,older\n"
        "astronaut_face.jpg,astronaut_flip.jpg,yes,younger\n"
        "astronaut_flip.jpg,hopper_flip.jpg,no,younger\n"
        "coffee.jpg,hopper.jpg,same,younger\n")
    r = evaluate_pairs(tmp_path / "pairs.csv", analyzer)
    o = r.overall
    assert (o["pairs"], o["genuine"], o["impostor"]) == (5, 3, 2)
    assert o["fmr"] == 0 and o["fnmr"] == pytest.approx(1 / 3)  # the face-free image fails its genuine pair
    assert [f["image"].rsplit("/", 1)[-1] for f in r.failed_images] == ["coffee.jpg"]
    assert set(r.groups) == {"older", "younger"} and r.groups["older"]["accuracy"] == 1.0
    assert r.largest_gap["worst_group"] == "younger"


def test_pairs_csv_errors(tmp_path):
    (tmp_path / "p.csv").write_text("left,right\na.jpg,b.jpg\n")
    with pytest.raises(DatasetError, match="same/different"):
        evaluate_pairs(tmp_path / "p.csv")
    (tmp_path / "q.csv").write_text("image1,image2,same\na.jpg,b.jpg,maybe\n")
    with pytest.raises(DatasetError, match="maybe"):
        evaluate_pairs(tmp_path / "q.csv")
