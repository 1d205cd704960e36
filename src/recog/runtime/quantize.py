"""Static int8 quantization of an ONNX graph with ONNX Runtime (QDQ format).

uint8 activations (asymmetric, calibrated), int8 per-channel weights. On CPUs
with VNNI/AMX the full 8-bit weight range is used; without VNNI weights are
reduced to 7 bits (``reduce_range``) to avoid saturation, as ONNX Runtime
advises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recog.data.evalset import LabelledSet
from recog.errors import ConfigError, ExportError
from recog.runtime.onnx_export import quiet

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def cpu_has_vnni() -> bool:
    """True when the CPU has 8-bit dot-product instructions (AVX-VNNI, AVX512-VNNI or AMX-INT8)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quantize_int8(fp32_path: str | Path, out: str | Path, calibration: LabelledSet, *,
                  method: str = "minmax", per_channel: bool = True, vnni: bool | None = None,
                  batch_size: int = 16, op_types: list[str] | None = None) -> dict[str, Any]:
    """Static int8 quantization (QDQ) of an fp32 ONNX file with ONNX Runtime.

    Args:
        fp32_path: the fp32 model.
        out: where to write the int8 model.
        calibration: preprocessed images whose activation ranges set the
            quantization scales (a few hundred representative images).
        method: ``minmax``, ``entropy`` or ``percentile`` calibration.
        per_channel: one weight scale per output channel (better accuracy
            for convolutions).
        vnni: whether the target CPU has VNNI; None = this CPU.
        batch_size: calibration batch size.
        op_types: quantize only these operator types (None: every type ONNX Runtime supports); a
            detector keeps its box decoding in float this way (``Detect.int8_op_types``).

    Returns:
        The quantization settings, for recog.json.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}.")
    if len(calibration) == 0:
        raise ExportError("int8 calibration needs at least one image.", hint="pass --calibration DIR with images")
    vnni = cpu_has_vnni() if vnni is None else vnni
    x = calibration.x

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"pixel_values": x[i:i + batch_size]} for i in range(0, len(x), batch_size)])

        def get_next(self):
            return next(self.batches, None)

    out = Path(out)
    pre = out.with_name(f".{out.name}.pre.onnx")
    try:
        with quiet():
            try:
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
            except Exception:  # noqa: BLE001 - symbolic shape inference is optional; retry without it
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                reduce_range=not vnni, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                  "percentile": CalibrationMethod.Percentile}[method],
                extra_options={"CalibMovingAverage": False}, op_types_to_quantize=op_types)
    finally:
        for stray in (pre, out.with_name(out.name + ".data"), Path("augmented_model.onnx")):
            if stray.exists() and stray != out:
                stray.unlink()
    return {"method": "static", "format": "QDQ", "activations": "uint8 (asymmetric, calibrated)",
            "weights": "int8 per-channel" if per_channel else "int8 per-tensor", "reduce_range": not vnni,
            "vnni": vnni, "calibration": {**calibration.describe(), "method": method},
            **({"op_types": list(op_types)} if op_types else {})}
