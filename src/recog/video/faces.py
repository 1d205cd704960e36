"""Faces per frame: dlib's face detector (:mod:`recog.faces`) as the model of a video run.

The video loop asks three things of its model: ``predict(frame, **options)`` returning a typed
result, ``manifest.task`` and ``labels``. :class:`FaceFrameModel` answers them for faces: each
frame's faces become a :class:`~recog.detect.result.Detections` labelled ``face``, so they are
drawn, tracked (``--track``), counted and streamed like any detector's boxes.

``recog video faces SOURCE`` runs it: the name ``faces`` (when no folder of that name exists) the
way ``recog.load`` takes the names of ready presets. With a collection (``--collection NAME``, the
persistent face store of ``recog faces``) each face is also identified: its box is labelled with
the enrolled person within the collection's threshold, else ``unknown``; tracks then follow faces
whoever they are and take the identity their frames gave most often
(:class:`~recog.video.tracker.ByteTracker` ``by_class=False``), so a face misread in one frame
neither splits its track nor renames it. Scores are the HOG detector's SVM margin
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

#: The label of a face no one in the collection matches.
UNKNOWN = "unknown"


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
        collection: identify each face against this collection of the face store (labels: the
            collection's people and ``unknown``); None: label every face ``face``.
        db: the face store (default ``$RECOG_FACES_DB`` or ``~/.recog/faces.db``).
        threshold: largest embedding distance of a match (default: the collection's).

    Raises:
        NotFoundError: ``collection`` is not in the store (the message lists those that are).

    Example:
        >>> FaceFrameModel().predict(frame).to_dict()["counts"]          # doctest: +SKIP
        {'face': 2}
        >>> FaceFrameModel(collection="office").predict(frame).labels     # doctest: +SKIP
        ['Ada Lovelace', 'unknown']
    """

    def __init__(self, *, detector: str = "hog", upsample: int = 1, collection: str | None = None,
                 db: str | Path | None = None, threshold: float | None = None) -> None:
        from recog.faces.analyzer import FaceAnalyzer

        self.analyzer = FaceAnalyzer(detector=detector, upsample=upsample)
        self.recognizer, self.collection, self.threshold = None, collection, threshold
        self.labels: tuple[str, ...] = ("face",)
        if collection is not None:
            from recog.faces.recognizer import FaceRecognizer

            self.recognizer = FaceRecognizer(db, analyzer=self.analyzer)
            people = [p.name for p in self.recognizer.people(collection)]  # raises NotFoundError first
            self.labels = (UNKNOWN, *people)
        self.track_by_class = collection is None
        what = f"{detector} detector" + (f", identified in collection {collection!r}" if collection else "")
        self.manifest = FrameModelInfo("detect", Path(f"{FACES_MODEL} ({what})"))

    def predict(self, image: np.ndarray, *, min_score: float | None = None, **_: Any) -> Any:
        """Faces of one ``(H, W, 3)`` uint8 RGB frame, largest first, scored in (0, 1), labelled
        ``face`` or (with a collection) who they are."""
        from recog.detect.result import Detections

        if self.recognizer is None:
            found, people = list(self.analyzer.detect(image)), None
        else:  # detect, embed and search the collection in one call (one index lookup per frame)
            faces = self.recognizer.identify(image, collection=self.collection, threshold=self.threshold).faces
            found = [f.face for f in faces]
            people = [f.matches[0].person if f.matches else UNKNOWN for f in faces]
        boxes = np.array([f.box for f in found], np.float32).reshape(-1, 4)
        scores = 1.0 / (1.0 + np.exp(-np.array([f.score for f in found], np.float64)))
        keep = np.flatnonzero(scores >= (min_score or 0.0))
        ids = np.zeros(len(keep), np.int64) if people is None else self._label_ids([people[i] for i in keep])
        return Detections(boxes[keep], scores[keep], ids, [self.labels[i] for i in ids],
                          image_size=(image.shape[1], image.shape[0]), all_labels=self.labels)

    def _label_ids(self, people: list[str]) -> np.ndarray:
        """Index into :attr:`labels` of each person (0: unknown); someone enrolled while the video runs is added."""
        for person in people:
            if person not in self.labels:
                self.labels = (*self.labels, person)
        return np.array([self.labels.index(p) for p in people], np.int64)
