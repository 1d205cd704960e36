"""The commands in process: recog search (build, query, add, delete, list), dedup, cluster, audit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from recog.cli.main import main


def run(argv, capsys) -> tuple[int, dict | None, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    try:
        doc = json.loads(out.out) if out.out.strip() else None
    except json.JSONDecodeError:
        doc = None
    return code, doc, out.err


@pytest.fixture
def catalogue(photos, tmp_path):
    root = tmp_path / "catalogue"
    root.mkdir()
    for name in ("astronaut", "coffee", "rocket"):
        shutil.copy(photos[name], root / f"{name}.jpg")
    (root / "items.csv").write_text("path,id,category,price\nastronaut.jpg,SKU1,space,10\n"
                                    "coffee.jpg,SKU2,home,3.5\nrocket.jpg,SKU3,space,99\n")
    return root


def test_search_commands_round_trip(catalogue, tiny_bundle, photos, tmp_path, capsys):
    db = ["--db", str(tmp_path / "s.db")]
    code, doc, _ = run(["search", "index", "build", str(catalogue), "--name", "shop", "--model", str(tiny_bundle),
                        "--meta", str(catalogue / "items.csv"), *db], capsys)
    assert code == 0 and doc["added"] == 3 and doc["items"] == 3
    # a rerun skips what is in
    code, doc, _ = run(["search", "index", "build", str(catalogue), "--name", "shop", *db], capsys)
    assert code == 0 and doc["added"] == 0 and doc["skipped_existing"] == 3

    code, doc, _ = run(["search", "query", str(catalogue / "rocket.jpg"), "--name", "shop", "-k", "2", *db], capsys)
    hit = doc["results"][0]["hits"][0]
    assert code == 0 and hit["id"] == "SKU3" and hit["metadata"] == {"category": "space", "price": 99}
    code, doc, _ = run(["search", "query", str(catalogue / "rocket.jpg"), "--name", "shop", "--where",
                        "category = 'space' AND price < 50", *db], capsys)
    assert [h["id"] for h in doc["results"][0]["hits"]] == ["SKU1"]

    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(photos["chelsea"], new / "cat.jpg")
    code, doc, _ = run(["search", "add", str(new), "--name", "shop", *db], capsys)
    assert code == 0 and doc["added"] == 1 and doc["items"] == 4
    code, doc, _ = run(["search", "delete", "--name", "shop", "--id", "SKU3", *db], capsys)
    assert code == 0 and doc["vectors"] == {"SKU3": 1}
    code, doc, _ = run(["search", "index", "list", *db], capsys)
    assert doc["indexes"][0]["items"] == 3

    # errors: one line, non-zero exit
    code, _, err = run(["search", "query", str(catalogue / "rocket.jpg"), "--name", "shop", "--where",
                        "price <", *db], capsys)
    assert code == 2 and "position" in err
    code, _, err = run(["search", "query", str(catalogue / "rocket.jpg"), "--name", "nope", *db], capsys)
    assert code == 3 and "shop" in err
    code, _, err = run(["search", "query", str(catalogue / "rocket.jpg"), "--name", "shop", "--model",
                        "efficientnet-lite0", *db], capsys)
    assert code == 2 and "efficientnet-lite0" in err and str(tiny_bundle.name) in err


def test_dedup_cluster_audit_commands(near_duplicates, tiny_bundle, photos, digits_tree, tmp_path, capsys):
    code, doc, _ = run(["dedup", str(near_duplicates), "--out", str(tmp_path / "d"), "--method", "phash"], capsys)
    assert code == 0 and doc["groups"] == 3 and doc["thresholds"][0]["chosen"] == "calibrated"
    assert (tmp_path / "d" / "contact_sheet.png").is_file()
    code, doc, _ = run(["dedup", str(near_duplicates), "--out", str(tmp_path / "d2"), "--method", "exact"], capsys)
    assert code == 0 and doc["redundant_files"] == 6  # 1 + 1 + 4 byte-identical copies

    code, doc, _ = run(["cluster", str(photos["coffee"].parent), "--out", str(tmp_path / "c"), "-k", "2",
                        "--model", str(tiny_bundle)], capsys)
    assert code == 0 and doc["k"] == 2 and (tmp_path / "c" / "clusters.csv").is_file()

    code, doc, _ = run(["audit", str(digits_tree), "--out", str(tmp_path / "a"), "--model", str(tiny_bundle),
                        "--threshold", "0.999", "--folds", "3"], capsys)
    assert code == 0 and doc["images"] == 120 and (tmp_path / "a" / "report.html").is_file()


def test_importing_search_loads_no_heavy_modules():
    code = ("import sys, recog.search, recog.cli.search, recog.cli.audit; "
            "print([m for m in ('torch', 'faiss', 'sklearn', 'cv2', 'imagehash') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
