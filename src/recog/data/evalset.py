"""Small labelled image sets for calibration, parity checks and benchmarks.

Export, quantization, pruning and ``recog bench`` all need a few hundred real
images already preprocessed exactly as the model expects. This module turns a
class-per-folder tree (``DIR/<label>/*.jpg``, optionally under
``train/``/``val/``/``test/``) or a CSV manifest into one float32 array, with
the labels mapped to the bundle's label indices.

Decision: a folder whose label is not one of the bundle's labels is an error
(the accuracy would be meaningless), while a bundle label with no folder is
fine (a validation set may cover only some classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from recog.errors import DatasetError
from recog.types import Preprocessing


@dataclass(frozen=True)
class LabelledSet:
    """Preprocessed images and (optionally) their label indices.

    Attributes:
        x: float32 ``(N, 3, H, W)`` model input.
        y: int64 ``(N,)`` label indices into the bundle's labels, or None
            for unlabelled (synthetic) inputs.
        source: where the images came from (folder, or ``"synthetic"``).
        names: file names, in the order of ``x``.
        skipped: ``(path, reason)`` of files that could not be decoded.
    """

    x: np.ndarray
    y: np.ndarray | None
    source: str
    names: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def labelled(self) -> bool:
        return self.y is not None

    def head(self, n: int) -> "LabelledSet":
        """The first ``n`` images."""
        return LabelledSet(self.x[:n], None if self.y is None else self.y[:n], self.source, self.names[:n],
                           self.skipped)

    def describe(self) -> dict:
        return {"source": self.source, "images": len(self), "labelled": self.labelled,
                "skipped": len(self.skipped)}


def load_labelled(path: str | Path, labels: Sequence[str], prep: Preprocessing, *, split: str | None = None,
                  limit: int | None = None, seed: int = 0, threads: int = 4) -> LabelledSet:
    """Read and preprocess a labelled image set for a bundle.

    Args:
        path: class-per-folder tree or CSV manifest (see :mod:`recog.data`).
        labels: the bundle's labels, in output order.
        prep: the bundle's preprocessing record.
        split: ``"train"``, ``"val"``, ``"test"`` to keep only that split when
            the set has splits; ignored when it has none.
        limit: keep at most this many images, drawn stratified by label and
            seeded, so small sets still cover every class.
        seed: seed of that draw.
        threads: decoding threads.

    Returns:
        A :class:`LabelledSet` with ``y`` set.

    Raises:
        DatasetError: no images, or a folder label that the model does not
            have (the message lists both label sets).
    """
    from recog.data import load_dataset
    from recog.data.dataset import require_model_labels
    from recog.data.decode import decode_images
    from recog.data.transforms import normalize

    ds = load_dataset(path)
    samples = list(ds.samples)
    source = str(path)
    if split is not None and ds.has_splits:
        chosen = [s for s in samples if s.split == split]
        if chosen:
            samples, source = chosen, f"{path} ({split} split)"
    require_model_labels(samples, labels, path)
    if limit is not None and len(samples) > limit:
        samples = _stratified(samples, limit, seed)
    if not samples:
        raise DatasetError(f"{path}: no images to use.", hint="add images under DIR/<label>/")
    arrays, kept, failures = decode_images([s.path for s in samples], prep, threads=threads)
    if not kept:
        raise DatasetError(f"{path}: none of {len(samples)} images could be decoded "
                           f"(first: {failures[0][1] if failures else '?'}).")
    index = {name: i for i, name in enumerate(labels)}
    y = np.array([index[samples[i].label] for i in kept], dtype=np.int64)
    x = normalize(arrays, prep)
    return LabelledSet(x=x, y=y, source=source, names=tuple(str(samples[i].path) for i in kept),
                       skipped=tuple(failures))


def _stratified(samples: list, limit: int, seed: int) -> list:
    """``limit`` samples, round-robin over labels in a seeded order (stable output order)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_label.setdefault(s.label, []).append(i)
    queues = [list(rng.permutation(idx)) for _, idx in sorted(by_label.items())]
    picked: list[int] = []
    while len(picked) < limit and any(queues):
        for q in queues:
            if q and len(picked) < limit:
                picked.append(int(q.pop()))
    return [samples[i] for i in sorted(picked)]


def synthetic(prep: Preprocessing, n: int = 16, *, seed: int = 0) -> LabelledSet:
    """Unlabelled random images (uniform uint8 pixels, normalized): parity checks without data.

    Example:
        >>> synthetic(Preprocessing(size=(32, 32)), 4).x.shape
        (4, 3, 32, 32)
    """
    from recog.data.transforms import normalize

    h, w = prep.size
    pixels = np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    return LabelledSet(x=normalize(pixels, prep), y=None, source="synthetic")


def batched(x: np.ndarray, fn, batch_size: int = 32) -> np.ndarray:
    """Apply ``fn`` (``(B, ...) -> (B, C)``) over ``x`` in batches and concatenate."""
    outs = [np.asarray(fn(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0), np.float32)
