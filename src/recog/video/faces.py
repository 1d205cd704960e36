"""Faces per frame: dlib's face detector (:mod:`recog.faces`) as the model of a video run.

The video loop asks three things of its model: ``predict(frame, **options)`` returning a typed
result, ``manifest.task`` and ``labels``. :class:`FaceFrameModel` answers them for faces: each
frame's faces become a :class:`~recog.detect.result.Detections` labelled ``face``, so they are
drawn, tracked (``--track``), counted and streamed like any detector's boxes.

``recog video faces SOURCE`` runs it: the name ``faces`` (when no folder of that name exists) the
way ``recog.load`` takes the names of ready presets. Scores are the HOG detector's SVM margin
mapped to (0, 1) by a logistic, so dlib's own threshold (margin 0) is 0.5 and ``--min-score`` and
``--track-score`` read as for any detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The model name ``recog video`` reads as "detect faces" when no folder of that name exists.
FACES_MODEL = "faces"


@dataclass(frozen=True)
class FrameModelInfo:
    """What the video loop and the CLI's task checks read of a model that is not a bundle."""

    task: str
    path: Path


class FaceFrameModel:
    """Faces in each frame as :class:`~recog.detect.result.Detections` (label ``face``).

    Args:
        detector: ``"hog"`` (fast, frontal) or ``"cnn"`` (more poses, ~15x slower); see
            :class:`recog.faces.analyzer.DetectOptions`.
        upsample: image doublings before detection (1 finds faces of about 40 px).

    Example:
        >>> FaceFrameModel().predict(frame).to_dict()["counts"]          # doctest: +SKIP
        {'face': 2}
    """

    labels = ("face",)

    def __init__(self, *, detector: str = "hog", upsample: int = 1) -> None:
        from recog.faces.analyzer import FaceAnalyzer

        self.analyzer = FaceAnalyzer(detector=detector, upsample=upsample)
        self.manifest = FrameModelInfo("detect", Path(f"{FACES_MODEL} ({detector} detector)"))

    def predict(self, image: np.ndarray, *, min_score: float | None = None, **_: Any) -> Any:
        """Faces of one ``(H, W, 3)`` uint8 RGB frame, largest first, scored in (0, 1)."""
        from recog.detect.result import Detections

        found = self.analyzer.detect(image)
        boxes = np.array([f.box for f in found], np.float32).reshape(-1, 4)
        scores = 1.0 / (1.0 + np.exp(-np.array([f.score for f in found], np.float64)))
        keep = scores >= (min_score or 0.0)
        n = int(keep.sum())
        return Detections(boxes[keep], scores[keep], np.zeros(n, np.int64), self.labels * n,
                          image_size=(image.shape[1], image.shape[0]), all_labels=self.labels)
