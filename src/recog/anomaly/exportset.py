"""Images for ``recog export`` on anomaly bundles: int8 calibration and the parity check.

An anomaly bundle has no class folders, so the classification rule
(:mod:`recog.runtime.export`) becomes:

* ``--calibration DIR``: good images (every image under ``DIR``, as
  ``recog train DIR --task anomaly`` reads them; a CSV with ``path[,label]``);
* ``--validation DIR``: the evaluation layout (``DIR/good`` + ``DIR/<defect
  type>``, or ``DIR/test/...``, or a CSV ``path,label``, as ``recog
  evaluate`` reads it), then ``y`` is 0 = good, 1 = defect and
  :meth:`recog.tasks.anomaly.Anomaly.parity` adds the image AUROC before and
  after; a plain folder of good images is read unlabelled;
* no ``--validation``: the calibration images, else the held-out good images
  the fit recorded (``anomaly.held_out``) where they still exist, else random
  pixels (parity of the patch distances only; random pixels are far from every
  good patch, so their distances are larger than real ones).

At most ``validation_size`` / ``calibration_size`` images, spread evenly over
the sorted list (deterministic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recog.errors import ExportError


def _evenly(items: list, limit: int) -> list:
    if len(items) <= limit:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit)]


def image_set(paths: Sequence[Path], labels: Sequence[int] | None, manifest: Any, source: str, limit: int) -> Any:
    """A :class:`~recog.data.evalset.LabelledSet` of at most ``limit`` of ``paths``, preprocessed as the bundle's."""
    from recog.data.decode import decode_images
    from recog.data.evalset import LabelledSet
    from recog.data.transforms import normalize
    from recog.errors import DatasetError

    order = _evenly(list(range(len(paths))), limit)
    chosen = [paths[i] for i in order]
    arrays, kept, failures = decode_images(chosen, manifest.preprocessing, threads=4)
    if not kept:
        raise DatasetError(f"{source}: none of {len(chosen)} images could be decoded "
                           f"(first: {failures[0][1] if failures else '?'}).")
    y = None if labels is None else np.array([labels[order[i]] for i in kept], dtype=np.int64)
    return LabelledSet(normalize(arrays, manifest.preprocessing), y, source, tuple(str(chosen[i]) for i in kept),
                       tuple(failures))


def _has_eval_layout(data: Path) -> bool:
    return data.suffix.lower() == ".csv" or (data / "good").is_dir() or (data / "test" / "good").is_dir()


def labelled_set(data: str | Path, manifest: Any, limit: int) -> Any:
    """Good (0) and defect (1) images of an evaluation layout; a plain folder of good images, unlabelled."""
    from recog.anomaly.evalset import load_eval_set
    from recog.anomaly.fit import good_images

    data = Path(data)
    if _has_eval_layout(data):
        items, split = load_eval_set(data)
        goods = [it for it in items if not it.defect]
        bad = [it for it in items if it.defect]
        if not goods or not bad:
            return image_set([it.path for it in items], None, manifest, f"{data} ({split})", limit)
        take = min(len(goods), max(limit // 2, limit - len(bad)))  # both kinds kept when the limit cuts
        items = _evenly(goods, take) + _evenly(bad, max(1, limit - take))
        return image_set([it.path for it in items], [int(it.defect) for it in items], manifest,
                         f"{data} ({split})", len(items))
    return image_set(good_images(data), None, manifest, str(data), limit)


def calibration_set(manifest: Any, calibration: str | Path | None, limit: int) -> Any:
    """Good images for int8 calibration; an error naming ``--calibration`` when none were given."""
    from recog.anomaly.fit import good_images

    if calibration is None:
        raise ExportError("static int8 quantization needs calibration images; none were given.",
                          hint="pass --calibration DIR: a few hundred good images, e.g. the training folder")
    return image_set(good_images(calibration), None, manifest, str(calibration), limit)


def export_sets(manifest: Any, calibration: str | Path | None, validation: str | Path | None, *,
                calibration_size: int, validation_size: int, need_calibration: bool) -> tuple[Any, Any]:
    """``(calibration set or None, validation set)`` for an anomaly bundle's export (see the module docstring)."""
    from recog.data.evalset import synthetic

    calib = calibration_set(manifest, calibration, calibration_size) if need_calibration else None
    if validation is not None:
        return calib, labelled_set(validation, manifest, validation_size)
    if calib is not None:
        return calib, calib.head(validation_size)
    held = [Path(p) for p in manifest.task_record.get("held_out") or [] if Path(p).is_file()]
    if held:
        return calib, image_set(held, None, manifest, "held-out good images of the fit", validation_size)
    return calib, synthetic(manifest.preprocessing, 8)
