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

* The graph: :mod:`recog.runtime.onnx_export`; int8: :mod:`recog.runtime.quantize`.
* The verdict is the task's (:meth:`recog.tasks.Task.judge`): for classify the
  fp32 export must also match logits to ``1e-3 x max(1, largest |logit|)``;
  int8 is judged on accuracy (or, on unlabelled inputs, on top-1 agreement:
  the disagreement rate bounds the accuracy loss from above).
* Calibration uses the ``train`` split of ``--calibration`` when the folder
  has splits; validation uses ``--validation``, else the ``val`` (or
  ``test``) split of the calibration folder, else the calibration images
  themselves (recorded as ``same_as_calibration``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recog.clock import utc_now
from recog.data.evalset import LabelledSet, batched, load_labelled, synthetic
from recog.errors import ConfigError, ExportError
from recog.models.bundle import BundleManifest, read_manifest, update_bundle
from recog.runtime.onnx_export import torch_to_onnx
from recog.runtime.quantize import CALIBRATION_METHODS, cpu_has_vnni, quantize_int8
from recog.runtime.timing import rank_backends, time_backend

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
Log = Callable[[str], None]
_INT8_HINT = ("calibrate on more representative images (--calibration, --calibration-size), try "
              "--calibration-method percentile or entropy, use the fp32 ONNX export, or accept a "
              "larger loss with --max-drop")


@dataclass
class ExportResult:
    """What one export run produced: the recorded entries and the timings."""

    bundle: Path
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "exports": self.exports, "latency_ms": self.latency_ms}


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


def _record(path: Path, name: str, entry: dict[str, Any], *, add: str | None, remove: str | None) -> None:
    manifest = read_manifest(path, replacing=[f for f in (add, remove) if f])  # a re-export's file has new bytes
    exports = manifest.exports
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

    from recog.runtime.onnx import create_session
    from recog.tasks import get_task

    say = log or (lambda _msg: None)
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8 (or omitted), got {quantize!r}.")
    if max_drop < 0:
        raise ConfigError(f"--max-drop must be at least 0 points, got {max_drop}.")
    path = Path(path)
    manifest = read_manifest(path)
    task = get_task(manifest.task)
    load_sets = getattr(task, "export_sets", _load_sets)  # a task whose data is not class folders (detect)
    calib, val = load_sets(manifest, calibration, validation, calibration_size=calibration_size,
                           validation_size=validation_size, need_calibration=quantize == "int8")
    say(f"validation: {len(val)} images from {val.source}" + ("" if val.labelled else " (unlabelled)"))
    if threads:
        torch.set_num_threads(threads)
    model = task.load(manifest)
    with torch.inference_mode():
        reference = batched(val.x, lambda b: task.forward(model, torch.from_numpy(b)).float().numpy())
        ref_features = _torch_features(task, model, val.x)
    result = ExportResult(path)
    common = {"validation": val.describe(), "max_drop_points": max_drop, "onnxruntime": ort.__version__,
              "torch": torch.__version__.split("+")[0]}

    def check_and_keep(name: str, file: str, write: Callable[[Path], dict[str, Any]], *, atol_rel: float | None,
                       entry: dict[str, Any], hint: str) -> None:
        """Write the export to a temporary file, compare it with the PyTorch outputs, keep it or refuse it."""
        tmp = path / f".{file}.tmp"
        try:
            entry = {"file": file, "format": "onnx", **entry, **write(tmp)}
            session = create_session(tmp, threads)
            outputs = batched(val.x, lambda b: session.run(None, {"pixel_values": b})[0])
            parity = task.parity(reference, outputs, val.y)
            if ref_features is not None and "features" in [o.name for o in session.get_outputs()]:
                # the OOD score's embedding distance (recog.monitor.features): recorded, not judged
                feats = batched(val.x, lambda b: session.run(["features"], {"pixel_values": b})[0])
                parity["features_min_cosine"] = round(float((feats * ref_features).sum(axis=1).min()), 6)
            refused = task.judge(parity, max_drop=max_drop, atol_rel=atol_rel)
            entry.update(verified=refused is None, parity=parity, bytes=tmp.stat().st_size, created=utc_now(),
                         **common)
            if refused:
                entry.update(file=None, refused=refused)
                _record(path, name, entry, add=None, remove=file)
                (path / file).unlink(missing_ok=True)
                raise ExportError(f"the {name} export was refused: {refused}. It was not added to the bundle "
                                  f"(figures recorded in recog.json under exports.{name}).", hint=hint)
            os.replace(tmp, path / file)
            _record(path, name, entry, add=file, remove=None)
            result.exports[name] = entry
            say(_summary(name, parity))
        finally:
            tmp.unlink(missing_ok=True)

    say("exporting fp32 ONNX ...")
    check_and_keep("onnx", ONNX_FILE, lambda tmp: torch_to_onnx(model, manifest.preprocessing.size, tmp, task=task,
                                                               exporter=exporter, opset=opset),
                   atol_rel=1e-3, entry={"precision": "fp32"}, hint="report the model; keep using --backend torch")
    if quantize == "int8" and calib is not None:
        say(f"quantizing to int8 with {len(calib)} calibration images ({calibration_method}) ...")
        check_and_keep("onnx-int8", INT8_FILE,
                       lambda tmp: {"quantization": quantize_int8(path / ONNX_FILE, tmp, calib, method=calibration_method,
                                                                  per_channel=per_channel,
                                                                  op_types=getattr(task, "int8_op_types", None))},
                       atol_rel=None, entry={"precision": "int8", "source": ONNX_FILE}, hint=_INT8_HINT)
    if rank:
        say("timing verified backends at batch 1 ...")
        result.latency_ms = rank_backends(path, threads=threads, example=val.x[:1])
    return result


def _torch_features(task: Any, model: Any, x: np.ndarray) -> np.ndarray | None:
    """The pooled features ``task.forward_features`` gives beside its output (classify), else None."""
    import torch

    both = getattr(task, "forward_features", None)
    if both is None or len(x) == 0 or both(model, torch.from_numpy(x[:1]))[1] is None:
        return None
    return batched(x, lambda b: both(model, torch.from_numpy(b))[1].numpy())


def _summary(name: str, parity: dict[str, Any]) -> str:
    figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in parity.items())
    return f"{name}: verified; {figures}"


__all__ = ["CALIBRATION_METHODS", "ExportResult", "INT8_FILE", "ONNX_FILE", "cpu_has_vnni", "export_bundle",
           "quantize_int8", "rank_backends", "time_backend", "torch_to_onnx"]
