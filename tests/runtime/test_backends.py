"""One Predictor interface over torch, onnx and onnx-int8: same answers, explicit threads."""

from __future__ import annotations

import numpy as np
import pytest

import recog.runtime.predictor as predictor
from recog.errors import BundleError, ConfigError
from recog.data.evalset import load_labelled

BACKENDS = ("torch", "onnx", "onnx-int8")


def _digit_files(digits_tree):
    return sorted(str(p) for p in (digits_tree / "test").rglob("*.png"))


def test_backends_give_the_same_top1_on_the_same_images(exported_bundle, digits_tree):
    files = _digit_files(digits_tree)
    answers = {}
    for name in BACKENDS:
        model = predictor.load(exported_bundle, backend=name, threads=1)
        assert model.backend.name == name
        answers[name] = [r.label for r in model.predict(files, top_k=1)]
    assert answers["onnx"] == answers["torch"]
    assert answers["onnx-int8"] == answers["torch"]
    truth = [p.split("/")[-2] for p in files]
    assert np.mean([a == t for a, t in zip(answers["torch"], truth)]) >= 0.9


def test_backends_agree_on_photos(exported_bundle, photos):
    files = [str(p) for p in photos.values()]
    torch_top = [r.label for r in predictor.load(exported_bundle, backend="torch").predict(files)]
    onnx_top = [r.label for r in predictor.load(exported_bundle, backend="onnx").predict(files)]
    assert onnx_top == torch_top


def test_logits_match_across_backends(exported_bundle, digits_tree):
    manifest = predictor.read_manifest(exported_bundle)
    x = load_labelled(digits_tree, manifest.labels, manifest.preprocessing, split="test").x
    ref = predictor.load(exported_bundle, backend="torch").infer(x)
    np.testing.assert_allclose(predictor.load(exported_bundle, backend="onnx").infer(x), ref, atol=1e-4)
    int8 = predictor.load(exported_bundle, backend="onnx-int8").infer(x)
    assert np.abs(int8 - ref).max() < 0.25 * np.abs(ref).max()


def test_auto_picks_the_fastest_verified_artifact(exported_bundle):
    manifest = predictor.read_manifest(exported_bundle)
    ranks = {k: v["speed_rank"] for k, v in manifest.raw["exports"].items()}
    model = predictor.load(exported_bundle)
    assert model.backend.name == min(ranks, key=ranks.get)


def test_auto_skips_unverified_and_missing_exports(tiny_bundle):
    from dataclasses import replace

    manifest = predictor.read_manifest(tiny_bundle)
    raw = {**manifest.raw, "exports": {
        "onnx": {"file": "model.onnx", "verified": True, "speed_rank": 1},  # file not in the bundle
        "onnx-int8": {"file": None, "verified": False, "speed_rank": 0},
    }}
    assert predictor.auto_backend(replace(manifest, raw=raw)) == "torch"


def test_threads_are_explicit(exported_bundle):
    model = predictor.load(exported_bundle, backend="onnx", threads=1)
    opts = model.backend.session.get_session_options()
    assert model.backend.threads == 1 and opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    quiet = predictor.load(exported_bundle, backend="onnx-int8", threads=2, spin=False)
    opts = quiet.backend.session.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert predictor.load(exported_bundle, backend="torch", spin=False).backend.name == "torch"
    with pytest.raises(ConfigError):
        predictor.load(exported_bundle, backend="onnx", threads=0)


def test_missing_export_says_how_to_make_it(tiny_bundle):
    with pytest.raises(BundleError, match="recog export"):
        predictor.load(tiny_bundle, backend="onnx-int8")


def test_auto_uses_torch_for_other_devices(exported_bundle, monkeypatch):
    chosen = []
    monkeypatch.setattr(predictor, "create_backend",
                        lambda name, manifest, **opts: chosen.append((name, opts)) or object())
    predictor.load(exported_bundle, device="cuda:0")
    assert chosen == [("torch", {"device": "cuda:0"})]
