"""Labelled test data for anomaly evaluation: good images, defect images by type, optional masks.

Layouts read by :func:`load_eval_set`:

* **Folders** (MVTec AD style): ``DIR/good/*`` and ``DIR/<defect type>/*``;
  ``DIR`` may also be a category root holding ``test/`` (used by default, or
  ``--split NAME`` picks ``DIR/NAME``). Masks, where they exist, are
  ``ground_truth/<defect type>/<stem>_mask.png`` (or ``<stem>.png``) beside
  or inside the class folders' parent; white = defect. A folder named
  ``ground_truth`` or ``masks`` is never a class.
* **CSV manifest**: header ``path,label[,mask]``; ``label`` is ``good`` or a
  defect type; paths relative to the CSV's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recog.data.manifest import open_source, read_rows, resolve
from recog.errors import DatasetError

GOOD = "good"
_MASK_DIRS = ("ground_truth", "masks")
_MASK_EXTS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


@dataclass(frozen=True)
class EvalItem:
    """One test image: its label (``good`` or a defect type) and its mask file, if any."""

    path: Path
    label: str
    mask: Path | None = None

    @property
    def defect(self) -> bool:
        return self.label != GOOD


def load_eval_set(data: str | Path, split: str | None = None) -> tuple[list[EvalItem], str]:
    """``(items, split name)`` from a folder tree or a CSV manifest (see the module docstring).

    Raises:
        DatasetError: missing path, no class folders or images, a malformed manifest.
    """
    from recog.io import IMAGE_EXTENSIONS

    path, is_manifest = open_source(data, hint="pass DIR with good/ and one folder per defect type, "
                                               "or a CSV path,label[,mask]")
    if is_manifest:
        return _from_csv(path), "all"
    root, name = path, "all"
    if split is not None:
        root, name = path / split, split
        if not root.is_dir():
            raise DatasetError(f"{path}: has no {split!r} folder.", hint="omit --split to use test/ (or DIR itself)")
    elif (path / "test").is_dir():
        root, name = path / "test", "test"
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and p.name.lower() not in _MASK_DIRS)
    items: list[EvalItem] = []
    mask_roots = [d for d in (root / "ground_truth", root / "masks", root.parent / "ground_truth",
                              path / "ground_truth") if d.is_dir()]
    for cls in classes:
        for f in sorted(cls.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."):
                items.append(EvalItem(f, cls.name, _find_mask(mask_roots, cls.name, f.stem) if cls.name != GOOD else None))
    if not items:
        raise DatasetError(f"{root}: found no images in class folders.",
                           hint="lay the test data out as DIR/good/<image> and DIR/<defect type>/<image>")
    return items, name


def _find_mask(roots: list[Path], label: str, stem: str) -> Path | None:
    for root in roots:
        for name in (f"{stem}_mask", stem):
            for ext in _MASK_EXTS:
                p = root / label / f"{name}{ext}"
                if p.is_file():
                    return p
    return None


def _from_csv(path: Path) -> list[EvalItem]:
    rows = read_rows(path, required=("path", "label"), hint="first line: path,label[,mask] (label: good or a defect type)")
    return [EvalItem(resolve(path, row["path"]), row["label"], resolve(path, row["mask"]) if row.get("mask") else None)
            for _, row in rows]
