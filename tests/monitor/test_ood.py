"""OOD scores on classification results: the bundle's reference, calibration, the fallback without one."""

from __future__ import annotations

import json

import numpy as np
import pytest

import recog
from recog.monitor.reference import fit_reference


def test_training_stores_a_reference(digits_model):
    raw = json.loads((digits_model / "recog.json").read_text())
    ref = raw["reference"]
    assert ref["images"] > 0 and len(ref["sample"]) == ref["images"]
    assert np.array(ref["inputs"]).shape[1] == 5          # width, height, brightness, contrast, blur
    assert np.array(ref["inputs"])[:, :2].max() == 28     # MNIST digits are 28x28
    train_count = sum(raw["dataset"]["counts"]["train"].values())
    assert len(ref["inputs"]) == min(200, train_count) < sum(map(sum, (c.values() for c in raw["dataset"]["counts"].values())))
    assert len(ref["predicted"]) == 3 and sum(ref["predicted"]) == pytest.approx(1, abs=1e-3)
    det = ref["detector"]
    assert det["threshold"] == 0.95 and np.all(np.diff(det["quantiles"]) >= 0)
    assert det["threshold_rule"]["rule"] == "in-distribution quantile" and det["threshold_rule"]["ood_set"] is None


def test_photos_score_stranger_than_digits(digits_model, digits_tree, photos):
    model = recog.load(digits_model)
    digits = model.predict(sorted((digits_tree / "test").rglob("*.png")))
    others = model.predict([str(p) for p in photos.values()])
    d_scores = np.array([r.ood.score for r in digits])
    o_scores = np.array([r.ood.score for r in others])
    assert o_scores.min() > np.median(d_scores)
    assert all(r.ood.unknown for r in others)
    assert np.mean([r.ood.unknown for r in digits]) < 0.5
    out = others[0].to_dict()["ood"]
    assert out["method"].endswith("+ mahalanobis+energy (logits); threshold: in-distribution quantile, no OOD set")
    assert out["unknown"] is True


def test_bundle_without_reference_falls_back_and_says_so(tiny_bundle, photos):
    result = recog.load(tiny_bundle).predict(str(photos["coffee"]))
    assert result.ood.unknown is None and result.ood.threshold is None
    assert result.ood.method.startswith("max-softmax")
    assert result.ood.score == pytest.approx(1 - result.score, abs=1e-6)


def test_calibrated_score_flags_the_stated_share_of_new_in_distribution_data():
    rng = np.random.default_rng(1)
    centers = rng.normal(scale=4, size=(4, 4))

    def draw(n):
        y = rng.integers(0, 4, n)
        return centers[y] + rng.normal(size=(n, 4)), y

    ref = fit_reference(*draw(2000))

    class Manifest:  # the fields the scorer reads
        raw = {"reference": ref}
        reference = ref
        temperature = 1.0

    from recog.monitor.ood import ood_scores

    fresh, _ = draw(4000)
    scores, threshold, _ = ood_scores(fresh, Manifest())
    assert np.mean(scores > threshold) == pytest.approx(0.05, abs=0.015)
    far, _ = ood_scores(rng.normal(scale=4, size=(500, 4)) + 30, Manifest())[:2]
    assert np.mean(far > threshold) > 0.99


def test_cli_table_and_client_carry_the_ood_verdict(digits_model, photos):
    import typer
    from typer.testing import CliRunner

    from recog.cli import predict
    from recog.client import classification_from_dict

    app = typer.Typer()
    predict.register(app)
    app.command("noop")(lambda: None)
    r = CliRunner().invoke(app, ["predict", str(digits_model), str(photos["coffee"]), "-k", "2"])
    assert r.exit_code == 0, r.output
    assert "ood" in r.output and "unknown" in r.output
    result = recog.load(digits_model).predict(str(photos["coffee"]))
    back = classification_from_dict(result.to_dict()).ood
    assert (back.unknown, back.method, back.threshold) == (result.ood.unknown, result.ood.method, result.ood.threshold)
    assert back.score == pytest.approx(result.ood.score, abs=1e-6)


def test_many_classes_are_projected_and_stay_small():
    rng = np.random.default_rng(2)
    centers = rng.normal(scale=3, size=(200, 200))
    y = rng.integers(0, 200, 3000)
    ref = fit_reference(centers[y] + rng.normal(size=(3000, 200)), y)
    det = ref["detector"]
    assert np.array(det["projection"]).shape == (200, 64) and np.array(det["means"]).shape[1] == 64
    assert ref["sample"] is None and len(json.dumps(ref)) < 2_000_000
