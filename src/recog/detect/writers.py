"""Writing box data sets: VOC, COCO, YOLO and CSV (``recog data convert``).

Each writer makes a self-contained folder: the images (hard links where
the file system allows, else copies; names made unique) and the
annotations in the target layout, with the splits kept:

* ``voc``: ``JPEGImages/``, ``Annotations/<stem>.xml``, ``ImageSets/Main/<split>.txt``;
* ``coco``: ``images/``, ``annotations/<split>.json`` (``all.json`` without splits);
* ``yolo``: ``images/<split>/``, ``labels/<split>/<stem>.txt``, ``data.yaml``;
* ``csv``: ``images/``, ``boxes.csv`` (``path,x1,y1,x2,y2,label,split``; a negative image is one row
  with empty box fields).

Reading the result back gives the same images, boxes (to 0.01 px; YOLO to
its 6 decimals) and classes.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape

from recog.detect.dataset import BoxDataset, BoxSample
from recog.errors import ConfigError


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _names(samples: tuple[BoxSample, ...]) -> list[str]:
    """A unique file name per image (``stem-2.jpg`` for a second ``stem.jpg``)."""
    seen: dict[str, int] = {}
    out = []
    for s in samples:
        key = s.path.name.lower()
        seen[key] = seen.get(key, 0) + 1
        out.append(s.path.name if seen[key] == 1 else f"{s.path.stem}-{seen[key]}{s.path.suffix}")
    return out


def _size(s: BoxSample) -> tuple[int, int]:
    from recog.detect.formats import image_frame

    size = s.size or image_frame(s.path)
    if size is None:
        raise ConfigError(f"{s.path}: cannot read the image size.")
    return size


def write_voc(ds: BoxDataset, out: Path) -> None:
    for s, name in zip(ds.samples, _names(ds.samples)):
        _place(s.path, out / "JPEGImages" / name)
        w, h = _size(s)
        objects = "".join(
            f"\t<object>\n\t\t<name>{escape(n)}</name>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n"
            f"\t\t\t<xmin>{b[0]:.2f}</xmin>\n\t\t\t<ymin>{b[1]:.2f}</ymin>\n"
            f"\t\t\t<xmax>{b[2]:.2f}</xmax>\n\t\t\t<ymax>{b[3]:.2f}</ymax>\n\t\t</bndbox>\n\t</object>\n"
            for b, n in zip(s.boxes, s.names))
        xml = (f"<annotation>\n\t<folder>JPEGImages</folder>\n\t<filename>{escape(name)}</filename>\n"
               f"\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
               f"{objects}</annotation>\n")
        (out / "Annotations").mkdir(parents=True, exist_ok=True)
        (out / "Annotations" / f"{Path(name).stem}.xml").write_text(xml)
    splits: dict[str, list[str]] = {}
    for s, name in zip(ds.samples, _names(ds.samples)):
        if s.split:
            splits.setdefault(s.split, []).append(Path(name).stem)
    for split, stems in splits.items():
        (out / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(stems) + "\n")


def write_coco(ds: BoxDataset, out: Path) -> None:
    categories = [{"id": k + 1, "name": lab} for k, lab in enumerate(ds.labels)]
    index = {lab: k + 1 for k, lab in enumerate(ds.labels)}
    files: dict[str, dict] = {}
    for s, name in zip(ds.samples, _names(ds.samples)):
        _place(s.path, out / "images" / name)
        doc = files.setdefault(s.split or "all", {"images": [], "annotations": [], "categories": categories})
        w, h = _size(s)
        image_id = len(doc["images"]) + 1
        doc["images"].append({"id": image_id, "file_name": name, "width": w, "height": h})
        for b, n in zip(s.boxes, s.names):
            bw, bh = float(b[2] - b[0]), float(b[3] - b[1])
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": image_id,
                                       "category_id": index[n], "iscrowd": 0, "area": round(bw * bh, 2),
                                       "bbox": [round(float(b[0]), 2), round(float(b[1]), 2), round(bw, 2),
                                                round(bh, 2)]})
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split, doc in files.items():
        (out / "annotations" / f"{split}.json").write_text(json.dumps(doc))


def write_yolo(ds: BoxDataset, out: Path) -> None:
    import yaml

    index = {lab: k for k, lab in enumerate(ds.labels)}
    splits = set()
    for s, name in zip(ds.samples, _names(ds.samples)):
        split = s.split or "train"
        splits.add(split)
        _place(s.path, out / "images" / split / name)
        w, h = _size(s)
        lines = [f"{index[n]} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} "
                 f"{(b[3] - b[1]) / h:.6f}" for b, n in zip(s.boxes, s.names)]
        label = out / "labels" / split / f"{Path(name).stem}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("\n".join(lines) + ("\n" if lines else ""))
    cfg = {"path": ".", **{k: f"images/{k}" for k in ("train", "val", "test") if k in splits},
           "names": dict(enumerate(ds.labels))}
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def write_csv(ds: BoxDataset, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "boxes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "x1", "y1", "x2", "y2", "label", "split"])
        for s, name in zip(ds.samples, _names(ds.samples)):
            _place(s.path, out / "images" / name)
            rel = f"images/{name}"
            if not len(s.boxes):
                w.writerow([rel, "", "", "", "", "", s.split or ""])
            for b, n in zip(s.boxes, s.names):
                w.writerow([rel, *(f"{v:.2f}" for v in b), n, s.split or ""])


WRITERS: dict[str, Callable[[BoxDataset, Path], None]] = {"voc": write_voc, "coco": write_coco, "yolo": write_yolo,
                                                          "csv": write_csv}


def write_boxes(ds: BoxDataset, out: str | Path, format: str) -> Path:
    """Write ``ds`` as ``format`` into the new folder ``out`` (refused when ``out`` exists and is not empty)."""
    if format not in WRITERS:
        raise ConfigError(f"unknown box format {format!r}; expected one of {', '.join(WRITERS)}.")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} already exists and is not empty.", hint="pick a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    WRITERS[format](ds, out)
    return out
