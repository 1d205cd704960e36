"""``recog data info`` on box folders and ``recog data convert``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from recog.cli.main import app
from recog.detect.formats import load_boxes


def test_data_info_on_a_box_folder(shapes_voc):
    res = CliRunner().invoke(app, ["data", "info", str(shapes_voc), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    ds = load_boxes(shapes_voc)
    assert info["format"] == "voc" and info["labels"] == ["disc", "square"]
    assert info["images"] == ds.image_counts() and sum(info["box_size_px"]["counts"]) == sum(
        len(s.boxes) for s in ds.samples)
    assert info["bad_files"] == [] and info["issues"] == []


def test_data_info_lists_issues_and_bad_images(shapes_voc, tmp_path):
    import shutil

    root = tmp_path / "voc"
    shutil.copytree(shapes_voc, root)
    (root / "JPEGImages" / "img000.png").write_bytes(b"not an image")
    xml = root / "Annotations" / "img001.xml"
    xml.write_text(xml.read_text().replace("<xmax>", "<xmax>-").replace("<xmin>", "<xmin>"))
    res = CliRunner().invoke(app, ["data", "info", str(root)])
    assert res.exit_code == 1 and "issues: inverted" in res.output
    res = CliRunner().invoke(app, ["data", "info", str(root), "--json"])
    info = json.loads(res.stdout[:res.stdout.rindex("}") + 1])
    assert [b["path"].endswith("img000.png") for b in info["bad_files"]] == [True]
    assert {i["kind"] for i in info["issues"]} == {"inverted"} and all(
        i["path"].endswith("img001.xml") and i["line"] for i in info["issues"])


def test_data_convert_voc_to_yolo_and_back(shapes_voc, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "convert", str(shapes_voc), "--to", "yolo", "--out", str(tmp_path / "y")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "y" / "data.yaml").is_file() and "as YOLO" in res.stdout
    res = runner.invoke(app, ["data", "convert", str(tmp_path / "y"), "--to", "csv", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    back = load_boxes(tmp_path / "c" / "boxes.csv")
    assert back.image_counts() == load_boxes(shapes_voc).image_counts()
    res = runner.invoke(app, ["data", "convert", str(shapes_voc), "--to", "yolo", "--out", str(tmp_path / "y")])
    assert res.exit_code != 0 and "not empty" in str(res.exception)


def test_data_preview_draws_boxes_on_augmented_views(shapes_voc, tmp_path):
    from PIL import Image

    res = CliRunner().invoke(app, ["data", "preview", str(shapes_voc), "-o", str(tmp_path / "p.png"), "-n", "2",
                                   "--image-size", "64"])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "p.png").size == (4 * 64, 2 * 64) and "boxes drawn" in res.stdout
