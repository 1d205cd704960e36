"""Anomaly detection for visual quality control: fitted on good parts only, with defect heatmaps.

PatchCore-style (see :mod:`recog.anomaly.network`): the network is a
pretrained backbone's mid-level patch features plus a memory bank of good
patch features; its raw output is ``(N, h * w)``, each patch's distance to
the nearest bank entry. :meth:`Anomaly.postprocess` turns a row into an
:class:`~recog.types.AnomalyResult`: a Gaussian-smoothed heatmap at the model
input size, the image score (the heatmap's maximum), the verdict against the
threshold, and boxes around the regions above it, in original-image pixels.

The threshold lives in the bundle's ``calibration`` (so it is part of the
bundle version): ``fit`` sets it from held-out good images at a false-reject
rate (default 1%); ``recog evaluate`` on data with labelled defects records
the F1-optimal threshold beside it (``anomaly.threshold_candidates``), and
:func:`set_threshold` adopts either, or a number. Every request may pass
``threshold=`` (score units, as ``score`` and ``threshold`` are reported).

Input: the whole image is inspected, so the resize policy is ``stretch``
(a centre crop would cut defects at the edges off), at
:data:`recog.anomaly.network.DEFAULT_IMAGE_SIZE` for EfficientNet-Lite (chosen on pcb, README).
Boxes are scaled to the original image's size, read from its header (EXIF
rotation not applied) or given as ``image_sizes=[(w, h), ...]``; for inputs
without a path (bytes, arrays) they stay in model-input pixels and
``image_size`` says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from recog.errors import ConfigError, ImageError
from recog.tasks.base import EvaluationResult, Task, TrainResult, register_task
from recog.types import AnomalyResult

if TYPE_CHECKING:
    import torch

    from recog.anomaly.fit import AnomalyFit
    from recog.models.bundle import BundleManifest

class ScoreMetric:
    """Not a training metric (the task does not train by gradient): image scores seen, and their maximum."""

    def __init__(self, *, keep_outputs: bool = False) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.max = float("nan")

    def update(self, output: np.ndarray, target: np.ndarray) -> None:
        if len(output):
            top = float(np.asarray(output).reshape(len(output), -1).max())
            self.max = top if self.count == 0 else max(self.max, top)
        self.count += len(output)

    def compute(self) -> dict[str, float]:
        return {"count": float(self.count), "max_score": self.max}


@register_task
class Anomaly(Task):
    """Anomaly detection (the ``anomaly`` task): patch distances ``(N, h * w)`` → :class:`AnomalyResult`."""

    name = "anomaly"
    result = AnomalyResult
    output = "patch_scores"
    monitor = "count"
    trains_by_gradient = False
    #: int8 export quantizes the backbone's convolutions only: the nearest-bank search stays float (exact).
    int8_op_types = ["Conv"]
    #: the backbone the defaults were measured with (docs/anomaly.md)
    defaults = {"model": "efficientnet-lite0"}

    def build(self, source: str, labels: Sequence[str], *, weights: str | None = None,
              image_size: int | None = None):
        """A :class:`~recog.anomaly.network.PatchCoreNet` on ``source``'s backbone with a one-row zero bank
        (see :func:`~recog.anomaly.network.create_anomaly_model`); ``labels`` are not used."""
        from recog.anomaly.network import create_anomaly_model

        return create_anomaly_model(source, weights=weights, image_size=image_size)

    def load(self, manifest: "BundleManifest") -> "torch.nn.Module":
        """The bundle's network with batch norms folded into the convolutions (inference only)."""
        from recog.models.bundle import load_network

        return load_network(manifest).fuse()

    def head(self, model: "torch.nn.Module") -> "torch.nn.Module":
        raise ConfigError("the anomaly task has no trained head (its memory bank is fitted, not trained).")

    def forward(self, model: "torch.nn.Module", x: "torch.Tensor") -> "torch.Tensor":
        return model(x)

    # ------------------------------------------------------------------ fitting
    def inputs(self, images: "torch.Tensor", targets: Any, *, train: bool = True):
        raise ConfigError("the anomaly task is fitted on good images, not trained by gradient steps.",
                          hint="recog train GOOD_IMAGES/ --task anomaly")

    def metric(self, *, keep_outputs: bool = False) -> ScoreMetric:
        return ScoreMetric()

    def fit(self, config: Any, run_dir: Path, reporter: Any) -> TrainResult:
        """Fit on the good images in ``config.data``; writes ``RUN/best`` and ``RUN/last`` (the same model).

        Uses ``model``, ``weights``, ``image_size``, ``val_split`` (the held-out
        share), ``seed``, ``device``, ``workers``, ``strict`` and ``batch_size``
        (capped at 8 images per feature batch) of the config; other knobs are
        :class:`~recog.anomaly.fit.FitOptions` defaults (Python API:
        :func:`recog.anomaly.fit.fit_anomaly`).
        """
        from recog.anomaly.fit import FitOptions, fit_anomaly, good_images
        from recog.errors import TrainingInterrupted

        paths = good_images(config.data)
        options = FitOptions(holdout=config.val_split if config.val_split > 0 else FitOptions.holdout)
        try:
            fitted = fit_anomaly(paths, model=config.model, weights=config.weights, image_size=config.image_size,
                                 options=options, batch_size=min(config.batch_size, 8), threads=config.workers,
                                 strict=config.strict, seed=config.seed, device=config.device, stage=reporter.stage)
        except KeyboardInterrupt:
            raise TrainingInterrupted("fitting stopped by the user; nothing was saved.",
                                      hint="run the same command again") from None
        for path, reason in fitted.skipped:
            reporter.message(f"skipped {path}: {reason}")
        extra = {"training": config.to_dict(), "dataset": _dataset_record(config.data, paths, fitted)}
        best = save_fit(fitted, run_dir / "best", extra=extra)
        last = save_fit(fitted, run_dir / "last", extra=extra)
        r = fitted.record
        reporter.message(f"memory bank {r['bank_size']:,} patches (of {r['patches_seen']:,} from {r['bank_images']} "
                         f"images); threshold {fitted.threshold:.4g} at {100 * options.false_reject_rate:g}% "
                         f"false rejects on {r['held_out_images']} held-out good images")
        history = [{"bank_size": float(r["bank_size"]), "threshold": fitted.threshold}]
        return TrainResult(run_dir, best, last, 1, None, history, fitted.skipped, fitted.seconds)

    def evaluate(self, predictor: Any, data: Any, *, split: str | None, out: Path, batch_size: int,
                 progress_factory: Callable[[str, int], Any] | None) -> EvaluationResult:
        """Image AUROC, AP, F1 at the threshold and at the F1-optimal one, pixel AUROC where masks exist;
        ``metrics.json`` and ``report.html`` (see :mod:`recog.metrics.anomaly`)."""
        from recog.anomaly.evaluate import evaluate_anomaly

        m, report, split_name, failures, summary = evaluate_anomaly(
            predictor, data, split=split, out=Path(out), batch_size=batch_size, progress_factory=progress_factory)
        return EvaluationResult(m, report, Path(out), split_name, failures, summary)

    # ------------------------------------------------------------------ inference
    def postprocess(self, raw: np.ndarray, manifest: "BundleManifest", *, sources: Sequence[str | None],
                    threshold: float | None = None, image_sizes: Sequence[tuple[int, int] | None] | None = None,
                    **options: Any) -> list[AnomalyResult]:
        """Raw ``(N, h * w)`` patch distances → one :class:`AnomalyResult` per image.

        Args:
            threshold: score above which an image fails (default: the bundle's); must be > 0.
            image_sizes: ``(width, height)`` of each original image; default: read from each
                source path's header, else the model input size.
        """
        from recog.anomaly import bundle_threshold
        from recog.anomaly.maps import grid_shape, heatmap, peak_preserving, regions

        t = bundle_threshold(manifest) if threshold is None else float(threshold)
        if t is not None and not t > 0:
            raise ConfigError(f"threshold must be > 0, got {threshold!r}.")
        prep = manifest.preprocessing
        sigma = float(manifest.task_record.get("sigma", 4.0))
        raw = np.asarray(raw, dtype=np.float32).reshape(len(raw), -1)
        results = []
        for i, (row, source) in enumerate(zip(raw, sources)):
            score = float(row.max())  # PatchCore's image score: the largest patch distance
            hm = peak_preserving(heatmap(row.reshape(grid_shape(len(row), prep.size)), prep.size, sigma=sigma), score)
            size = image_sizes[i] if image_sizes is not None and image_sizes[i] is not None else _source_size(source)
            size = size or (prep.size[1], prep.size[0])
            boxes: list[list[float]] = []
            box_scores: list[float] = []
            if t is not None:
                hm = hm / t
                boxes, box_scores = regions(hm, size)
            results.append(AnomalyResult(score=score, threshold=t, boxes=tuple(tuple(b) for b in boxes),
                                         scores=tuple(box_scores), image_size=tuple(size), source=source, heatmap=hm))
        return results

    # ------------------------------------------------------------------ export
    def export_sets(self, manifest: "BundleManifest", calibration: Any, validation: Any, **sizes: Any):
        """Good images to calibrate on, good/defect images to check on (see :mod:`recog.anomaly.exportset`)."""
        from recog.anomaly.exportset import export_sets

        return export_sets(manifest, calibration, validation, **sizes)

    def parity(self, reference: np.ndarray, candidate: np.ndarray, y: np.ndarray | None) -> dict[str, Any]:
        """``images``, ``max_abs_diff`` of the patch distances, ``scale`` (largest reference distance),
        ``max_image_score_rel_diff`` (of the per-image maxima, relative to ``scale``) and, with good (0) /
        defect (1) labels ``y``, ``image_auroc_reference``, ``image_auroc`` and ``auroc_drop_points``."""
        ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
        cand = np.asarray(candidate, dtype=np.float64).reshape(len(candidate), -1)
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        diff = float(np.abs(ref - cand).max()) if ref.size else 0.0
        img = float(np.abs(ref.max(1) - cand.max(1)).max()) if ref.size else 0.0
        out: dict[str, Any] = {"images": int(len(ref)), "max_abs_diff": diff, "scale": scale,
                               "max_image_score_rel_diff": round(img / max(scale, 1e-12), 6)}
        if y is not None and len(np.unique(y)) == 2:
            from sklearn.metrics import roc_auc_score

            before, after = (float(roc_auc_score(y, r.max(1))) for r in (ref, cand))
            out.update(image_auroc_reference=round(before, 6), image_auroc=round(after, 6),
                       auroc_drop_points=round(100.0 * (before - after), 4))
        return out

    def judge(self, parity: dict[str, Any], *, max_drop: float, atol_rel: float | None) -> str | None:
        """Refuse an image-AUROC drop above ``max_drop`` points (labelled good/defect images), and image scores
        that move by more than ``max_drop`` percent of the largest distance (``atol_rel`` of it for fp32
        exports, which must also keep patch distances within that): the threshold is in score units, so a
        shift of the scores is a shift of the verdicts, whatever the AUROC."""
        if "auroc_drop_points" in parity and parity["auroc_drop_points"] > max_drop:
            return (f"image AUROC drops {parity['auroc_drop_points']:.2f} points ({100 * parity['image_auroc_reference']:.2f}"
                    f" → {100 * parity['image_auroc']:.2f}) on {parity['images']} images, more than --max-drop {max_drop:g}")
        limit = max_drop / 100.0 if atol_rel is None else atol_rel
        if parity["max_image_score_rel_diff"] > limit:
            return (f"image scores differ from the original by up to {100 * parity['max_image_score_rel_diff']:.3g}% "
                    f"of the largest score, more than {100 * limit:.3g}% (the threshold is in score units)")
        if atol_rel is not None and parity["max_abs_diff"] > atol_rel * max(1.0, parity["scale"]):
            return f"patch distances differ by up to {parity['max_abs_diff']:.3g}, above {atol_rel:g} x scale"
        return None


def _source_size(source: str | None) -> tuple[int, int] | None:
    """(width, height) from the image header of a path, None when there is no readable path."""
    if source is None or not Path(source).is_file():
        return None
    from recog.io import image_size

    try:
        return image_size(source)
    except ImageError:
        return None


def _dataset_record(data: Any, paths: Sequence[Path], fitted: "AnomalyFit") -> dict[str, Any]:
    import hashlib

    h = hashlib.sha256()
    for p in sorted(paths):
        try:
            size = p.stat().st_size
        except OSError:
            size = -1
        h.update(f"{p.name}\t{size}\n".encode())
    return {"fingerprint": h.hexdigest(), "source": str(data), "counts": {"good": len(paths)},
            "skipped_files": len(fitted.skipped)}


def save_fit(fitted: "AnomalyFit", out: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Write a fitted model as a bundle (task ``anomaly``; threshold in ``calibration``, fit record in ``anomaly``)."""
    from recog.models.bundle import save_bundle

    manifest_extra = {"weights": fitted.weights, "calibration": fitted.calibration, "anomaly": fitted.record,
                      "metrics": {"held_out_good_max_score": round(float(fitted.held_out_scores.max()), 6)},
                      **(extra or {})}
    return save_bundle(out, fitted.model, labels=[], preprocessing=fitted.preprocessing, task="anomaly",
                       source_model=fitted.source, extra=manifest_extra)


def set_threshold(bundle: str | Path, threshold: float | str) -> "BundleManifest":
    """Adopt a threshold in ``bundle``: a number (score units), or ``"f1"`` / ``"false_reject_rate"`` for
    a candidate recorded by ``recog evaluate`` / by the fit. Returns the updated manifest.

    Example:
        >>> set_threshold("runs/parts/best", "f1")      # doctest: +SKIP
    """
    from recog.models.bundle import read_manifest, update_bundle
    from recog.tasks.base import require_task

    manifest = read_manifest(bundle)
    require_task(manifest, "anomaly", command="set_threshold")
    calibration = manifest.calibration
    candidates = dict(manifest.task_record.get("threshold_candidates") or {})
    if "false_reject_rate" not in candidates and calibration.get("rule") == "false_reject_rate":
        candidates["false_reject_rate"] = {k: v for k, v in calibration.items() if k != "method"}
    if isinstance(threshold, str):
        if threshold not in candidates:
            raise ConfigError(f"{bundle}: no {threshold!r} threshold is recorded (have: {', '.join(candidates) or 'none'}).",
                              hint="run `recog evaluate` on data with labelled defects to record an F1-optimal one")
        chosen = {"rule": threshold, **candidates[threshold]}
    else:
        if not float(threshold) > 0:
            raise ConfigError(f"threshold must be > 0, got {threshold!r}.")
        chosen = {"rule": "manual", "threshold": round(float(threshold), 6)}
    new = {"method": "anomaly-threshold", **{k: v for k, v in chosen.items() if k != "method"}}
    return update_bundle(bundle, updates={"calibration": new,
                                          "anomaly": {**manifest.task_record, "threshold_candidates": candidates}})
