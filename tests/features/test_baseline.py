"""``recog evaluate BUNDLE DATA --baseline HOG_SVM``: the classical baseline next to a CNN on the same split."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("skimage", reason="scikit-image is not installed")

from recog.cli.main import app  # noqa: E402


def test_report_shows_the_baseline_on_the_same_split(digits_tree, tmp_path):
    from recog.engine.train import fit

    hog = fit(digits_tree, model="hog-svm", image_size=32, out=str(tmp_path / "hog")).best
    cnn = fit(digits_tree, model="resnet-micro", image_size=32, epochs=1, weights="none", out=str(tmp_path / "cnn")).best
    out = tmp_path / "report"
    res = CliRunner().invoke(app, ["evaluate", str(cnn), str(digits_tree), "--split", "test", "--out", str(out),
                                   "--baseline", str(hog)])
    assert res.exit_code == 0, res.output
    cnn_acc = json.loads((out / "metrics.json").read_text())["accuracy"]
    cmp = json.loads((out / "baseline.json").read_text())
    assert cmp["split"] == "test" and cmp["images"] == 30
    assert cmp["challenger"]["accuracy"] == pytest.approx(cnn_acc)            # the same images as the report
    assert cmp["champion"]["source_model"] == "hog-svm" and cmp["champion"]["accuracy"] >= 0.8
    m = cmp["mcnemar"]
    assert m["only_champion"] - m["only_challenger"] == round(30 * (cmp["champion"]["accuracy"] - cnn_acc))
    assert "baseline hog-svm: accuracy" in res.output
    page = (out / "report.html").read_text()
    assert "<h2>Baseline</h2>" in page and 'alt="baseline.png"' in page and page.rstrip().endswith("</body></html>")


def test_baseline_with_other_labels_is_one_line_error(digits_tree, tiny_bundle, tmp_path):
    from recog.engine.train import fit

    hog = fit(digits_tree, model="hog-svm", image_size=32, out=str(tmp_path / "hog")).best
    res = CliRunner().invoke(app, ["evaluate", str(hog), str(digits_tree), "--out", str(tmp_path / "r"),
                                   "--baseline", str(tiny_bundle)])
    assert res.exit_code != 0
    assert "different label sets" in str(res.exception) + res.output
    assert not (tmp_path / "r").exists()                                          # refused before evaluating
