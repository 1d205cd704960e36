"""Box formats: reading with validation, auto-detection, conversion round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recog.detect.formats import detect_format, load_boxes
from recog.detect.writers import write_boxes
from recog.errors import DatasetError


def _image(path: Path, size=(100, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)
    return path


def _kinds(ds) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in ds.issues:
        out[i.kind] = out.get(i.kind, 0) + 1
    return out


def test_bccd_voc_with_split_files_and_the_two_zero_area_boxes(bccd):
    ds = load_boxes(bccd)
    assert ds.format == "voc" and ds.labels == ("Platelets", "RBC", "WBC")
    assert ds.image_counts() == {"train": 205, "val": 87, "test": 72}
    total = sum(sum(c.values()) for c in ds.counts().values())
    assert total == 4888 - 2
    zero = [i for i in ds.issues if i.kind == "zero_area"]
    assert sorted(Path(i.path).name for i in zero) == ["BloodImage_00338.xml", "BloodImage_00343.xml"]
    assert all(i.line and i.line > 1 for i in zero)  # the line of the <object>


def _voc(root: Path, stem: str, objects: str, size=(100, 80)) -> None:
    _image(root / "JPEGImages" / f"{stem}.jpg", size)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "Annotations" / f"{stem}.xml").write_text(
        f"<annotation>\n<filename>{stem}.jpg</filename>\n<size><width>{size[0]}</width><height>{size[1]}</height>"
        f"</size>\n{objects}</annotation>\n")


def _obj(name, x1, y1, x2, y2) -> str:
    return (f"<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
            f"<ymax>{y2}</ymax></bndbox></object>\n")


def test_voc_validation_clips_drops_and_explains(tmp_path):
    root = tmp_path / "voc"
    _voc(root, "a", _obj("cell", -5, 10, 40, 50) + _obj("cell", 20, 20, 20, 30) + _obj("cell", 50, 50, 30, 60)
         + _obj("dust", 10, 10, 30, 30))
    _voc(root, "b", _obj("cell", 0.1, 0.2, 0.5, 0.6))           # normalised coordinates in a pixel format
    _image(root / "JPEGImages" / "c.jpg")                        # no annotation file: a negative
    (root / "Annotations" / "d.xml").write_text("<annotation><filename>d.jpg</filename></annotation>")  # no image
    ds = load_boxes(root)
    kinds = _kinds(ds)
    assert kinds == {"clipped": 1, "zero_area": 1, "inverted": 1, "normalized": 1, "no_labels": 1,
                     "missing_image": 1}
    a = next(s for s in ds.samples if s.path.stem == "a")
    assert a.names == ("cell", "dust") and a.boxes[0].tolist() == [0, 10, 40, 50]
    assert {s.path.stem for s in ds.samples} == {"a", "c"}      # b skipped, c kept as a negative
    normalized = next(i for i in ds.issues if i.kind == "normalized")
    assert "normalised" in normalized.message and "multiply" in normalized.message
    inverted = next(i for i in ds.issues if i.kind == "inverted")
    assert inverted.line == 6 and str(inverted).endswith("dropped")


def test_corrupt_files_name_file_and_line(tmp_path):
    root = tmp_path / "voc"
    _voc(root, "a", _obj("cell", 1, 1, 20, 20))
    (root / "Annotations" / "a.xml").write_text("<annotation>\n<filename>a.jpg</filename>\n<object>\n</annotation>")
    with pytest.raises(DatasetError, match=r"a\.xml:4: not valid XML"):
        load_boxes(root)
    coco = tmp_path / "c.json"
    coco.write_text('{"images": [\n{"id": 1,\n "file_name": "x.jpg",}\n]}')
    with pytest.raises(DatasetError, match=r"c\.json:3: not valid JSON"):
        load_boxes(coco)


def test_coco_unknown_category_missing_image_negative(tmp_path):
    _image(tmp_path / "images" / "a.jpg")
    _image(tmp_path / "images" / "n.jpg")
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
                      {"id": 2, "file_name": "gone.jpg", "width": 100, "height": 80},
                      {"id": 3, "file_name": "n.jpg", "width": 100, "height": 80}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30]},
                           {"id": 2, "image_id": 1, "category_id": 9, "bbox": [10, 10, 20, 30]},
                           {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]},
                           {"id": 4, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5]}],
           "categories": [{"id": 1, "name": "cell"}]}
    (tmp_path / "train.json").write_text(json.dumps(doc))
    ds = load_boxes(tmp_path / "train.json")
    assert ds.format == "coco" and ds.labels == ("cell",)
    assert _kinds(ds) == {"unknown_class": 1, "missing_image": 2, "no_labels": 1}
    a = next(s for s in ds.samples if s.path.name == "a.jpg")
    assert a.boxes.tolist() == [[10, 10, 30, 40]]


def test_yolo_data_yaml_lines_and_pixel_coordinates(tmp_path):
    _image(tmp_path / "images" / "train" / "a.jpg")
    _image(tmp_path / "images" / "train" / "b.jpg")
    _image(tmp_path / "images" / "val" / "c.jpg")
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.25\n3 0.5 0.5 0.1 0.1\nbad line\n")
    (tmp_path / "labels" / "train" / "b.txt").write_text("0 50 40 20 20\n")          # pixels, not 0-1
    (tmp_path / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [cell, dust]\n")
    ds = load_boxes(tmp_path)
    assert ds.format == "yolo" and ds.labels == ("cell", "dust")
    kinds = _kinds(ds)
    assert kinds == {"unknown_class": 1, "bad_line": 1, "normalized": 1, "no_labels": 1, "missing_image": 1}
    lines = {i.kind: i.line for i in ds.issues}
    assert lines["unknown_class"] == 2 and lines["bad_line"] == 3 and lines["normalized"] == 1
    a = next(s for s in ds.samples if s.path.stem == "a")
    np.testing.assert_allclose(a.boxes, [[40, 30, 60, 50]], atol=1e-4)
    assert {s.path.stem: s.split for s in ds.samples} == {"a": "train", "c": "val"}


def test_csv_rows_negatives_and_bad_rows(tmp_path):
    _image(tmp_path / "a.jpg")
    _image(tmp_path / "n.jpg")
    (tmp_path / "boxes.csv").write_text("path,x1,y1,x2,y2,label,split\na.jpg,1,2,30,40,cell,train\n"
                                        "a.jpg,1,2,x,40,cell,train\nn.jpg,,,,,,val\nmissing.jpg,1,1,5,5,cell,\n"
                                        "a.jpg,5,5,95,200,cell,train\n")
    ds = load_boxes(tmp_path / "boxes.csv")
    assert ds.format == "csv" and ds.labels == ("cell",)
    assert {i.kind: i.line for i in ds.issues if i.line} == {"bad_line": 3, "missing_image": 5, "clipped": 6}
    a = next(s for s in ds.samples if s.path.name == "a.jpg")
    assert a.boxes.tolist() == [[1, 2, 30, 40], [5, 5, 95, 80]]
    assert next(s for s in ds.samples if s.path.name == "n.jpg").split == "val"


def test_auto_detection_refuses_an_ambiguous_folder(tmp_path):
    _voc(tmp_path, "a", _obj("cell", 1, 1, 20, 20))
    assert detect_format(tmp_path) == "voc"
    (tmp_path / "boxes.csv").write_text("path,x1,y1,x2,y2,label\nJPEGImages/a.jpg,1,1,20,20,cell\n")
    with pytest.raises(DatasetError, match="more than one annotation format.*VOC.*CSV"):
        detect_format(tmp_path)
    assert load_boxes(tmp_path / "boxes.csv").format == "csv"   # the file itself picks one
    with pytest.raises(DatasetError, match="no box annotations"):
        detect_format(_image(tmp_path / "empty" / "x.jpg").parent)


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo", "csv"])
def test_convert_round_trip(shapes_voc, tmp_path, fmt):
    ds = load_boxes(shapes_voc)
    out = write_boxes(ds, tmp_path / fmt, fmt)
    back = load_boxes(out)
    assert back.format == fmt and set(back.labels) == set(ds.labels)
    assert back.image_counts() == ds.image_counts()
    before = {s.path.name: (s.split, sorted(zip(s.names, s.boxes.round(1).tolist()))) for s in ds.samples}
    after = {s.path.name: (s.split, sorted(zip(s.names, s.boxes.round(1).tolist()))) for s in back.samples}
    for name, (split, boxes) in before.items():
        assert after[name][0] == split
        np.testing.assert_allclose([b for _, b in after[name][1]], [b for _, b in boxes], atol=0.05)
        assert [n for n, _ in after[name][1]] == [n for n, _ in boxes]


def test_image_frame_applies_exif_rotation(tmp_path):
    from recog.detect.formats import image_frame
    from recog.io import load_image

    img = Image.fromarray(np.zeros((40, 100, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert image_frame(tmp_path / "r.jpg") == (40, 100) == load_image(tmp_path / "r.jpg").size
    assert image_frame((tmp_path / "r.jpg").read_bytes()) == (40, 100)
    assert image_frame(b"not an image") is None
