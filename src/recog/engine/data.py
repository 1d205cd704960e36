"""Training data in memory: decoded once, served as shuffled uint8 batches.

``ImageBatches`` holds ``(N, H, W, 3)`` uint8 images at the model's input
size and their label indices; augmentation and normalization happen per batch
on the training device (see :mod:`recog.data.augment`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from recog.data.dataset import Sample
from recog.data.loading import decode_samples
from recog.errors import DatasetError
from recog.types import Preprocessing


@dataclass
class ImageBatches:
    images: np.ndarray  # (N, H, W, 3) uint8
    targets: np.ndarray  # (N,) int64
    samples: list[Sample]
    failures: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.targets)

    def batches(self, batch_size: int, *, order: np.ndarray | None = None, drop_last: bool = False
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = np.arange(len(self)) if order is None else order
        stop = len(order) - (len(order) % batch_size if drop_last and len(order) > batch_size else 0)
        for start in range(0, stop, batch_size):
            idx = np.sort(order[start:start + batch_size])
            yield self.images[idx], self.targets[idx]


def decoded_size_gb(n: int, prep: Preprocessing) -> float:
    return n * prep.size[0] * prep.size[1] * 3 / 1e9


def load_split(samples: Sequence[Sample], labels: Sequence[str], prep: Preprocessing, *, strict: bool,
               threads: int, cache_gb: float, progress: Callable[[int], None] | None = None) -> ImageBatches:
    """Decode ``samples`` into memory; bad files are skipped and listed (or fatal when strict)."""
    need = decoded_size_gb(len(samples), prep)
    if need > cache_gb:
        raise DatasetError(
            f"{len(samples)} images at {prep.size[0]}x{prep.size[1]} need {need:.1f} GB decoded, over the "
            f"{cache_gb:g} GB in-memory cache.", hint="raise --cache-gb if the machine has the memory, "
            "or train at a smaller --image-size")
    index = {name: i for i, name in enumerate(labels)}
    images, kept, failures = decode_samples(samples, prep, threads=threads, strict=strict, progress=progress)
    targets = np.array([index[samples[i].label] for i in kept], dtype=np.int64)
    return ImageBatches(images, targets, [samples[i] for i in kept], failures)
