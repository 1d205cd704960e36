"""The embedding-distance OOD score: the feature reference training stores, and the same score on every
path a prediction takes (Python API, CLI, HTTP service, torch and ONNX backends); older bundles and
ONNX files keep the logit score and say so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import recog
from recog.monitor.features import FEATURES_FILE, MAX_FEATURES

KNN = "knn cosine (features, k=1, "


def _digits(digits_tree: Path) -> list[str]:
    return sorted(str(p) for p in (digits_tree / "test").rglob("*.png"))


def _scores(results) -> np.ndarray:
    return np.array([r.ood.score for r in results])


@pytest.fixture(scope="module")
def exported(digits_model, photos, tmp_path_factory) -> Path:
    """A copy of the digits bundle with verified fp32 and int8 ONNX exports (made after this change)."""
    from recog.runtime.export import export_bundle

    bundle = tmp_path_factory.mktemp("ood-onnx") / "digits"
    shutil.copytree(digits_model, bundle)
    calib = bundle.parent / "calib" / "0"
    calib.mkdir(parents=True)
    for p in photos.values():
        shutil.copy(p, calib / p.name)
    export_bundle(bundle, quantize="int8", calibration=calib.parent, rank=False)
    return bundle


def test_training_stores_a_bounded_hashed_feature_reference(digits_model):
    from safetensors.numpy import load_file

    from recog.models.bundle import read_manifest

    manifest = read_manifest(digits_model)
    feats = manifest.reference["features"]
    assert feats["file"] == FEATURES_FILE and len(manifest.files[FEATURES_FILE]) == 64  # listed with its sha256
    bank = load_file(str(digits_model / FEATURES_FILE))["features"]
    train = sum(manifest.dataset["counts"]["train"].values())
    assert bank.dtype == np.float16 and bank.shape == (feats["rows"], feats["dim"]) and feats["rows"] == min(train, MAX_FEATURES)
    assert np.allclose(np.linalg.norm(bank.astype(np.float32), axis=1), 1.0, atol=2e-3)   # L2-normalised
    assert feats["threshold"] == 0.95 and np.all(np.diff(feats["quantiles"]) >= 0)
    assert feats["rule"] == "knn+logits" and feats["fitted_on"].startswith("val (")


def test_a_tampered_feature_bank_is_refused(digits_model, tmp_path):
    from recog.errors import BundleIntegrityError

    bundle = tmp_path / "digits"
    shutil.copytree(digits_model, bundle)
    data = bytearray((bundle / FEATURES_FILE).read_bytes())
    data[-1] ^= 0xFF
    (bundle / FEATURES_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError):
        recog.load(bundle)


def test_digits_score_low_and_photos_high_with_the_embedding_distance(digits_model, digits_tree, photos):
    model = recog.load(digits_model, backend="torch")
    digits = model.predict(_digits(digits_tree))
    others = model.predict([str(p) for p in photos.values()])
    assert _scores(others).min() > np.median(_scores(digits))
    assert all(r.ood.unknown for r in others) and np.mean([r.ood.unknown for r in digits]) < 0.5
    assert others[0].ood.method.startswith(KNN) and "+ mahalanobis+energy (logits); threshold: in-distribution" in others[0].ood.method
    # predict_many (the CLI's path) and predict give the same score from the one forward pass
    many = model.predict_many([str(p) for p in photos.values()])
    assert np.allclose(_scores(many), _scores(others), atol=1e-6)


def test_cli_prints_the_embedding_distance_verdict(digits_model, photos):
    import typer
    from typer.testing import CliRunner

    from recog.cli import predict

    app = typer.Typer()
    predict.register(app)
    app.command("noop")(lambda: None)
    r = CliRunner().invoke(app, ["predict", str(digits_model), str(photos["coffee"]), "--format", "jsonl",
                                 "--backend", "torch"])
    assert r.exit_code == 0, r.output
    ood = json.loads(r.output.strip().splitlines()[-1])["ood"]
    direct = recog.load(digits_model, backend="torch").predict(str(photos["coffee"])).ood
    assert ood["method"].startswith(KNN) and ood["unknown"] is True
    assert ood["score"] == pytest.approx(direct.score, abs=1e-6)


@pytest.mark.slow
def test_torch_and_onnx_backends_agree_on_the_score(exported, digits_tree, photos):
    import onnxruntime as ort

    assert [o.name for o in ort.InferenceSession(str(exported / "model.onnx")).get_outputs()] == ["logits", "features"]
    images = _digits(digits_tree) + [str(p) for p in photos.values()]
    torch_r = recog.load(exported, backend="torch").predict(images)
    onnx_r = recog.load(exported, backend="onnx").predict(images)
    int8_r = recog.load(exported, backend="onnx-int8").predict(images)
    assert {r.ood.method for r in onnx_r} == {torch_r[0].ood.method} and torch_r[0].ood.method.startswith(KNN)
    assert np.abs(_scores(onnx_r) - _scores(torch_r)).max() < 1e-3
    assert [r.ood.unknown for r in onnx_r] == [r.ood.unknown for r in torch_r]
    assert int8_r[0].ood.method.startswith(KNN)
    exports = json.loads((exported / "recog.json").read_text())["exports"]
    assert exports["onnx"]["parity"]["features_min_cosine"] > 0.9999          # recorded by the export check
    assert 0.5 < exports["onnx-int8"]["parity"]["features_min_cosine"] <= 1.0
    assert all(r.ood.unknown for r in int8_r[-len(photos):])       # int8 features still tell photos apart


@pytest.mark.slow
def test_an_onnx_file_without_features_falls_back_to_the_logit_score_and_says_so(exported, photos, tmp_path):
    import onnx

    from recog.models.bundle import update_bundle

    bundle = tmp_path / "digits"
    shutil.copytree(exported, bundle)
    graph = onnx.load(str(bundle / "model.onnx"))
    del graph.graph.output[1]                     # as exported before features were: one output
    onnx.save(graph, str(bundle / "model.onnx"))
    update_bundle(bundle, add_files=["model.onnx"])
    old = recog.load(bundle, backend="onnx").predict(str(photos["coffee"])).ood
    torch_logits = recog.load(bundle, backend="torch")
    raw, _, _ = torch_logits.outputs_many([str(photos["coffee"])])       # logits only
    from recog.monitor.ood import ood_scores

    assert old.method.startswith("mahalanobis+energy (logits) (this backend returns no features")
    assert old.score == pytest.approx(float(ood_scores(raw, torch_logits.manifest)[0][0]), abs=1e-4)


def test_a_bundle_without_the_feature_reference_keeps_the_logit_score(digits_model, photos, tmp_path):
    from recog.models.bundle import update_bundle

    bundle = tmp_path / "digits"
    shutil.copytree(digits_model, bundle)
    ref = json.loads((bundle / "recog.json").read_text())["reference"]
    ref.pop("features")
    update_bundle(bundle, remove_files=[FEATURES_FILE], updates={"reference": ref})
    (bundle / FEATURES_FILE).unlink()
    result = recog.load(bundle).predict(str(photos["coffee"]))
    assert result.ood.method == "mahalanobis+energy (logits); threshold: in-distribution quantile, no OOD set"
    assert result.ood.unknown is True


@pytest.mark.slow
def test_the_service_returns_the_same_embedding_distance_score(digits_model, digits_tree, photos):
    import httpx

    from tests.serve.conftest import server_process

    model = recog.load(digits_model, backend="torch")
    files = [photos["coffee"], Path(_digits(digits_tree)[0])]
    direct = model.predict([str(p) for p in files])
    with server_process([str(digits_model), "--name", "digits", "--backend", "torch"]) as server:
        r = httpx.post(f"{server.url}/v1/models/digits:predict",
                       files=[("images", (p.name, p.read_bytes())) for p in files], timeout=60)
    assert r.status_code == 200, r.text
    got = [p["ood"] for p in r.json()["predictions"]]
    assert [g["method"] for g in got] == [d.ood.method for d in direct] and got[0]["method"].startswith(KNN)
    assert [g["score"] for g in got] == pytest.approx([d.ood.score for d in direct], abs=1e-5)
    assert got[0]["unknown"] is True


def test_ood_threshold_chooses_on_the_embedding_distance_score(writable_digits, digits_tree, photos):
    from recog.monitor.threshold import calibrate_bundle

    bundle, ood = writable_digits
    res = calibrate_bundle(bundle, [ood], data=digits_tree / "test")
    assert res["score"].startswith(KNN) and res["tpr"] == 1.0 and res["fpr"] <= 0.05
    ref = json.loads((bundle / "recog.json").read_text())["reference"]
    assert ref["features"]["threshold"] == res["threshold"] and ref["detector"]["threshold"] == 0.95
    out = recog.load(bundle, backend="torch").predict(str(photos["coffee"])).ood
    assert out.threshold == res["threshold"] and out.method.endswith("threshold: held-out + OOD set photos")


def test_a_pruned_copy_carries_the_feature_reference(digits_model, photos, tmp_path):
    from recog.models.bundle import read_manifest
    from recog.runtime.prune import prune_bundle

    prune_bundle(digits_model, tmp_path / "pruned", amount=0.3)
    manifest = read_manifest(tmp_path / "pruned")                     # hashes verify, the bank included
    assert FEATURES_FILE in manifest.files
    result = recog.load(tmp_path / "pruned", backend="torch").predict(str(photos["coffee"]))
    assert result.ood.method.startswith(KNN) and result.ood.unknown is True
