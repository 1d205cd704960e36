"""Images with boxes for ``recog export`` on detect bundles: int8 calibration and the mAP-drop check.

The same rule as classification (:mod:`recog.runtime.export`): calibration
uses the ``train`` split of ``--calibration`` (else all of it); the check
uses ``--validation``, else the ``val`` (or ``test``) split of the
calibration data, else the calibration images, else random pixels (then
only score parity can be judged). ``y`` of the returned set is the padded
``(N, M, 5)`` ground truth in model-input pixels, which
:meth:`recog.tasks.detect.Detect.parity` turns into mAP@0.5 before and after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from recog.errors import ExportError


def box_set(data: str | Path, manifest: Any, splits: Sequence[str | None], limit: int) -> Any:
    """A :class:`~recog.data.evalset.LabelledSet` of at most ``limit`` images of the first split present."""
    from recog.data.evalset import LabelledSet
    from recog.data.transforms import normalize
    from recog.detect.data import load_box_split
    from recog.detect.formats import load_boxes

    ds = load_boxes(data).restrict(manifest.labels)
    name = next((s for s in splits if s is None or ds.split(s)), None)
    samples = list(ds.samples) if name is None else ds.split(name)
    if len(samples) > limit:  # evenly spread, deterministic
        samples = [samples[int(i)] for i in np.linspace(0, len(samples) - 1, limit)]
    batches = load_box_split(samples, manifest.labels, manifest.preprocessing, strict=False, threads=4)
    return LabelledSet(normalize(batches.images, manifest.preprocessing), batches.targets,
                       f"{data} ({name or 'all'})", tuple(str(s.path) for s in batches.samples),
                       tuple(batches.failures))


def export_sets(manifest: Any, calibration: str | Path | None, validation: str | Path | None, *,
                calibration_size: int, validation_size: int, need_calibration: bool) -> tuple[Any, Any]:
    """``(calibration set or None, validation set)`` for a detect bundle's export."""
    from recog.data.evalset import synthetic

    calib = None
    if need_calibration:
        if calibration is None:
            raise ExportError("static int8 quantization needs calibration images; none were given.",
                              hint="pass --calibration DATA: box annotations (VOC, COCO, YOLO, CSV) of a few hundred "
                                   "representative images, e.g. the training data")
        calib = box_set(calibration, manifest, ("train", None), calibration_size)
    source = validation if validation is not None else calibration
    if source is None:
        return calib, synthetic(manifest.preprocessing, 16)
    return calib, box_set(source, manifest, ("val", "test", None), validation_size)
