"""``recog retrain`` (old + new data, lineage, --new-labels) and ``recog compare`` (McNemar, refusal, promotion)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from recog.errors import ConfigError


def _cli():
    import typer

    from recog.cli import monitor

    app = typer.Typer()
    monitor.register(app)
    return app


@pytest.fixture(scope="module")
def retrained(digits_model, digits_tree, tmp_path_factory):
    """The digits model fine-tuned 1 epoch on its data plus the test digits of class 7 as 'new' data."""
    root = tmp_path_factory.mktemp("retrain")
    add = root / "add"
    shutil.copytree(digits_tree / "test" / "7", add / "7")
    out = root / "run2"
    r = CliRunner().invoke(_cli(), ["retrain", str(digits_model), "--add", str(add), "--out", str(out), "--epochs", "1"])
    assert r.exit_code == 0, r.output
    return out / "best", add


def test_retrain_records_lineage_and_trains_on_both(retrained, digits_model):
    best, add = retrained
    manifest = json.loads((best / "recog.json").read_text())
    parent = json.loads((digits_model / "recog.json").read_text())
    lineage = manifest["lineage"]
    assert lineage["parent"]["weights_sha256"] == parent["files"]["model.safetensors"]
    assert lineage["data"]["original"]["fingerprint"] == parent["dataset"]["fingerprint"]
    assert lineage["data"]["added"]["images"] == 10 and lineage["data"]["added"]["labels"] == ["7"]
    counts = manifest["dataset"]["counts"]
    assert counts["train"]["7"] == parent["dataset"]["counts"]["train"]["7"] + 10
    assert counts["val"] == parent["dataset"]["counts"]["val"]        # the same validation images
    assert "reference" in manifest


def test_retrain_refuses_unknown_labels_without_the_flag(digits_model, digits_tree, tmp_path):
    add = tmp_path / "add"
    shutil.copytree(digits_tree / "test" / "7", add / "9")
    r = CliRunner().invoke(_cli(), ["retrain", str(digits_model), "--add", str(add), "--out", str(tmp_path / "r")])
    assert isinstance(r.exception, ConfigError) and "['9']" in str(r.exception)
    assert "--new-labels" in r.exception.hint and not (tmp_path / "r").exists()


def test_compare_and_promotion(retrained, digits_model, digits_tree, tmp_path):
    best, _ = retrained
    champion = tmp_path / "served"
    shutil.copytree(digits_model, champion)
    r = CliRunner().invoke(_cli(), ["compare", str(champion), str(best), str(digits_tree / "test"),
                                    "--margin", "100", "--promote-if-better", "--out", str(tmp_path / "cmp")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    m = res["mcnemar"]
    assert res["images"] == 30 and 0 <= m["p_value"] <= 1
    wrong_a = round(30 * (1 - res["champion"]["accuracy"]))
    wrong_b = round(30 * (1 - res["challenger"]["accuracy"]))
    assert wrong_a - wrong_b == m["only_challenger"] - m["only_champion"]
    assert res["promotion"]["promote"] is True
    assert json.loads((champion / "recog.json").read_text())["lineage"]    # the challenger is served now
    assert list(tmp_path.glob("served.previous-*"))


def test_compare_refuses_different_label_sets(digits_model, tiny_bundle, digits_tree):
    r = CliRunner().invoke(_cli(), ["compare", str(digits_model), str(tiny_bundle), str(digits_tree / "test")])
    assert isinstance(r.exception, ConfigError)
    assert "['0', '1', '7']" in str(r.exception) and "['bird', 'cat', 'dog']" in str(r.exception)


def test_promotion_rule_keeps_a_worse_challenger():
    from recog.monitor.compare import promotion

    worse = {"difference": -0.2, "mcnemar": {"only_champion": 25, "only_challenger": 5, "p_value": 0.0003},
             "groups": {"night": {"difference": -0.3}}}
    ok, reasons = promotion(worse, margin=1.0)
    assert not ok and len(reasons) == 3
