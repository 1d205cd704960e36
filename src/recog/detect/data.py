"""Training batches for detection: images decoded once at the input size, boxes scaled and padded.

:func:`load_box_split` decodes a split's images into memory (the ``stretch``
resize to the model input) and scales each image's boxes by the same
factors; the targets are one ``(N, M, 5)`` float32 array of rows
``[x1, y1, x2, y2, class]`` in input pixels, padded with class ``-1`` (the
trainer moves one array per batch, whatever the task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from recog.data.batches import ImageBatches
from recog.detect.dataset import BoxSample
from recog.types import Preprocessing

#: largest batch the validation pass decodes at once (the trainer asks for 256, sized for 224-px classifiers).
MAX_EVAL_BATCH = 32


def pad_targets(samples: Sequence[BoxSample], labels: Sequence[str], input_size: tuple[int, int],
                sizes: Sequence[tuple[int, int]]) -> np.ndarray:
    """``(N, M, 5)`` targets in input pixels (``M`` = most boxes in one image, at least 1)."""
    m = max([1] + [len(s.boxes) for s in samples])
    out = np.zeros((len(samples), m, 5), np.float32)
    out[..., 4] = -1
    w, h = input_size
    for i, (s, (ow, oh)) in enumerate(zip(samples, sizes)):
        k = len(s.boxes)
        if k:
            out[i, :k, :4] = s.boxes * np.array([w / ow, h / oh, w / ow, h / oh], np.float32)
            out[i, :k, 4] = s.classes(labels)
    return out


@dataclass
class BoxBatches(ImageBatches):
    """A decoded split (``images`` ``(N, H, W, 3)`` uint8, ``targets`` ``(N, M, 5)``) as the trainer expects."""

    def batches(self, batch_size: int, *, order: np.ndarray | None = None, drop_last: bool = False
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        size = min(batch_size, MAX_EVAL_BATCH) if order is None else batch_size
        for images, targets in super().batches(size, order=order, drop_last=drop_last):
            # boxes are packed first, so a batch needs only its own largest count of rows
            yield images, targets[:, :max(1, int((targets[..., 4] >= 0).sum(1).max()))]


def load_box_split(samples: Sequence[BoxSample], labels: Sequence[str], prep: Preprocessing, *, strict: bool,
                   threads: int, progress: Callable[[int], None] | None = None) -> BoxBatches:
    """Decode ``samples`` at ``prep``'s size (bad files skipped and listed, or fatal when ``strict``)."""
    from recog.data.decode import decode_images

    samples = list(samples)
    images, kept, failures = decode_images([s.path for s in samples], prep, threads=threads, strict=strict,
                                           progress=progress)
    kept_samples = [samples[i] for i in kept]
    h, w = prep.size
    sizes = [s.size or _size_of(s) for s in kept_samples]
    return BoxBatches(images, pad_targets(kept_samples, labels, (w, h), sizes), kept_samples, failures)


def _size_of(sample: BoxSample) -> tuple[int, int]:
    from recog.io import load_image

    return load_image(sample.path).size
