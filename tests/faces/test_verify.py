"""Verification on real photographs: same-person variants match, different people do not."""

from __future__ import annotations

import numpy as np
import pytest

from recog.errors import ConfigError, NoFaceError
from recog.faces import DEFAULT_THRESHOLD

SAME = [("hopper", "hopper_flip"), ("hopper", "hopper_crop"), ("hopper", "hopper_bright"),
        ("hopper_flip", "hopper_bright"), ("astronaut_face", "astronaut_flip"), ("astronaut_face", "astronaut_dark"),
        ("astronaut", "astronaut_flip")]
DIFFERENT = [("hopper", "astronaut_face"), ("hopper_flip", "astronaut_flip"), ("hopper_bright", "astronaut_dark")]


def _distance(embedded, a, b) -> float:
    return float(np.linalg.norm(embedded[a][1][0].astype(np.float64) - embedded[b][1][0].astype(np.float64)))


@pytest.mark.parametrize("a,b", SAME)
def test_same_person_variants_match(embedded, a, b):
    assert _distance(embedded, a, b) <= DEFAULT_THRESHOLD


@pytest.mark.parametrize("a,b", DIFFERENT)
def test_different_people_do_not_match(embedded, a, b):
    assert _distance(embedded, a, b) > DEFAULT_THRESHOLD


def test_verify_reports_distance_threshold_and_decision(analyzer, face_photos):
    same = analyzer.verify(face_photos["hopper"], face_photos["hopper_flip"])
    d = same.to_dict()
    assert d["same"] is True and d["threshold"] == 0.6 and d["metric"] == "euclidean"
    assert 0 < d["distance"] <= 0.6 and d["faces_found"] == [1, 1] and len(d["faces"]) == 2
    other = analyzer.verify(face_photos["hopper"], face_photos["astronaut_face"])
    assert other.same is False and other.distance > 0.6
    strict = analyzer.verify(face_photos["hopper"], face_photos["hopper_flip"], threshold=same.distance / 2)
    assert strict.same is False and strict.threshold == pytest.approx(same.distance / 2)


def test_verify_uses_the_largest_face(analyzer, face_photos):
    v = analyzer.verify(face_photos["astronaut"], face_photos["astronaut_flip"])
    assert v.same and v.faces_found[0] >= 1


def test_verify_without_a_face_says_so(analyzer, face_photos):
    with pytest.raises(NoFaceError, match="coffee"):
        analyzer.verify(face_photos["hopper"], face_photos["coffee"])


@pytest.mark.parametrize("bad", [0, -0.1, 5])
def test_threshold_is_validated(analyzer, face_photos, bad):
    with pytest.raises(ConfigError, match="threshold"):
        analyzer.verify(face_photos["hopper"], face_photos["hopper"], threshold=bad)
