"""The typed detection result: :class:`Detections`, one per image.

Boxes are ``[x1, y1, x2, y2]`` in pixels of the original image (after EXIF
rotation); ``to_dict()`` gives the JSON the CLI, the Python API and the HTTP
API share: ``boxes``, ``scores``, ``class_ids``, ``labels``, ``counts``
(objects per class, for counting cells or stock), ``image_size`` and
``source``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Objects found in one image, highest score first; validated on construction, indexable.

    Attributes:
        boxes: ``(K, 4)`` float ``[x1, y1, x2, y2]`` pixels of the original image.
        scores: ``(K,)`` confidences in [0, 1].
        class_ids: ``(K,)`` indices into the model's labels.
        labels: ``K`` class names.
        image_size: ``(width, height)`` of the frame the boxes are in.
        source: the input's name (a path), if any.

    Example:
        >>> d = Detections(np.array([[1, 2, 30, 40], [5, 5, 9, 9.]]), np.array([.9, .4]), np.array([0, 1]),
        ...                ("cell", "dust"), image_size=(64, 48))
        >>> len(d), d.counts, len(d[d.scores > 0.5])
        (2, {'cell': 1, 'dust': 1}, 1)
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: tuple[str, ...]
    image_size: tuple[int, int] | None = None
    source: str | None = None
    all_labels: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", ids)
        object.__setattr__(self, "labels", tuple(self.labels))
        k = len(boxes)
        if not (len(scores) == len(ids) == len(self.labels) == k):
            raise ValueError(f"Detections: {k} boxes, {len(scores)} scores, {len(ids)} class ids and "
                             f"{len(self.labels)} labels; each box needs one of each")
        if k and (not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1])):
            raise ValueError("Detections.boxes must be finite [x1, y1, x2, y2] with x2 >= x1 and y2 >= y1")
        if k and (np.any(scores < 0) or np.any(scores > 1) or not np.all(np.isfinite(scores))):
            raise ValueError("Detections.scores must be in [0, 1]")
        if k and np.any(ids < 0):
            raise ValueError("Detections.class_ids must be >= 0")

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> "Detections":
        """A subset: a boolean mask, an index array, a slice or one position."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self))[index]
        return Detections(self.boxes[idx], self.scores[idx], self.class_ids[idx],
                          tuple(self.labels[i] for i in np.atleast_1d(idx)), self.image_size, self.source,
                          self.all_labels)

    @property
    def counts(self) -> dict[str, int]:
        """Objects per class (every model label, zeros included, when the labels are known)."""
        out = {name: 0 for name in self.all_labels}
        for name in self.labels:
            out[name] = out.get(name, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"boxes": [[round(float(v), 1) for v in b] for b in self.boxes],
                               "scores": [round(float(s), 4) for s in self.scores],
                               "class_ids": [int(c) for c in self.class_ids], "labels": list(self.labels),
                               "counts": self.counts}
        if self.image_size is not None:
            out["image_size"] = [int(v) for v in self.image_size]
        if self.source is not None:
            out["source"] = self.source
        return out
