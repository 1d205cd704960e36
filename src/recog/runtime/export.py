"""Export a bundle to ONNX (fp32) and static int8, each checked before it is kept.

Every export runs the same check on a validation set: top-1 agreement with the
original PyTorch model, the largest logit difference, and accuracy before and
after (when the set is labelled). The result is recorded in the bundle's
``recog.json`` under ``exports``; an export that loses more than ``max_drop``
accuracy points is refused: its file is not added to the bundle, the refusal
is recorded with the figures, and :class:`~recog.errors.ExportError` is raised.

After a successful export every verified backend of the bundle (torch, onnx,
onnx-int8) is timed at batch 1 on this machine, and ``speed_rank`` (1 =
fastest) is written beside each, so ``recog.load(path)`` picks the fastest
verified artifact.

Decisions where the issue is silent:

* The fp32 graph comes from the ``torch.export``-based exporter (the default
  in torch 2.13: a clean, constant-folded graph, batch-norm folded into the
  convolutions, a dynamic batch axis); if it fails on a model the TorchScript
  exporter is tried and the fallback is recorded.
* The fp32 export must also match logits to ``1e-3 x max(1, largest |logit|)``;
  int8 is judged on accuracy (or, on unlabelled inputs, on top-1 agreement:
  the disagreement rate bounds the accuracy loss from above).
* int8 uses ONNX Runtime static quantization in QDQ format: uint8 activations
  (asymmetric, calibrated), int8 per-channel weights. On CPUs with VNNI/AMX
  the full 8-bit weight range is used; without VNNI weights are reduced to 7
  bits (``reduce_range``) to avoid saturation, as ONNX Runtime advises.
* Calibration uses the ``train`` split of ``--calibration`` when the folder
  has splits; validation uses ``--validation``, else the ``val`` (or
  ``test``) split of the calibration folder, else the calibration images
  themselves (recorded as ``same_as_calibration``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recog.errors import ConfigError, ExportError
from recog.models.bundle import BundleManifest, read_manifest, update_bundle
from recog.runtime.evalset import LabelledSet, batched, compare, load_labelled, synthetic

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
Log = Callable[[str], None]


@dataclass
class ExportResult:
    """What one export run produced: the recorded entries and the timings."""

    bundle: Path
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "exports": self.exports, "latency_ms": self.latency_ms}


def cpu_has_vnni() -> bool:
    """True when the CPU has 8-bit dot-product instructions (AVX-VNNI, AVX512-VNNI or AMX-INT8)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


# --------------------------------------------------------------------------- torch → ONNX


class _LogitsOnly:
    """Builds a ``torch.nn.Module`` that maps ``pixel_values`` to logits (for export)."""

    def __new__(cls, model):
        import torch

        class LogitsOnly(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, pixel_values):
                return self.inner(pixel_values=pixel_values).logits

        return LogitsOnly(model).eval()


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints, warnings and log lines."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def torch_to_onnx(model, size: tuple[int, int], out: str | Path, *, exporter: str = "dynamo",
                  opset: int | None = None) -> dict[str, Any]:
    """Write ``model`` (a transformers image classifier) as an fp32 ONNX file.

    Args:
        model: module called as ``model(pixel_values=x).logits``.
        size: (height, width) of the input.
        out: ONNX file to write (one file, weights inside).
        exporter: ``"dynamo"`` (``torch.export``-based; falls back to
            TorchScript on failure) or ``"torchscript"``.
        opset: ONNX opset; None = the exporter's default.

    Returns:
        ``{"exporter": ..., "opset": ...}`` plus ``exporter_fallback`` (the
        dynamo error) when the fallback was used.

    Raises:
        ExportError: both exporters failed.
    """
    import torch

    if exporter not in ("dynamo", "torchscript"):
        raise ConfigError(f"exporter must be dynamo or torchscript, got {exporter!r}.")
    wrapped = _LogitsOnly(model.eval())
    h, w = size
    example = (torch.zeros(2, 3, h, w),)
    info: dict[str, Any] = {}
    first_error: str | None = None
    if exporter == "dynamo":
        try:
            with _quiet(), torch.inference_mode(False):
                batch = torch.export.Dim("batch", min=1, max=4096)
                program = torch.onnx.export(wrapped, example, None, dynamo=True, input_names=["pixel_values"],
                                            output_names=["logits"], opset_version=opset,
                                            dynamic_shapes={"pixel_values": {0: batch}}, external_data=False,
                                            optimize=True)
                program.save(str(out), external_data=False)
            info["exporter"] = "dynamo"
        except Exception as exc:  # noqa: BLE001 - recorded and retried with the other exporter below
            first_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            info["exporter_fallback"] = first_error
    if "exporter" not in info:
        try:
            with _quiet():
                torch.onnx.export(wrapped, example, str(out), dynamo=False, input_names=["pixel_values"],
                                  output_names=["logits"], opset_version=opset or 17,
                                  dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
            info["exporter"] = "torchscript"
        except Exception as exc:  # noqa: BLE001 - both failures are reported together
            raise ExportError(
                f"could not export the model to ONNX (dynamo: {first_error or 'not tried'}; torchscript: "
                f"{type(exc).__name__}: {str(exc)[:300]}).",
                hint="report the model name; predict with --backend torch meanwhile") from exc
    import onnx

    proto = onnx.load(str(out), load_external_data=False)
    info["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return info


# --------------------------------------------------------------------------- int8


def quantize_int8(fp32_path: str | Path, out: str | Path, calibration: LabelledSet, *,
                  method: str = "minmax", per_channel: bool = True, vnni: bool | None = None,
                  batch_size: int = 16) -> dict[str, Any]:
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
        with _quiet():
            try:
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
            except Exception:  # noqa: BLE001 - symbolic shape inference is optional; retry without it
                quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                reduce_range=not vnni, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                  "percentile": CalibrationMethod.Percentile}[method],
                extra_options={"CalibMovingAverage": False})
    finally:
        for stray in (pre, out.with_name(out.name + ".data"), Path("augmented_model.onnx")):
            if stray.exists() and stray != out:
                stray.unlink()
    return {"method": "static", "format": "QDQ", "activations": "uint8 (asymmetric, calibrated)",
            "weights": "int8 per-channel" if per_channel else "int8 per-tensor", "reduce_range": not vnni,
            "vnni": vnni, "calibration": {**calibration.describe(), "method": method}}


# --------------------------------------------------------------------------- data for the checks


def _load_sets(manifest: BundleManifest, calibration: str | Path | None, validation: str | Path | None, *,
               calibration_size: int, validation_size: int, need_calibration: bool) -> tuple[LabelledSet | None, LabelledSet]:
    labels, prep = manifest.labels, manifest.preprocessing
    calib = None
    if need_calibration:
        if calibration is None:
            raise ExportError("static int8 quantization needs calibration images; none were given.",
                              hint="pass --calibration DIR, a class-per-folder tree of a few hundred "
                                   "representative images (DIR/<label>/*.jpg), e.g. your validation set")
        calib = load_labelled(calibration, labels, prep, split="train", limit=calibration_size)
    if validation is not None:
        val = load_labelled(validation, labels, prep, split="val", limit=validation_size)
    elif calibration is not None:
        val = _held_out(calibration, manifest, validation_size)
    else:
        val = synthetic(prep, 32)
    return calib, val


def _held_out(calibration: str | Path, manifest: BundleManifest, limit: int) -> LabelledSet:
    from recog.data import load_dataset

    ds = load_dataset(calibration)
    for split in ("val", "test"):
        if ds.split(split):
            return load_labelled(calibration, manifest.labels, manifest.preprocessing, split=split, limit=limit)
    val = load_labelled(calibration, manifest.labels, manifest.preprocessing, limit=limit)
    return LabelledSet(val.x, val.y, f"{val.source} (same_as_calibration)", val.names, val.skipped)


# --------------------------------------------------------------------------- checks and recording


def _judge(parity: dict[str, Any], *, max_drop: float, atol_rel: float | None) -> str | None:
    """None when the export passes, else the reason it is refused."""
    if "accuracy_drop_points" in parity:
        if parity["accuracy_drop_points"] > max_drop:
            return (f"accuracy drops {parity['accuracy_drop_points']:.2f} points "
                    f"({100 * parity['accuracy_reference']:.2f}% → {100 * parity['accuracy']:.2f}%) on "
                    f"{parity['images']} images, more than --max-drop {max_drop:g}")
    else:
        disagree = 100.0 * (1.0 - parity["top1_agreement"])
        if disagree > max_drop:
            return (f"top-1 agrees with the original on only {100 * parity['top1_agreement']:.2f}% of "
                    f"{parity['images']} unlabelled images (more than --max-drop {max_drop:g} points differ)")
    if atol_rel is not None:
        tol = atol_rel * max(1.0, parity["logit_scale"])
        if parity["max_abs_logit_diff"] > tol:
            return f"largest logit difference {parity['max_abs_logit_diff']:.3g} is above the tolerance {tol:.3g}"
    return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _record(path: Path, name: str, entry: dict[str, Any], *, add: str | None, remove: str | None) -> None:
    manifest = read_manifest(path)
    exports = dict(manifest.raw.get("exports") or {})
    exports[name] = entry
    update_bundle(path, add_files=[add] if add else [],
                  remove_files=[remove] if remove and remove in manifest.files else [],
                  updates={"exports": exports})


def export_bundle(path: str | Path, *, quantize: str | None = None, calibration: str | Path | None = None,
                  validation: str | Path | None = None, max_drop: float = 1.0, calibration_size: int = 256,
                  validation_size: int = 500, calibration_method: str = "minmax", per_channel: bool = True,
                  exporter: str = "dynamo", opset: int | None = None, threads: int | None = None,
                  rank: bool = True, log: Log | None = None) -> ExportResult:
    """Export a bundle to ONNX fp32 (and int8), check each export, record it in recog.json.

    Args:
        path: bundle folder.
        quantize: None or ``"int8"``.
        calibration: labelled image folder for int8 calibration (required for int8).
        validation: labelled image folder for the checks; see the module
            docstring for the default.
        max_drop: largest accepted accuracy loss, in percentage points.
        calibration_size, validation_size: at most this many images (stratified).
        calibration_method: ``minmax``, ``entropy`` or ``percentile``.
        per_channel: per-channel int8 weights.
        exporter: ``dynamo`` or ``torchscript``.
        opset: ONNX opset, None = exporter default.
        threads: threads for the checks and timings; None = all CPUs.
        rank: time every verified backend and write ``speed_rank``.
        log: called with one-line progress messages.

    Returns:
        :class:`ExportResult` with the recorded entries.

    Raises:
        ExportError: an export failed or was refused by its accuracy check
            (its figures are recorded in recog.json; its file is not kept).
        DatasetError: a calibration/validation folder cannot be used.
    """
    import onnxruntime as ort
    import torch

    from recog.models.bundle import load_torch_model
    from recog.runtime.onnx import create_session

    say = log or (lambda _msg: None)
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8 (or omitted), got {quantize!r}.")
    if max_drop < 0:
        raise ConfigError(f"--max-drop must be at least 0 points, got {max_drop}.")
    path = Path(path)
    manifest = read_manifest(path)
    calib, val = _load_sets(manifest, calibration, validation, calibration_size=calibration_size,
                            validation_size=validation_size, need_calibration=quantize == "int8")
    say(f"validation: {len(val)} images from {val.source}" + ("" if val.labelled else " (unlabelled)"))
    if threads:
        torch.set_num_threads(threads)
    model = load_torch_model(manifest)
    with torch.inference_mode():
        reference = batched(val.x, lambda b: model(pixel_values=torch.from_numpy(b)).logits.float().numpy())
    result = ExportResult(path)
    common = {"validation": val.describe(), "max_drop_points": max_drop, "onnxruntime": ort.__version__,
              "torch": torch.__version__.split("+")[0]}

    # fp32
    tmp = path / f".{ONNX_FILE}.tmp"
    say("exporting fp32 ONNX ...")
    try:
        info = torch_to_onnx(model, manifest.preprocessing.size, tmp, exporter=exporter, opset=opset)
        session = create_session(tmp, threads)
        logits = batched(val.x, lambda b: session.run(None, {"pixel_values": b})[0])
        parity = compare(reference, logits, val.y)
        refused = _judge(parity, max_drop=max_drop, atol_rel=1e-3)
        entry = {"file": ONNX_FILE, "format": "onnx", "precision": "fp32", **info, "verified": refused is None,
                 "parity": parity, "bytes": tmp.stat().st_size, "created": _now(), **common}
        if refused:
            entry.update(file=None, refused=refused)
            _record(path, "onnx", entry, add=None, remove=ONNX_FILE)
            raise ExportError(f"the fp32 ONNX export was refused: {refused}.",
                              hint="report the model; keep using --backend torch")
        os.replace(tmp, path / ONNX_FILE)
        _record(path, "onnx", entry, add=ONNX_FILE, remove=None)
        result.exports["onnx"] = entry
        say(_summary("onnx", parity))
    finally:
        tmp.unlink(missing_ok=True)

    # int8
    if quantize == "int8" and calib is not None:
        tmp = path / f".{INT8_FILE}.tmp"
        say(f"quantizing to int8 with {len(calib)} calibration images ({calibration_method}) ...")
        try:
            qinfo = quantize_int8(path / ONNX_FILE, tmp, calib, method=calibration_method, per_channel=per_channel)
            session = create_session(tmp, threads)
            logits = batched(val.x, lambda b: session.run(None, {"pixel_values": b})[0])
            parity = compare(reference, logits, val.y)
            refused = _judge(parity, max_drop=max_drop, atol_rel=None)
            entry = {"file": INT8_FILE, "format": "onnx", "precision": "int8", "source": ONNX_FILE,
                     "quantization": qinfo, "verified": refused is None, "parity": parity,
                     "bytes": tmp.stat().st_size, "created": _now(), **common}
            if refused:
                entry.update(file=None, refused=refused)
                _record(path, "onnx-int8", entry, add=None, remove=INT8_FILE)
                (path / INT8_FILE).unlink(missing_ok=True)
                raise ExportError(
                    f"the int8 export was refused: {refused}. It was not added to the bundle (figures recorded "
                    "in recog.json under exports.onnx-int8).",
                    hint="calibrate on more representative images (--calibration, --calibration-size), try "
                         "--calibration-method percentile or entropy, use the fp32 ONNX export, or accept a "
                         "larger loss with --max-drop")
            os.replace(tmp, path / INT8_FILE)
            _record(path, "onnx-int8", entry, add=INT8_FILE, remove=None)
            result.exports["onnx-int8"] = entry
            say(_summary("onnx-int8", parity))
        finally:
            tmp.unlink(missing_ok=True)

    if rank:
        say("timing verified backends at batch 1 ...")
        result.latency_ms = rank_backends(path, threads=threads, example=val.x[:1])
    return result


def _summary(name: str, parity: dict[str, Any]) -> str:
    acc = (f", accuracy {100 * parity['accuracy_reference']:.2f}% → {100 * parity['accuracy']:.2f}%"
           if "accuracy" in parity else "")
    return (f"{name}: verified; top-1 agreement {100 * parity['top1_agreement']:.2f}%, "
            f"max logit diff {parity['max_abs_logit_diff']:.2g}{acc}")


def time_backend(backend, example: np.ndarray, *, budget_s: float = 2.0, min_runs: int = 5,
                 max_runs: int = 100, warmup: int = 2) -> list[float]:
    """Latencies in milliseconds of ``backend.infer(example)``, after ``warmup`` calls: at least
    ``min_runs``, then more until ``budget_s`` seconds or ``max_runs``."""
    for _ in range(warmup):
        backend.infer(example)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        backend.infer(example)
        times.append(1000.0 * (time.perf_counter() - t))
    return times


def rank_backends(path: str | Path, *, threads: int | None = None, example: np.ndarray | None = None,
                  budget_s: float = 1.5) -> dict[str, float]:
    """Time torch and every verified export at batch 1; write ``speed_rank`` (1 = fastest).

    Returns:
        ``{backend: median latency in ms}``.
    """
    from recog.runtime.predictor import BACKENDS, _register_optional_backends

    _register_optional_backends()
    manifest = read_manifest(path)
    exports = {k: dict(v) for k, v in (manifest.raw.get("exports") or {}).items()}
    exports.setdefault("torch", {"file": "model.safetensors", "format": "safetensors", "precision": "fp32"})
    exports["torch"]["verified"] = True
    if example is None:
        example = synthetic(manifest.preprocessing, 1).x
    medians: dict[str, float] = {}
    for name, entry in exports.items():
        if not entry.get("verified") or entry.get("file") not in manifest.files or name not in BACKENDS:
            continue
        backend = BACKENDS[name](manifest, threads=threads)
        medians[name] = float(np.median(time_backend(backend, example, budget_s=budget_s)))
        del backend
    for rank, name in enumerate(sorted(medians, key=medians.get), start=1):
        exports[name].update(speed_rank=rank, latency_ms_batch1=round(medians[name], 3),
                             timed_threads=threads or _default_threads())
    for name, entry in exports.items():
        if name not in medians:
            entry.pop("speed_rank", None)
    update_bundle(path, updates={"exports": exports})
    return medians


def _default_threads() -> int:
    from recog.runtime.onnx import default_threads

    return default_threads()


__all__ = ["CALIBRATION_METHODS", "ExportResult", "INT8_FILE", "ONNX_FILE", "cpu_has_vnni", "export_bundle",
           "quantize_int8", "rank_backends", "time_backend", "torch_to_onnx"]
