"""``recog bench --quick``: the table and the JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from recog.cli.main import app


def test_bench_quick_prints_table_and_writes_json(exported_bundle, digits_tree, tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", str(exported_bundle), "--quick", "--backends", "torch,onnx,onnx-int8",
                                   "--batch", "1,4", "--data", str(digits_tree), "--threads", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for word in ("p50 ms", "p95 ms", "images/s", "top-1 agree", "accuracy", "of ceiling", "onnx-int8"):
        assert word in res.output
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["backend"], r["batch"]) for r in rows] == [
        ("torch", 1), ("torch", 4), ("onnx", 1), ("onnx", 4), ("onnx-int8", 1), ("onnx-int8", 4)]
    for r in rows:
        assert 0 < r["p50_ms"] <= r["p95_ms"] and r["images_per_s"] > 0 and r["ceiling_share"] > 0
        assert r["top1_agreement"] == 1.0 and r["accuracy"] >= 0.9
    assert report["machine"]["matmul_fp32_gflops"] > 0 and report["model"]["gflops_per_image"] > 0
    assert report["machine"]["threads"] == 1


def test_bench_skips_backends_the_bundle_lacks(tiny_bundle, tmp_path):
    out = tmp_path / "b.json"
    res = CliRunner().invoke(app, ["bench", str(tiny_bundle), "--quick", "--backends", "torch,onnx", "--batch", "2",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert [r["backend"] for r in report["rows"]] == ["torch"]
    assert "recog export" in report["skipped"]["onnx"]
    assert report["rows"][0]["accuracy"] is None  # synthetic images: agreement only


def test_bench_rejects_unknown_backend(tiny_bundle):
    res = CliRunner().invoke(app, ["bench", str(tiny_bundle), "--quick", "--backends", "tensorrt"])
    assert res.exit_code != 0
