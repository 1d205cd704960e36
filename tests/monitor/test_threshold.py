"""The ``unknown`` threshold chosen on held-out digits plus a stated OOD set of photos (`recog ood threshold`)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import recog
from recog.monitor.threshold import choose_threshold


def test_rule_keeps_false_alarms_under_the_cap_and_catches_what_it_can():
    rng = np.random.default_rng(0)
    s_in = rng.uniform(size=1000)                       # a calibrated score: uniform on held-out data
    far = choose_threshold(s_in, np.full(300, 1.0))     # every OOD image above every in-distribution one
    assert far["tpr"] == 1.0 and far["fpr"] == 0.0 and far["auroc"] == 1.0
    assert s_in.max() < far["threshold"] < 1.0          # half-way between the two, not on a score
    mixed = choose_threshold(s_in, rng.uniform(0.5, 1.0, size=300), max_false_alarm=0.1)
    # the cap binds (unconstrained, J peaks at 0.5: TPR 1, FPR 0.5); at 0.9 TPR = 0.1 / 0.5
    assert mixed["fpr"] <= 0.1 and mixed["threshold"] == pytest.approx(0.9, abs=0.01)
    assert mixed["tpr"] == pytest.approx(0.2, abs=0.05)
    assert mixed["auroc"] == pytest.approx(0.75, abs=0.04)


def _cli():
    from recog.cli import monitor

    app = typer.Typer()
    monitor.register(app)
    return app


def test_ood_set_sets_the_threshold_and_every_verdict_says_so(writable_digits, digits_tree, photos):
    bundle, ood = writable_digits
    runner = CliRunner()
    r = runner.invoke(_cli(), ["ood", "threshold", str(bundle), "--data", str(digits_tree / "test")])
    assert r.exit_code == 0, r.output
    assert "no OOD set" in r.output and "in-distribution quantile" in r.output

    r = runner.invoke(_cli(), ["ood", "threshold", str(bundle), "--ood", str(ood), "--data", str(digits_tree / "test")])
    assert r.exit_code == 0, r.output
    det = json.loads((bundle / "recog.json").read_text())["reference"]["features"]   # the score it chose on
    rule = det["threshold_rule"]
    assert f"AUROC {rule['auroc']:.4f}; TPR 100.0% of 6 OOD image(s)" in r.output
    assert rule["ood_images"] == 6 and rule["in_distribution"].endswith("(30 images)")
    assert rule["auroc"] > 0.95 and rule["tpr"] == 1.0 and rule["fpr"] <= 0.05
    model = recog.load(bundle)                         # the hashes still verify
    digits = model.predict(sorted(str(p) for p in (digits_tree / "test").rglob("*.png")))
    others = model.predict([str(p) for p in photos.values()])
    assert all(r.ood.unknown for r in others)
    assert np.mean([r.ood.unknown for r in digits]) == pytest.approx(rule["fpr"], abs=1e-6)
    assert others[0].ood.threshold == det["threshold"] != 0.95
    assert others[0].ood.method.endswith("threshold: held-out + OOD set photos")


def test_a_bundle_without_reference_is_refused_in_one_line(tiny_bundle, photos):
    r = CliRunner().invoke(_cli(), ["ood", "threshold", str(tiny_bundle), "--ood", str(photos["coffee"].parent)])
    assert r.exit_code != 0 and "has no OOD reference" in str(r.exception)


def test_the_log_records_a_new_threshold_under_the_same_version(digits_model, photos, tmp_path):
    """`recog ood threshold` + :reload keeps the bundle version; the log must keep the newer reference."""
    import sqlite3

    from recog.models.bundle import update_bundle
    from recog.monitor.log import PredictionLog

    bundle = tmp_path / "digits"
    shutil.copytree(digits_model, bundle)
    ref = json.loads((bundle / "recog.json").read_text())["reference"]
    update_bundle(bundle, updates={"reference": {**ref, "detector": {**ref["detector"], "threshold": 0.99}}})
    old, new = recog.load(digits_model), recog.load(bundle)
    assert old.manifest.version == new.manifest.version
    data = photos["coffee"].read_bytes()
    log = PredictionLog(tmp_path / "ops.db")
    for model in (old, new):
        raw, _, _ = model.outputs_many([data])
        log.record("digits", model.manifest.version, [(data, "coffee.jpg")], model.postprocess(raw), raw, 1.0,
                   model.manifest)
        assert log.flush()
    log.close()
    with sqlite3.connect(tmp_path / "ops.db") as conn:
        rows = conn.execute("SELECT reference FROM models WHERE name = 'digits'").fetchall()
    assert len(rows) == 1 and json.loads(rows[0][0])["detector"]["threshold"] == 0.99
