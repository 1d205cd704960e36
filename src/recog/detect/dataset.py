"""Box datasets: images with ``[x1, y1, x2, y2]`` pixel boxes and class names, whatever the file format.

:class:`BoxDataset` is what every reader in :mod:`recog.detect.formats`
returns and every writer takes. It has the interface the trainer expects of
a dataset (``labels``, ``split``, ``has_splits``, ``with_splits``,
``fingerprint``, ``counts``, ``skipped``), so ``recog train boxes/ --task
detect`` goes through the same engine as classification.

Everything a reader found wrong is an :class:`Issue` (file, line when the
format has lines, kind, what was done about it). Readers never raise on bad
annotations: a box is clipped or dropped, an image is kept as a negative or
skipped, and the issue says which. Only a file that cannot be parsed at all
(not XML, not JSON) or a layout that cannot be recognised is an error.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "trainval": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test", "testing": "test"}

#: Issue kinds, and whether the issue removed data from training (``skipped``) or only informs.
ISSUE_KINDS = {
    "clipped": False,          # box partly outside the image: clipped to it
    "zero_area": True,         # box with no width or height: dropped
    "inverted": True,          # x2 < x1 or y2 < y1: dropped
    "unknown_class": True,     # class not in the label list: box dropped
    "normalized": True,        # coordinates look normalised (0-1) in a pixel format (or pixels in YOLO): image skipped
    "bad_line": True,          # a line / row / entry that does not parse: dropped
    "no_labels": False,        # an image without annotations: kept as a negative
    "missing_image": True,     # annotations whose image file does not exist: skipped
    "duplicate": True,         # a second annotation file for the same image: ignored
}


@dataclass(frozen=True)
class Issue:
    """One problem found while reading annotations.

    Attributes:
        path: the annotation file (or image) it concerns.
        line: 1-based line in ``path`` where the format has lines (YOLO, CSV, XML, JSON), else None.
        kind: one of :data:`ISSUE_KINDS`.
        message: what was wrong and what was done, in one sentence.
    """

    path: str
    line: int | None
    kind: str
    message: str

    @property
    def dropped(self) -> bool:
        """True when the issue removed a box or an image from the data."""
        return ISSUE_KINDS.get(self.kind, True)

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class BoxSample:
    """One image and its boxes.

    Attributes:
        path: the image file.
        boxes: ``(K, 4)`` float32 ``[x1, y1, x2, y2]`` in pixels of the image (``K`` may be 0: a negative).
        names: ``K`` class names, one per box.
        split: ``train`` / ``val`` / ``test`` or None.
        size: ``(width, height)`` declared by the annotation (or read from the image header), or None.
    """

    path: Path
    boxes: np.ndarray
    names: tuple[str, ...]
    split: str | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        object.__setattr__(self, "boxes", boxes)
        if len(boxes) != len(self.names):
            raise ValueError(f"{self.path}: {len(boxes)} boxes but {len(self.names)} class names")

    @property
    def label(self) -> str:
        """The most frequent class in the image ("" for a negative): for per-class split draws."""
        if not self.names:
            return ""
        values, counts = np.unique(np.array(self.names), return_counts=True)
        return str(values[counts.argmax()])

    def classes(self, labels: Sequence[str]) -> np.ndarray:
        """``(K,)`` int64 indices of the boxes' names in ``labels``."""
        index = {name: i for i, name in enumerate(labels)}
        return np.array([index[n] for n in self.names], dtype=np.int64)


@dataclass(frozen=True)
class BoxDataset:
    """Images with boxes, the label list, and what reading them found wrong.

    Attributes:
        root: the folder or annotation file the data came from.
        format: ``voc``, ``coco``, ``yolo`` or ``csv``.
        samples: every usable image, negatives included, in a stable order.
        labels: class names; a box's class index is its position here.
        issues: everything the reader reported (see :class:`Issue`).
    """

    root: Path
    format: str
    samples: tuple[BoxSample, ...]
    labels: tuple[str, ...]
    issues: tuple[Issue, ...] = field(default=())

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """``(where, reason)`` for every issue that removed data (the trainer lists these)."""
        return [(f"{i.path}:{i.line}" if i.line else i.path, i.message) for i in self.issues if i.dropped]

    @property
    def has_splits(self) -> bool:
        return any(s.split is not None for s in self.samples)

    @property
    def has_groups(self) -> bool:
        return False

    def split(self, name: str) -> list[BoxSample]:
        return [s for s in self.samples if s.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split or "all": {label: boxes}}`` (boxes per class, not images)."""
        out: dict[str, dict[str, int]] = {}
        for s in self.samples:
            per = out.setdefault(s.split or "all", {lab: 0 for lab in self.labels})
            for n in s.names:
                per[n] = per.get(n, 0) + 1
        return out

    def image_counts(self) -> dict[str, int]:
        """``{split or "all": images}``."""
        out: dict[str, int] = {}
        for s in self.samples:
            out[s.split or "all"] = out.get(s.split or "all", 0) + 1
        return out

    def fingerprint(self) -> str:
        """sha256 over (relative path, boxes, classes, split, file size) of every image."""
        h = hashlib.sha256()
        base = self.root if self.root.is_dir() else self.root.parent
        for s in sorted(self.samples, key=lambda s: str(s.path)):
            try:
                size = s.path.stat().st_size
            except OSError:
                size = -1
            h.update(f"{os.path.relpath(s.path, base)}\t{s.split}\t{size}\t{','.join(s.names)}\n".encode())
            h.update(np.round(s.boxes, 2).tobytes())
        return h.hexdigest()

    def with_samples(self, samples: Iterable[BoxSample]) -> "BoxDataset":
        return replace(self, samples=tuple(samples))

    def with_splits(self, *, val: float = 0.1, test: float = 0.0, seed: int = 0) -> "BoxDataset":
        """Draw missing ``val``/``test`` splits (seeded; images grouped by their most frequent class).

        A split that exists is never redrawn; with a ``train`` split and no ``val``, val is drawn from train.
        """
        present = {s.split for s in self.samples if s.split}
        rng = np.random.default_rng(seed)
        free = [int(i) for i in rng.permutation(len(self.samples)) if self.samples[i].split is None]
        n_test = int(round(len(free) * test)) if "test" not in present and len(free) >= 3 else 0
        assigned = dict.fromkeys(free[:n_test], "test")
        # val comes from the images still free, and from train when the data has train but no val
        pool = free[n_test:] + [int(i) for i in rng.permutation(len(self.samples)) if self.samples[i].split == "train"]
        n_val = max(1, int(round(len(pool) * val))) if "val" not in present and val > 0 and len(pool) >= 2 else 0
        assigned.update(dict.fromkeys(free[n_test:], "train"))
        assigned.update(dict.fromkeys(pool[:n_val], "val"))
        return self.with_samples(replace(s, split=assigned.get(i, s.split)) for i, s in enumerate(self.samples))

    def restrict(self, labels: Sequence[str]) -> "BoxDataset":
        """The same images with only boxes of ``labels`` (a model's), each dropped box an ``unknown_class`` issue."""
        keep = set(labels)
        issues = list(self.issues)
        samples = []
        for s in self.samples:
            mask = np.array([n in keep for n in s.names], dtype=bool)
            for n in sorted({n for n in s.names if n not in keep}):
                issues.append(Issue(str(s.path), None, "unknown_class",
                                    f"class {n!r} is not one of the model's labels ({', '.join(labels)}); "
                                    "its boxes were left out"))
            samples.append(replace(s, boxes=s.boxes[mask], names=tuple(n for n, k in zip(s.names, mask) if k)))
        return replace(self, samples=tuple(samples), labels=tuple(labels), issues=tuple(issues))


def box_sizes(samples: Iterable[BoxSample]) -> np.ndarray:
    """``sqrt(width * height)`` in pixels of every box."""
    sizes = [np.sqrt(np.clip(s.boxes[:, 2] - s.boxes[:, 0], 0, None) * np.clip(s.boxes[:, 3] - s.boxes[:, 1], 0, None))
             for s in samples]
    return np.concatenate(sizes) if sizes else np.zeros(0, np.float32)
