"""Classical features (HOG, LBP, colour, edges, corners), ``recog features``, and the hog-svm model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("skimage", reason="scikit-image is not installed")

from recog.cli.main import app  # noqa: E402
from recog.features import KINDS, draw, extract  # noqa: E402


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage.data import astronaut

    return Image.fromarray(astronaut())


@pytest.mark.parametrize("kind,length", [("hog", 8100), ("lbp", 10), ("color", 48), ("edges", 25), ("corners", 17)])
def test_each_kind_has_a_fixed_length_and_an_overlay(astronaut, kind, length):
    v = extract(astronaut, kind)
    assert v.shape == (length,) and v.dtype == np.float32 and np.isfinite(v).all()
    assert extract(astronaut.resize((90, 60)), kind).shape == (length,)
    assert draw(astronaut, kind).mode == "RGB"
    if kind in ("lbp",):
        assert v.sum() == pytest.approx(1.0, abs=1e-5)
    if kind == "corners":
        assert v[0] > 0                               # a photograph has corners
    if kind == "edges":
        assert 0 < v[0] < 0.5


def test_unknown_kind_suggests_a_close_one(astronaut):
    from recog.errors import ConfigError

    with pytest.raises(ConfigError, match="corners"):
        extract(astronaut, "corner")


def test_torch_hog_tracks_scikit_image(astronaut):
    import torch
    from skimage.feature import hog

    from recog.features.hog_net import HogLinear

    im = np.asarray(astronaut.resize((64, 64)), dtype=np.float32) / 255
    ours = HogLinear(2).features(torch.from_numpy(im).permute(2, 0, 1)[None])[0].numpy()
    ref = hog(im @ np.array([0.299, 0.587, 0.114], np.float32), orientations=9, pixels_per_cell=(8, 8),
              cells_per_block=(2, 2), block_norm="L2-Hys")
    assert ours.shape == ref.shape and np.corrcoef(ours, ref)[0, 1] > 0.9


def test_cli_writes_npy_with_index_and_overlays(digits_tree, tmp_path):
    out = tmp_path / "f.npy"
    res = CliRunner().invoke(app, ["features", str(digits_tree / "test"), "--kind", "edges", "--out", str(out), "--draw"])
    assert res.exit_code == 0, res.output
    arr = np.load(out)
    rows = (tmp_path / "f.csv").read_text().splitlines()
    assert arr.shape == (30, 25) and len(rows) == 31 and rows[0] == "row,path,kind"
    assert len(list((tmp_path / "f_draw").glob("*_edges.png"))) == 30
    res = CliRunner().invoke(app, ["features", str(digits_tree / "test"), "--out", str(tmp_path / "f.parquet")])
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert res.exit_code != 0 and "pyarrow" in str(res.exception) + res.output
    else:
        assert res.exit_code == 0 and pq.read_table(tmp_path / "f.parquet").num_rows == 30


def test_hog_svm_trains_evaluates_predicts_as_a_classify_bundle(digits_tree, tmp_path):
    import recog
    from recog.engine.train import fit

    result = fit(digits_tree, model="hog-svm", image_size=32, out=str(tmp_path / "run"))
    manifest = json.loads((result.best / "recog.json").read_text())
    assert manifest["task"] == "classify" and manifest["source_model"] == "hog-svm"
    assert set(manifest["files"]) == {"config.json", "model.safetensors"}            # no pickle
    assert json.loads((result.best / "config.json").read_text())["recog_architecture"] == "hog-linear"
    assert result.best_val_acc is not None and result.best_val_acc >= 0.8
    res = CliRunner().invoke(app, ["evaluate", str(result.best), str(digits_tree), "--split", "test"])
    assert res.exit_code == 0, res.output
    acc = json.loads((result.best / "report" / "metrics.json").read_text())["accuracy"]
    assert acc >= 0.85
    model = recog.load(result.best)
    one = next((digits_tree / "test" / "7").glob("*.png"))
    assert model.predict(one).top[0].label == "7"
