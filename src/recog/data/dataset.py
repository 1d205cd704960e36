"""Image classification datasets.

Two layouts are read:

* **Class folders**: ``DIR/<label>/*.jpg``, or with split folders
  ``DIR/{train,val,test}/<label>/*.jpg``.
* **CSV manifest**: a file with a header ``path,label[,split][,group]``;
  paths are relative to the CSV's folder. ``split`` is train/val/test;
  ``group`` (any string, e.g. a site or skin tone) enables per-group metrics.

When no split is given, :meth:`Dataset.with_splits` makes a seeded,
stratified one.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

from recog.data.manifest import open_source, read_rows, resolve
from recog.errors import DatasetError
from recog.io import IMAGE_EXTENSIONS

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                  "test": "test", "testing": "test"}


@dataclass(frozen=True)
class Sample:
    """One labelled image. ``split`` and ``group`` may be None."""

    path: Path
    label: str
    split: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A list of samples and the sorted label set.

    Attributes:
        root: the folder or CSV the samples came from.
        samples: every sample, in a stable order.
        labels: class names, sorted; label index = position.
        skipped: files seen but not used (``(path, reason)``), e.g. a
            non-image extension in a class folder.
    """

    root: Path
    samples: tuple[Sample, ...]
    labels: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def has_splits(self) -> bool:
        return any(s.split is not None for s in self.samples)

    @property
    def has_groups(self) -> bool:
        return any(s.group is not None for s in self.samples)

    def split(self, name: str) -> list[Sample]:
        """Samples of one split (``train``, ``val``, ``test``)."""
        return [s for s in self.samples if s.split == name]

    def label_index(self, label: str) -> int:
        return self.labels.index(label)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split or "all": {label: count}}``."""
        out: dict[str, dict[str, int]] = {}
        for s in self.samples:
            per = out.setdefault(s.split or "all", {})
            per[s.label] = per.get(s.label, 0) + 1
        return {k: {lab: v.get(lab, 0) for lab in self.labels} for k, v in out.items()}

    def imbalance(self, split: str | None = None) -> float:
        """Largest over smallest class count (in ``split``, or over all samples)."""
        counts = Counter(s.label for s in self.samples if split is None or s.split == split)
        present = [counts.get(lab, 0) for lab in self.labels]
        return max(present) / max(1, min(present)) if present else 1.0

    def fingerprint(self) -> str:
        """sha256 over (relative path, label, split, size in bytes) of every sample."""
        h = hashlib.sha256()
        for s in sorted(self.samples, key=lambda s: str(s.path)):
            try:
                size = s.path.stat().st_size
            except OSError:
                size = -1
            rel = os.path.relpath(s.path, self.root if self.root.is_dir() else self.root.parent)
            h.update(f"{rel}\t{s.label}\t{s.split}\t{size}\n".encode())
        return h.hexdigest()

    def with_samples(self, samples: Iterable[Sample]) -> "Dataset":
        return replace(self, samples=tuple(samples))

    def with_splits(self, *, val: float = 0.1, test: float = 0.0, seed: int = 0) -> "Dataset":
        """Draw missing ``val``/``test`` splits, stratified by label and seeded.

        Samples with no split are divided into train/val/test by the given
        fractions; when the data has a ``train`` split but no ``val``, the val
        fraction is drawn from ``train``. A split that already exists is
        never redrawn. Classes with fewer than 2 candidates stay in train. The
        same data and seed always give the same split.
        """
        import numpy as np

        present = {s.split for s in self.samples if s.split}
        want_val = val if "val" not in present else 0.0
        want_test = test if "test" not in present else 0.0
        rng = np.random.default_rng(seed)
        by_label: dict[str, list[int]] = {}
        for i, s in enumerate(self.samples):
            if s.split is None or (s.split == "train" and want_val > 0):
                by_label.setdefault(s.label, []).append(i)
        assigned: dict[int, str] = {}
        for label in self.labels:
            idx = by_label.get(label, [])
            order = [idx[j] for j in rng.permutation(len(idx))]
            n = len(order)
            n_test = int(round(n * want_test)) if n >= 2 else 0
            n_val = max(1, int(round(n * want_val))) if n >= 2 and want_val > 0 else 0
            if n_val + n_test >= n:
                n_val, n_test = min(n_val, max(0, n - 1)), 0
            for k, i in enumerate(order):
                split = "test" if k < n_test else "val" if k < n_test + n_val else "train"
                if split == "test" and self.samples[i].split == "train":
                    split = "train"
                assigned[i] = split
        return self.with_samples(replace(s, split=assigned.get(i, s.split)) for i, s in enumerate(self.samples))


def cross_split_copies(splits: dict[str, Sequence[Path]]) -> list[tuple[Path, Path]]:
    """Pairs of files with identical bytes in different splits (leakage: the test sees training images).

    Cheap on large data: only files whose sizes match one in another split are hashed. Unreadable
    files are left to the decoder's report. Near-duplicates (re-encoded, resized) need ``recog audit``.
    """
    from recog.io.digest import sha256_file

    by_size: dict[int, list[tuple[str, Path]]] = {}
    for split, paths in splits.items():
        for p in paths:
            try:
                by_size.setdefault(os.stat(p).st_size, []).append((split, Path(p)))
            except OSError:
                continue
    pairs: list[tuple[Path, Path]] = []
    for group in by_size.values():
        if len({split for split, _ in group}) < 2:
            continue
        first: dict[str, tuple[str, Path]] = {}
        for split, p in group:
            try:
                digest = sha256_file(p)
            except OSError:
                continue
            seen = first.setdefault(digest, (split, p))
            if seen[0] != split:
                pairs.append((seen[1], p))
    return pairs


def require_model_labels(samples: Iterable[Sample], labels: Sequence[str], where: str | Path) -> None:
    """Refuse samples whose label the model does not have: their accuracy would mean nothing.

    A model label with no samples is fine (a test set may cover some classes only).
    """
    unknown = sorted({s.label for s in samples} - set(labels))
    if unknown:
        shown = ", ".join(list(labels)[:10]) + ("..." if len(labels) > 10 else "")
        raise DatasetError(f"{where}: labels {unknown[:10]} are not among the model's labels ({shown}).",
                           hint="use data whose class folders (or manifest labels) are named like the model's labels")


def load_dataset(path: str | Path) -> Dataset:
    """Read a class-folder tree or a CSV manifest.

    Raises:
        DatasetError: missing path, no images, fewer than 2 classes in a
            folder tree, or a malformed manifest; the message says why.
    """
    path, is_manifest = open_source(path, hint="pass a folder with one sub-folder per class, or a CSV manifest "
                                           "(path,label)")
    if is_manifest:
        return _from_manifest(path)
    return _from_folders(path)


def _is_image_name(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS


def _scan_class_folders(root: Path, split: str | None) -> tuple[list[Sample], list[tuple[str, str]]]:
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(cls_dir.rglob("*")):
            if not f.is_file() or any(part.startswith(".") for part in f.relative_to(cls_dir).parts):
                continue
            if _is_image_name(f):
                samples.append(Sample(f, cls_dir.name, split))
            else:
                skipped.append((str(f), f"not an image file extension ({f.suffix or 'none'})"))
    return samples, skipped


def _from_folders(root: Path) -> Dataset:
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    split_dirs = {(_SPLIT_ALIASES[k]): v for k, v in subdirs.items() if k in _SPLIT_ALIASES}
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    if split_dirs:
        others = sorted(set(subdirs) - set(k for k in subdirs if k in _SPLIT_ALIASES))
        if others:
            raise DatasetError(
                f"{root}: mixes split folders ({', '.join(sorted(split_dirs))}) with other folders "
                f"({', '.join(others[:5])}).", hint="put every class folder inside train/ (and val/, test/)")
        for split, d in sorted(split_dirs.items()):
            s, k = _scan_class_folders(d, split)
            samples += s
            skipped += k
    else:
        samples, skipped = _scan_class_folders(root, None)
    if not samples:
        raise DatasetError(f"{root}: found no images ({', '.join(IMAGE_EXTENSIONS)}) in class sub-folders.",
                           hint="lay the data out as DIR/<class>/<image> or DIR/train/<class>/<image>")
    labels = tuple(sorted({s.label for s in samples}))
    return Dataset(root=root, samples=tuple(samples), labels=labels, skipped=tuple(skipped))


def _from_manifest(path: Path) -> Dataset:
    samples: list[Sample] = []
    for lineno, row in read_rows(path, required=("path", "label"), hint="first line: path,label[,split][,group]"):
        split = row.get("split", "").lower() or None
        if split is not None:
            if split not in _SPLIT_ALIASES:
                raise DatasetError(f"{path}:{lineno}: split {split!r} is not one of train, val, test.")
            split = _SPLIT_ALIASES[split]
        samples.append(Sample(resolve(path, row["path"]), row["label"], split, row.get("group") or None))
    labels = tuple(sorted({s.label for s in samples}))
    return Dataset(root=path, samples=tuple(samples), labels=labels)
