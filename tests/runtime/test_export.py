"""ONNX export and int8 quantization: parity, recording in recog.json, the accuracy guard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recog.errors import BundleIntegrityError, ConfigError, ExportError
from recog.models.bundle import read_manifest


def test_fp32_export_is_recorded_and_matches_torch(exported_bundle):
    manifest = read_manifest(exported_bundle)
    onnx = manifest.raw["exports"]["onnx"]
    assert onnx["verified"] is True and onnx["file"] == "model.onnx" and "model.onnx" in manifest.files
    parity = onnx["parity"]
    assert parity["top1_agreement"] == 1.0
    assert parity["max_abs_logit_diff"] < 1e-4
    assert parity["accuracy"] == parity["accuracy_reference"] and parity["accuracy"] >= 0.9
    assert "test split" in onnx["validation"]["source"]
    assert onnx["exporter"] in ("dynamo", "torchscript") and onnx["opset"] >= 17


def test_int8_export_is_calibrated_and_checked(exported_bundle):
    manifest = read_manifest(exported_bundle)
    q = manifest.raw["exports"]["onnx-int8"]
    assert q["verified"] is True and "model.int8.onnx" in manifest.files
    assert q["quantization"]["format"] == "QDQ" and q["quantization"]["weights"] == "int8 per-channel"
    assert q["quantization"]["calibration"]["images"] == 90  # the train split of the digits tree
    assert q["parity"]["accuracy_drop_points"] <= 5.0
    import onnx

    ops = {n.op_type for n in onnx.load(str(exported_bundle / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_every_backend_is_ranked_by_measured_speed(exported_bundle):
    exports = read_manifest(exported_bundle).raw["exports"]
    ranks = sorted(exports[name]["speed_rank"] for name in ("torch", "onnx", "onnx-int8"))
    assert ranks == [1, 2, 3]
    fastest = min(exports, key=lambda k: exports[k]["speed_rank"])
    from recog.runtime.backends import auto_backend

    assert auto_backend(read_manifest(exported_bundle)) == fastest


def _broken_quantizer(fp32_path, out, calibration, **_):
    """Writes the fp32 model with a +100 bias on class 0: every image becomes class 0."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(fp32_path))
    gemm = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
    init = {i.name: i for i in model.graph.initializer}
    bias = numpy_helper.to_array(init[gemm.input[2]]).copy()
    bias[0] += 100.0
    init[gemm.input[2]].CopyFrom(numpy_helper.from_array(bias, gemm.input[2]))
    onnx.save(model, str(out))
    return {"method": "static", "calibration": calibration.describe()}


def test_int8_that_loses_accuracy_is_refused(bundle_copy, digits_tree, monkeypatch):
    from recog.runtime import export as export_mod

    monkeypatch.setattr(export_mod, "quantize_int8", _broken_quantizer)
    with pytest.raises(ExportError) as info:
        export_mod.export_bundle(bundle_copy, quantize="int8", calibration=digits_tree, max_drop=1.0, rank=False)
    message = str(info.value)
    assert "accuracy drops" in message and "--max-drop 1" in message and "Fix:" in message
    manifest = read_manifest(bundle_copy)
    entry = manifest.raw["exports"]["onnx-int8"]
    assert entry["verified"] is False and entry["file"] is None and "accuracy drops" in entry["refused"]
    assert entry["parity"]["accuracy_drop_points"] > 1.0
    assert "model.int8.onnx" not in manifest.files and not (bundle_copy / "model.int8.onnx").exists()
    assert manifest.raw["exports"]["onnx"]["verified"] is True  # the fp32 export still stands
    from recog.runtime.backends import auto_backend

    assert auto_backend(manifest) in ("onnx", "torch")


def test_cli_refusal_exits_non_zero(bundle_copy, digits_tree, monkeypatch, capsys):
    from recog.cli.main import main
    from recog.runtime import export as export_mod

    monkeypatch.setattr(export_mod, "quantize_int8", _broken_quantizer)
    with pytest.raises(SystemExit) as info:
        main(["export", str(bundle_copy), "--quantize", "int8", "--calibration", str(digits_tree)])
    assert info.value.code == ExportError.exit_code != 0
    assert "int8 export was refused" in capsys.readouterr().err


def test_int8_without_calibration_says_how_to_fix(bundle_copy):
    from recog.runtime.export import export_bundle

    with pytest.raises(ExportError, match="--calibration DIR"):
        export_bundle(bundle_copy, quantize="int8", rank=False)


def test_bad_options_are_refused(bundle_copy):
    from recog.runtime.export import export_bundle

    with pytest.raises(ConfigError):
        export_bundle(bundle_copy, quantize="int4")
    with pytest.raises(ConfigError):
        export_bundle(bundle_copy, max_drop=-1)


def test_unlabelled_export_checks_parity_on_synthetic_images(tiny_bundle, tmp_path, monkeypatch):
    import shutil
    import uuid

    import onnx

    from recog.runtime import export
    from recog.runtime.export import export_bundle

    bundle = tmp_path / "tiny"
    shutil.copytree(tiny_bundle, bundle)
    result = export_bundle(bundle, rank=False)
    parity = result.exports["onnx"]["parity"]
    assert result.exports["onnx"]["validation"]["source"] == "synthetic"
    assert "accuracy" not in parity and parity["top1_agreement"] == 1.0
    real = export.torch_to_onnx

    def other_bytes(*args, **kwargs):  # an export need not be byte-identical run to run (the detector's is not)
        out = real(*args, **kwargs)
        graph = onnx.load(str(args[2]))
        onnx.helper.set_model_props(graph, {"run": uuid.uuid4().hex})
        onnx.save(graph, str(args[2]))
        return out

    monkeypatch.setattr(export, "torch_to_onnx", other_bytes)
    again = export_bundle(bundle, rank=False)  # exporting again rewrites model.onnx and its hash
    assert again.exports["onnx"]["parity"]["top1_agreement"] == 1.0
    from recog.models import read_manifest

    read_manifest(bundle)  # every recorded hash matches its file


def test_tampered_export_is_refused_at_load(exported_bundle, tmp_path):
    import shutil

    import recog.runtime.predictor as predictor

    bundle = tmp_path / "b"
    shutil.copytree(exported_bundle, bundle)
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (bundle / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match="model.onnx"):
        predictor.load(bundle, backend="onnx")


@pytest.mark.parametrize("preset", ["vit-micro", "resnet-micro"])
def test_torch_to_onnx_parity_with_dynamic_batch(preset, tmp_path):
    import torch

    from recog.models import create_model
    from recog.runtime.export import torch_to_onnx
    from recog.runtime.onnx import create_session

    torch.manual_seed(0)
    created = create_model(preset, ["a", "b", "c", "d"], weights="none")
    info = torch_to_onnx(created.model, created.preprocessing.size, tmp_path / "m.onnx")
    assert info["exporter"] == "dynamo"
    session = create_session(tmp_path / "m.onnx", threads=1)
    for n in (1, 5):
        x = np.random.default_rng(n).standard_normal((n, 3, 32, 32)).astype(np.float32)
        with torch.inference_mode():
            ref = created.model(pixel_values=torch.from_numpy(x)).logits.numpy()
        out = session.run(None, {"pixel_values": x})[0]
        assert out.shape == (n, 4)
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_export_json_output(exported_bundle):
    raw = json.loads((exported_bundle / "recog.json").read_text())
    assert set(raw["exports"]) == {"onnx", "onnx-int8", "torch"}
