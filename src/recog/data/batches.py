"""Training data served as shuffled uint8 batches at the model's input size.

Two sources with one interface (``len``, ``targets``, ``failures``,
``batches``):

* :class:`ImageBatches`: every image decoded once into memory, when the
  decoded split fits in ``cache_gb``;
* :class:`StreamingBatches`: decoded again each epoch in a thread pool, one
  batch ahead of the training step, for data larger than that.

Augmentation and normalization happen per batch on the training device (see
:mod:`recog.data.augment`). Files are decoded by :mod:`recog.data.decode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from recog.data.dataset import Sample
from recog.data.decode import decode_images, find_bad_files, unreadable_error
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


class StreamingBatches:
    """Decodes each batch from disk when it is needed, the next one while the current trains.

    A file that fails to decode is left out of its batch and listed in
    ``failures`` (once); nothing stops mid-epoch.
    """

    def __init__(self, samples: Sequence[Sample], targets: np.ndarray, prep: Preprocessing, threads: int) -> None:
        self.samples = list(samples)
        self.targets = targets
        self.prep = prep
        self.threads = max(1, threads)
        self.failures: list[tuple[str, str]] = []
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.targets)

    def _decode(self, pool: ThreadPoolExecutor, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.array([i for i in idx.tolist() if i not in self._bad], dtype=np.int64)
        images, kept, failures = decode_images([self.samples[i].path for i in idx], self.prep, pool=pool)
        self._bad.update(set(idx.tolist()) - set(idx[kept].tolist()))
        self.failures.extend(failures)
        return images, self.targets[idx[kept]]

    def batches(self, batch_size: int, *, order: np.ndarray | None = None, drop_last: bool = False
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = np.arange(len(self)) if order is None else order
        stop = len(order) - (len(order) % batch_size if drop_last and len(order) > batch_size else 0)
        chunks = [np.sort(order[i:i + batch_size]) for i in range(0, stop, batch_size)]
        with ThreadPoolExecutor(max_workers=self.threads) as pool, ThreadPoolExecutor(max_workers=1) as ahead:
            pending = ahead.submit(self._decode, pool, chunks[0]) if chunks else None
            for k in range(len(chunks)):
                images, targets = pending.result()
                pending = ahead.submit(self._decode, pool, chunks[k + 1]) if k + 1 < len(chunks) else None
                if len(targets):
                    yield images, targets


def decoded_size_gb(n: int, prep: Preprocessing) -> float:
    return n * prep.size[0] * prep.size[1] * 3 / 1e9


def load_split(samples: Sequence[Sample], labels: Sequence[str], prep: Preprocessing, *, strict: bool,
               threads: int, cache_gb: float, progress: Callable[[int], None] | None = None
               ) -> ImageBatches | StreamingBatches:
    """Decode ``samples`` into memory when they fit in ``cache_gb``, else stream them.

    Bad files are skipped and listed (or fatal when ``strict``: streamed data
    is then checked in full before training starts).
    """
    index = {name: i for i, name in enumerate(labels)}
    if decoded_size_gb(len(samples), prep) > cache_gb:
        bad = find_bad_files([s.path for s in samples], threads=threads, progress=progress) if strict else []
        if bad:
            raise unreadable_error(bad)
        targets = np.array([index[s.label] for s in samples], dtype=np.int64)
        return StreamingBatches(samples, targets, prep, threads)
    images, kept, failures = decode_images([s.path for s in samples], prep, threads=threads, strict=strict,
                                           progress=progress)
    targets = np.array([index[samples[i].label] for i in kept], dtype=np.int64)
    return ImageBatches(images, targets, [samples[i] for i in kept], failures)
