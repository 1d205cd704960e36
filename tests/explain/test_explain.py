"""Explanations: sanity checks of the maps (randomisation, pointing game, completeness), outputs, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recog.errors import ConfigError

#: Grad-CAM peak inside the square (± this many original pixels) on the synthetic test set.
#: Measured 1.00 (40/40) with this recipe (resnet-micro at 96 px; 0.72 at 48 px, where a cell of
#: the last stage is wider than the square); 0.8 (the issue's aim) is the floor asserted.
MIN_HIT_RATE = 0.8
#: Mean Spearman rank correlation between Grad-CAM maps of the trained model and of the same
#: architecture re-initialised at random. Measured about 0.1 (see the report); a map that ignores
#: the weights (an edge detector) would stay near 1.
MAX_RANDOMISED_CORRELATION = 0.5
#: IG completeness: |sum(attributions) - (f(x) - f(black))| <= this share of |f(x) - f(black)| (+ 1e-3).
IG_REL_TOL = 0.05


def _inside(peak, box, tol=2):
    x, y = peak
    return box[0] - tol <= x <= box[2] + tol and box[1] - tol <= y <= box[3] + tol


def test_pointing_game(pointing):
    from recog.explain import Explainer

    bundle, test, acc, LABELS = pointing
    assert acc >= 0.9, f"the pointing model did not learn the task (train accuracy {acc:.2f})"
    ex = Explainer(bundle)
    hits = 0
    for img, label, box in zip(test.images, test.labels, test.boxes):
        e = ex.explain(img, method="gradcam", target=LABELS[label])
        assert e.image_size == [img.width, img.height]
        hits += _inside(e.peak, box)
    rate = hits / len(test.images)
    print(f"pointing game: Grad-CAM peak inside the object on {hits}/{len(test.images)} = {rate:.2f}")
    assert rate >= MIN_HIT_RATE


def test_model_randomisation_changes_maps(pointing):
    import torch
    from scipy.stats import spearmanr

    from recog.explain import Explainer

    bundle, test, _, _ = pointing
    trained = Explainer(bundle)
    randomised = Explainer(bundle, share_model=False)
    torch.manual_seed(1)
    for m in randomised.model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    rhos = []
    for img in test.images[:8]:
        a = trained.explain(img, method="gradcam", target="red").map.ravel()
        b = randomised.explain(img, method="gradcam", target="red").map.ravel()
        rho = spearmanr(a, b).statistic if a.std() > 0 and b.std() > 0 else 0.0
        rhos.append(0.0 if np.isnan(rho) else rho)
    mean = float(np.mean(rhos))
    print(f"randomisation: mean Spearman rho trained vs re-initialised = {mean:.3f}")
    assert mean < MAX_RANDOMISED_CORRELATION


def test_integrated_gradients_completeness(pointing):
    import torch

    from recog.data.transforms import preprocess
    from recog.explain.attribution import black_baseline, integrated_gradients_with_delta
    from recog.explain import Explainer

    bundle, test, _, _ = pointing
    ex = Explainer(bundle)
    prep = ex.manifest.preprocessing
    for img in test.images[:3]:
        x = torch.from_numpy(preprocess(img, prep))[None]
        attr, delta = integrated_gradients_with_delta(lambda inp: ex.task.forward(ex.model, inp)[:, 1], x,
                                                      mean=prep.mean, std=prep.std, steps=64)
        with torch.no_grad():
            fx = float(ex.task.forward(ex.model, x)[0, 1])
            fb = float(ex.task.forward(ex.model, black_baseline(x, prep.mean, prep.std))[0, 1])
        gap = fx - fb
        assert abs(attr.sum() - gap) <= IG_REL_TOL * abs(gap) + 1e-3, (attr.sum(), gap, delta)
        # the map the CLI saves is the channel sum: it keeps completeness
        amap = ex.explain(img, method="ig", target="red").map
        assert amap.shape == prep.size


def test_outputs_at_original_size_with_exif(tmp_path, tiny_bundle):
    from PIL import Image

    from recog.explain import Explainer

    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, 30:] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes())
    e = Explainer(tiny_bundle).explain(path, method="occlusion")
    assert e.image_size == [40, 60]  # width, height after orientation
    paths = e.save(tmp_path / "out" / "rotated.explain.png")
    assert Image.open(paths["png"]).size == (40, 60)
    assert np.load(paths["npy"]).shape == tuple(e.map.shape)
    summary = json.loads(paths["json"].read_text())
    assert summary["method"] == "occlusion" and summary["target"] in ("cat", "dog", "bird")
    assert 0 <= summary["peak"][0] < 40 and 0 <= summary["peak"][1] < 60


def test_input_box_matches_resize_policies():
    from recog.explain.render import input_box
    from recog.types import Preprocessing

    assert input_box(200, 100, Preprocessing(size=(50, 50), resize="stretch")) == (0.0, 0.0, 200.0, 100.0)
    x1, y1, x2, y2 = input_box(200, 100, Preprocessing(size=(50, 50), resize="shorter_crop", crop_pct=1.0))
    assert (round(x1), round(y1), round(x2), round(y2)) == (50, 0, 150, 100)
    x1, y1, x2, y2 = input_box(200, 100, Preprocessing(size=(50, 50), resize="letterbox"))
    assert (round(x1), round(y1), round(x2), round(y2)) == (0, -48, 200, 152)  # the pad offset is whole input pixels: (50 - 25) // 2 = 12


def test_bad_inputs(tiny_bundle, tmp_path):
    from recog.errors import ImageError
    from recog.explain import Explainer
    from recog.models import create_model, save_bundle

    ex = Explainer(tiny_bundle)
    with pytest.raises(ConfigError, match="did you mean dog"):
        ex.explain(np.zeros((32, 32, 3), np.uint8), target="dgo")
    with pytest.raises(ConfigError, match="gradcam"):
        ex.explain(np.zeros((32, 32, 3), np.uint8), method="gradcm")
    with pytest.raises(ImageError):
        ex.explain(b"not an image")
    vit = create_model("vit-micro", ["a", "b"], weights="none")
    bundle = save_bundle(tmp_path / "vit", vit.model, labels=["a", "b"], preprocessing=vit.preprocessing,
                         source_model="vit-micro")
    vex = Explainer(bundle)
    with pytest.raises(ConfigError, match="--method ig"):
        vex.explain(np.zeros((32, 32, 3), np.uint8), method="gradcam")
    assert vex.explain(np.zeros((32, 32, 3), np.uint8), method="ig").map.shape == (32, 32)


def test_gradcam_weightings_point_too(pointing):
    """The weightings kept for comparison (benchmarks/explain.py) find the square as the default does."""
    from recog.explain import Explainer, MethodOptions

    bundle, test, _, LABELS = pointing
    for weights in ("per-location", "plus-plus"):
        ex = Explainer(bundle, options=MethodOptions(cam_weights=weights))
        hits = sum(_inside(ex.explain(img, target=LABELS[label]).peak, box)
                   for img, label, box in list(zip(test.images, test.labels, test.boxes))[:8])
        assert hits >= 6, (weights, hits)
    with pytest.raises(ConfigError, match="cam_weights"):
        MethodOptions(cam_weights="pooled")
