"""Contract tests over the registry: every preset builds offline, trains a step, round-trips as a bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recog.errors import (BundleError, BundleIntegrityError, ConfigError, ModelNotFoundError,
                          WeightsUnavailableError)
from recog.models import create_model, get_preset, list_presets, read_manifest, save_bundle
from recog.models.registry import Preset, register

from recog.tasks import get_task  # noqa: E402

LABELS = ["a", "b", "c"]


@pytest.mark.parametrize("name", [p.name for p in list_presets()])
def test_preset_forward_backward_and_bundle_roundtrip(name, tmp_path):
    import recog

    torch.manual_seed(0)
    created = create_model(name, LABELS, weights="none")
    model = created.model
    h, w = created.preprocessing.size
    x = torch.randn(2, 3, h, w)
    model.train()
    forward = get_task("classify").forward  # the one place a model is called
    logits = forward(model, x)
    assert logits.shape == (2, len(LABELS))
    logits.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    bundle = save_bundle(tmp_path / name, model, labels=LABELS, preprocessing=created.preprocessing,
                         source_model=name)
    model.eval()
    with torch.no_grad():
        expected = forward(model, x).numpy()
    loaded = recog.load(bundle, backend="torch")
    np.testing.assert_allclose(loaded.infer(x.numpy()), expected, rtol=1e-4, atol=1e-4)
    assert loaded.labels == tuple(LABELS)
    assert loaded.info.preprocessing == created.preprocessing


def test_unknown_name_lists_close_matches():
    with pytest.raises(ModelNotFoundError, match="resnet-18"):
        create_model("resnet18", LABELS)


def test_registering_a_name_twice_is_an_error():
    p = get_preset("resnet-micro")
    with pytest.raises(ConfigError, match="already registered"):
        register(Preset(p.name, p.config, p.preprocessing))


def test_pretrained_weights_offline_says_how_to_fix():
    with pytest.raises(WeightsUnavailableError) as err:
        create_model("resnet-18", LABELS, weights="pretrained")
    msg = str(err.value)
    assert "microsoft/resnet-18" in msg and "--weights none" in msg and "huggingface-cli download" in msg


def test_tiny_preset_has_no_pretrained_weights():
    with pytest.raises(WeightsUnavailableError, match="--weights none"):
        create_model("resnet-micro", LABELS, weights="pretrained")


def test_weights_from_file_keeps_backbone_and_rebuilds_head(tiny_bundle):
    created = create_model("resnet-micro", ["x", "y"], weights=str(tiny_bundle / "model.safetensors"))
    from safetensors.torch import load_file

    src = load_file(str(tiny_bundle / "model.safetensors"))
    own = created.model.state_dict()
    stem = next(k for k in src if "embedder" in k and k.endswith("weight"))
    assert torch.equal(own[stem], src[stem])
    assert created.model.classifier[-1].out_features == 2


def test_fine_tune_from_a_bundle_folder(tiny_bundle):
    created = create_model(str(tiny_bundle), ["x", "y"])
    assert created.preprocessing.size == (32, 32)
    assert created.model.config.num_labels == 2


def test_tampered_bundle_is_refused(tiny_bundle, tmp_path):
    import shutil

    import recog

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match="sha256"):
        recog.load(copy)
    shutil.copy(tiny_bundle / "model.safetensors", copy / "model.safetensors")
    (copy / "config.json").unlink()
    with pytest.raises(BundleIntegrityError, match="missing"):
        recog.load(copy)


def test_newer_bundle_format_and_missing_manifest(tiny_bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    raw = json.loads((copy / "recog.json").read_text())
    raw["format_version"] = 99
    (copy / "recog.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="upgrade recog"):
        read_manifest(copy)
    (copy / "recog.json").unlink()
    with pytest.raises(BundleError, match="not a recog bundle"):
        read_manifest(copy)
    with pytest.raises(ModelNotFoundError):
        read_manifest(tmp_path / "nowhere")


def test_manifest_records_preprocessing_labels_and_hashes(tiny_bundle):
    raw = json.loads((tiny_bundle / "recog.json").read_text())
    assert raw["labels"] == ["cat", "dog", "bird"]
    assert raw["preprocessing"]["size"] == [32, 32]
    assert set(raw["files"]) >= {"config.json", "model.safetensors"}
    assert all(len(h) == 64 for h in raw["files"].values())


def test_predict_single_and_list(tiny_bundle, photos):
    import recog

    model = recog.load(tiny_bundle)
    one = model.predict(photos["coffee"], top_k=2)
    assert len(one.top) == 2 and one.label in ("cat", "dog", "bird")
    assert one.to_dict()["top"][0]["score"] >= one.to_dict()["top"][1]["score"]
    many = model.predict([photos["coffee"], photos["rocket"].read_bytes()], top_k=1)
    assert len(many) == 2


def test_predict_many_keeps_order_and_reports_refused_files(tiny_bundle, photos, tmp_path):
    import recog
    from recog.types import Classification, PredictionFailure

    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    model = recog.load(tiny_bundle)
    out = model.predict_many([photos["coffee"], bad, photos["rocket"], photos["camera_png"]], batch_size=2)
    assert [type(r) for r in out] == [Classification, PredictionFailure, Classification, Classification]
    assert out[1].code == "unsupported_format" and out[2].source == str(photos["rocket"])
    single = model.predict(photos["rocket"], top_k=3)
    assert out[2].label == single.label and abs(out[2].score - single.score) < 1e-5
    with pytest.raises(recog.errors.UnsupportedFormatError):
        model.predict([photos["coffee"], bad])


def test_unreachable_hub_fails_in_seconds_and_names_offline_presets(monkeypatch):
    import time

    from recog.errors import WeightsUnavailableError
    from recog.models import create_model

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens on the discard port
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="efficientnet-lite0"):
        create_model("no-such-owner/no-such-model", ["a", "b"])
    assert time.perf_counter() - start < 10


def test_replacing_a_bundle_survives_leftovers_of_an_interrupted_replace(tmp_path):
    created = create_model("resnet-micro", LABELS, weights="none")
    out = tmp_path / "last"
    save_bundle(out, created.model, labels=LABELS, preprocessing=created.preprocessing, source_model="resnet-micro")
    stale = tmp_path / ".last-old-12345"  # a clean-up cut short by Ctrl-C
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "weights").write_bytes(b"x")
    for _ in range(2):
        save_bundle(out, created.model, labels=LABELS, preprocessing=created.preprocessing,
                    source_model="resnet-micro")
    assert read_manifest(out).labels == tuple(LABELS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
