"""ONNX export of the detector: fp32 parity, int8 judged by the mAP@0.5 drop, the ONNX backend's boxes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import recog
from recog.runtime.export import export_bundle


@pytest.mark.slow  # dynamo export + int8 calibration: ~90 s on 2 busy cores
def test_onnx_and_int8_exports_are_checked_by_map(tiny_detector, shapes_voc, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_detector, bundle)
    result = export_bundle(bundle, quantize="int8", calibration=shapes_voc, max_drop=100.0, rank=False,
                           calibration_size=16)
    fp32, int8 = result.exports["onnx"], result.exports["onnx-int8"]
    assert fp32["verified"] and fp32["parity"]["max_abs_score_diff"] < 1e-3
    assert fp32["validation"]["source"].endswith("(val)")
    p = int8["parity"]
    assert {"map50_reference", "map50", "map50_drop_points"} <= set(p)
    assert np.isclose(p["map50_drop_points"], 100 * (p["map50_reference"] - p["map50"]), atol=1e-3)
    assert int8["quantization"]["op_types"] == ["Conv"]
    recorded = json.loads((bundle / "recog.json").read_text())["exports"]
    assert recorded["onnx"]["verified"] and recorded["onnx-int8"]["file"] == "model.int8.onnx"
    image = sorted((shapes_voc / "JPEGImages").glob("*.png"))[3]
    torch_d = recog.load(bundle, backend="torch").predict(image, min_score=0.05)
    onnx_d = recog.load(bundle, backend="onnx").predict(image, min_score=0.05)
    assert onnx_d.labels == torch_d.labels
    np.testing.assert_allclose(onnx_d.boxes, torch_d.boxes, atol=0.05)
