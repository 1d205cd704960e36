"""Reading box annotations: Pascal VOC XML, COCO JSON, YOLO txt (+ data.yaml) and CSV, auto-detected.

:func:`load_boxes` looks at a path and picks the reader:

=========  ===============================================================  ==========================
format     what is recognised                                               splits
=========  ===============================================================  ==========================
``coco``   a ``.json`` file with ``images``/``annotations``/``categories``;  by file name (train/val/
           or a folder holding such files (``annotations/*.json`` too)       test in it)
``yolo``   ``data.yaml`` (file, or in the folder), or ``labels/`` beside     the yaml's train/val/test,
           ``images/`` with ``classes.txt``                                   or images/{train,val,test}
``voc``    ``*.xml`` files with ``<annotation>`` (``Annotations/`` beside    ImageSets/Main/{train,val,
           ``JPEGImages/``, or next to the images)                          test}.txt
``csv``    a ``.csv`` file ``path,x1,y1,x2,y2,label[,split]`` (a header      the split column
           row optional; a row with empty box fields is a negative image)
=========  ===============================================================  ==========================

A folder that matches more than one is refused with the candidates named:
pass the annotation file itself (the ``.json``, ``data.yaml``, ``.csv``) or
``format=``.

Validation (never a crash): boxes partly outside the image are clipped,
zero-area and inverted boxes dropped, unknown classes dropped, images
without annotations kept as negatives, annotations without an image
skipped; coordinates in the wrong convention (all within 0-1 in a pixel
format, or above 1 in YOLO's normalised one) skip the image with an
explanation. Each is an :class:`~recog.detect.dataset.Issue` naming the
file and, where the format has lines, the line. A file that does not parse
at all raises :class:`~recog.errors.DatasetError` naming file and line.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recog.detect.dataset import SPLIT_ALIASES, BoxDataset, BoxSample, Issue
from recog.errors import DatasetError
from recog.io import IMAGE_EXTENSIONS

FORMATS = ("voc", "coco", "yolo", "csv")
CSV_COLUMNS = ("path", "x1", "y1", "x2", "y2", "label")


# --------------------------------------------------------------------------- validation


class _Checker:
    """Validates one image's boxes (pixels) and collects issues."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, path: Any, line: int | None, kind: str, message: str) -> None:
        self.issues.append(Issue(str(path), line, kind, message))

    def boxes(self, where: Path, raw: Sequence[Sequence[float]], names: Sequence[str], lines: Sequence[int | None],
              size: tuple[int, int] | None, *, pixel_format: bool = True
              ) -> tuple[np.ndarray, tuple[str, ...]] | None:
        """Clip, drop and report; None when the image must be skipped (wrong coordinate convention)."""
        arr = np.asarray(raw, dtype=np.float64).reshape(-1, 4)
        if pixel_format and len(arr) and size is not None and min(size) > 4 and np.all(arr <= 1.0) and arr.max() > 0:
            self.add(where, lines[0] if lines else None, "normalized",
                     f"all {len(arr)} box coordinates are within 0-1 but this format is in pixels of the "
                     f"{size[0]}x{size[1]} image: they look normalised; multiply x by the width and y by the "
                     "height (the image was skipped)")
            return None
        keep_boxes, keep_names = [], []
        for (x1, y1, x2, y2), name, line in zip(arr, names, lines):
            if not np.all(np.isfinite([x1, y1, x2, y2])):
                self.add(where, line, "bad_line", f"box of {name!r} has a non-finite coordinate; dropped")
                continue
            if x2 < x1 or y2 < y1:
                self.add(where, line, "inverted", f"box of {name!r} has x2 < x1 or y2 < y1 "
                         f"({x1:g}, {y1:g}, {x2:g}, {y2:g}); expected [x1, y1, x2, y2] corners; dropped")
                continue
            if size is not None:
                w, h = size
                cx1, cy1, cx2, cy2 = min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)
                if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
                    if cx2 - cx1 <= 0 or cy2 - cy1 <= 0:
                        self.add(where, line, "zero_area", f"box of {name!r} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies "
                                 f"outside the {w}x{h} image; dropped")
                        continue
                    self.add(where, line, "clipped", f"box of {name!r} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) reaches "
                             f"outside the {w}x{h} image; clipped to it")
                x1, y1, x2, y2 = cx1, cy1, cx2, cy2
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                self.add(where, line, "zero_area", f"box of {name!r} has zero area ({x1:g}, {y1:g}, {x2:g}, {y2:g}); "
                         "dropped")
                continue
            keep_boxes.append((x1, y1, x2, y2))
            keep_names.append(str(name))
        return np.asarray(keep_boxes, np.float32).reshape(-1, 4), tuple(keep_names)


def image_frame(source: Path | bytes) -> tuple[int, int] | None:
    """(width, height) of an image file or encoded bytes after EXIF rotation, from the header; None when
    it cannot be read."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError):
        return None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _images_in(folder: Path) -> dict[str, Path]:
    """stem → image path for the image files directly in ``folder``."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}


def _split_of(name: str) -> str | None:
    """``train`` / ``val`` / ``test`` when a file or folder name says so (``instances_val2017``), else None."""
    for token in re.split(r"[^a-z]+", name.lower()):
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    return None


def _finish(root: Path, fmt: str, samples: list[BoxSample], labels: Sequence[str], checker: _Checker) -> BoxDataset:
    if not samples:
        raise DatasetError(f"{root}: no usable images found in the {fmt.upper()} annotations "
                           f"({len(checker.issues)} issue(s): {checker.issues[0] if checker.issues else 'none'}).",
                           hint="run `recog data info` on it for the full list")
    return BoxDataset(root, fmt, tuple(samples), tuple(labels), tuple(checker.issues))


# --------------------------------------------------------------------------- VOC


def _voc_xml_files(root: Path) -> list[Path]:
    folder = root / "Annotations" if (root / "Annotations").is_dir() else root
    return sorted(folder.glob("*.xml"))


def _xml_text(node: ET.Element, tag: str) -> str | None:
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text is not None else None


def _voc_splits(root: Path) -> dict[str, str]:
    """stem → split from ``ImageSets/Main/{train,val,test}.txt`` (``trainval`` only when there is no train)."""
    folder = root / "ImageSets" / "Main"
    out: dict[str, str] = {}
    names = ["train", "val", "test"] if (folder / "train.txt").is_file() else ["trainval", "test"]
    for name in names:
        f = folder / f"{name}.txt"
        if f.is_file():
            for line in f.read_text().split():
                out.setdefault(line.strip(), SPLIT_ALIASES[name])
    return out


def read_voc(root: str | Path) -> BoxDataset:
    """A Pascal VOC folder: ``Annotations/*.xml`` + ``JPEGImages/`` (or XML files beside the images)."""
    root = Path(root)
    xmls = _voc_xml_files(root)
    image_dir = root / "JPEGImages" if (root / "JPEGImages").is_dir() else root
    images = _images_in(image_dir) or _images_in(root)
    splits = _voc_splits(root)
    checker = _Checker()
    samples: list[BoxSample] = []
    seen: set[str] = set()
    for xml in xmls:
        raw = xml.read_bytes()
        try:
            tree = ET.fromstring(raw)
        except ET.ParseError as exc:
            line, col = exc.position
            raise DatasetError(f"{xml}:{line}: not valid XML (column {col}: {exc.msg if hasattr(exc, 'msg') else exc}).",
                               hint="fix or remove the file") from None
        if tree.tag != "annotation":
            checker.add(xml, None, "bad_line", f"root element is <{tree.tag}>, not a VOC <annotation>; file ignored")
            continue
        filename = _xml_text(tree, "filename") or xml.stem
        stem = Path(filename).stem
        path = image_dir / filename if (image_dir / filename).is_file() else images.get(stem) or images.get(xml.stem)
        if path is None:
            checker.add(xml, None, "missing_image", f"its image {filename} is not in {image_dir}; annotations skipped")
            continue
        if str(path) in seen:
            checker.add(xml, None, "duplicate", f"a second annotation file for {path.name}; ignored")
            continue
        seen.add(str(path))
        size_node = tree.find("size")
        size = None
        if size_node is not None:
            try:
                size = (int(float(_xml_text(size_node, "width") or 0)), int(float(_xml_text(size_node, "height") or 0)))
            except ValueError:
                size = None
        if not size or min(size) <= 0:
            size = image_frame(path)
        lines = _xml_lines(raw)
        boxes, names, where = [], [], []
        for k, obj in enumerate(tree.iter("object")):
            name = _xml_text(obj, "name")
            bb = obj.find("bndbox")
            line = lines[k] if k < len(lines) else None
            try:
                coords = [float(_xml_text(bb, t) or "nan") for t in ("xmin", "ymin", "xmax", "ymax")]
            except (ValueError, TypeError, AttributeError):
                checker.add(xml, line, "bad_line", f"<object> {name!r} has no numeric <bndbox>; dropped")
                continue
            if not name:
                checker.add(xml, line, "bad_line", "<object> without a <name>; dropped")
                continue
            boxes.append(coords)
            names.append(name)
            where.append(line)
        checked = checker.boxes(xml, boxes, names, where, size)
        if checked is None:
            continue
        samples.append(BoxSample(path, checked[0], checked[1], splits.get(stem) or splits.get(xml.stem), size))
    for stem, path in images.items():
        if str(path) not in seen:
            checker.add(path, None, "no_labels", "no annotation file; kept as a negative (no objects)")
            samples.append(BoxSample(path, np.zeros((0, 4), np.float32), (), splits.get(stem), image_frame(path)))
    labels = sorted({n for s in samples for n in s.names})
    return _finish(root, "voc", sorted(samples, key=lambda s: str(s.path)), labels, checker)


def _xml_lines(raw: bytes) -> list[int]:
    """1-based line of each ``<object>`` start tag, in document order."""
    text = raw.decode("utf-8", errors="replace")
    return [text.count("\n", 0, m.start()) + 1 for m in re.finditer(r"<object[\s>]", text)]


# --------------------------------------------------------------------------- COCO


def _is_coco(path: Path) -> bool:
    if path.suffix.lower() != ".json" or not path.is_file() or path.stat().st_size > 2_000_000_000:
        return False
    with open(path, "rb") as f:
        head = f.read(65536).decode("utf-8", errors="replace")
    return '"images"' in head or '"annotations"' in head or '"categories"' in head


def _coco_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return [p for folder in (root, root / "annotations") for p in sorted(folder.glob("*.json")) if _is_coco(p)]


def _coco_image(root: Path, json_file: Path, file_name: str) -> Path | None:
    base = root if root.is_dir() else json_file.parent
    for folder in (json_file.parent, base, base / "images", json_file.parent.parent / "images",
                   base / "images" / (_split_of(json_file.stem) or "")):
        p = folder / file_name
        if p.is_file():
            return p
    return None


def read_coco(root: str | Path) -> BoxDataset:
    """COCO detection JSON: one file, or a folder of them (one per split, named train/val/test).

    ``bbox`` is ``[x, y, width, height]`` in pixels; images are looked up beside
    the JSON, in ``images/``, or in ``images/<split>/``. ``iscrowd`` boxes are kept.
    """
    root = Path(root)
    files = _coco_files(root)
    if not files:
        raise DatasetError(f"{root}: no COCO JSON (with images/annotations/categories) found.")
    checker = _Checker()
    samples: list[BoxSample] = []
    categories: dict[int, str] = {}
    for jf in files:
        try:
            data = json.loads(jf.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{jf}:{exc.lineno}: not valid JSON (column {exc.colno}: {exc.msg}).",
                               hint="fix the file, or export it again") from None
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{jf}: not UTF-8 text ({exc}).") from None
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise DatasetError(f"{jf}: expected a COCO object with an `images` list, got "
                               f"{type(data).__name__ if not isinstance(data, dict) else sorted(data)[:5]}.")
        for c in data.get("categories") or []:
            if isinstance(c, dict) and "id" in c and "name" in c:
                categories[int(c["id"])] = str(c["name"])
        split = _split_of(jf.stem) if len(files) > 1 or root.is_dir() else None
        by_image: dict[Any, list[dict]] = {}
        for k, a in enumerate(data.get("annotations") or []):
            if not isinstance(a, dict) or "image_id" not in a:
                checker.add(jf, None, "bad_line", f"annotations[{k}] has no image_id; dropped")
                continue
            by_image.setdefault(a["image_id"], []).append({**a, "_index": k})
        image_ids = set()
        for k, im in enumerate(data["images"]):
            if not isinstance(im, dict) or "file_name" not in im or "id" not in im:
                checker.add(jf, None, "bad_line", f"images[{k}] has no id or file_name; dropped")
                continue
            image_ids.add(im["id"])
            path = _coco_image(root, jf, str(im["file_name"]))
            if path is None:
                checker.add(jf, None, "missing_image", f"images[{k}] {im['file_name']} does not exist; "
                            f"its {len(by_image.get(im['id'], []))} annotation(s) skipped")
                continue
            try:
                size = (int(im["width"]), int(im["height"]))
            except (KeyError, TypeError, ValueError):
                size = image_frame(path)
            boxes, names, where = [], [], []
            for a in by_image.get(im["id"], []):
                bbox, cat = a.get("bbox"), a.get("category_id")
                if cat not in categories:
                    checker.add(jf, None, "unknown_class", f"annotations[{a['_index']}] has category_id {cat!r}, "
                                f"not one of the categories ({', '.join(map(str, sorted(categories)))}); dropped")
                    continue
                if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
                    checker.add(jf, None, "bad_line", f"annotations[{a['_index']}] bbox {bbox!r} is not "
                                "[x, y, width, height]; dropped")
                    continue
                x, y, w, h = map(float, bbox)
                boxes.append((x, y, x + w, y + h))
                names.append(categories[cat])
                where.append(None)
            if not boxes:
                checker.add(path, None, "no_labels", "no annotations; kept as a negative (no objects)")
            checked = checker.boxes(Path(f"{jf} ({im['file_name']})"), boxes, names, where, size)
            if checked is not None:
                samples.append(BoxSample(path, checked[0], checked[1], split, size))
        for image_id in set(by_image) - image_ids:
            checker.add(jf, None, "missing_image", f"{len(by_image[image_id])} annotation(s) name image_id "
                        f"{image_id!r}, which is not in `images`; skipped")
    labels = [categories[k] for k in sorted(categories)]
    return _finish(root, "coco", samples, labels, checker)


# --------------------------------------------------------------------------- YOLO


def _yolo_yaml(root: Path) -> Path | None:
    if root.is_file() and root.suffix.lower() in (".yaml", ".yml"):
        return root
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (root / name).is_file():
            return root / name
    return None


def _label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder in the path becomes ``labels``, extension ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _yolo_names(yaml_file: Path | None, root: Path) -> list[str]:
    if yaml_file is not None:
        import yaml

        try:
            cfg = yaml.safe_load(yaml_file.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise DatasetError(f"{yaml_file}{line}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
        names = cfg.get("names") if isinstance(cfg, dict) else None
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names, key=int)]
        if isinstance(names, list):
            return [str(n) for n in names]
        raise DatasetError(f"{yaml_file}: has no `names:` (a list, or a mapping of class id to name).")
    for f in (root / "classes.txt", root / "labels" / "classes.txt"):
        if f.is_file():
            return [line.strip() for line in f.read_text().splitlines() if line.strip()]
    raise DatasetError(f"{root}: a YOLO layout needs data.yaml (names:) or classes.txt for the class names.")


def _yolo_image_sets(root: Path, yaml_file: Path | None) -> list[tuple[str | None, list[Path]]]:
    """(split, images) per split the yaml names (a folder, or a .txt list of images), else images/{split}/."""
    sets: list[tuple[str | None, list[Path]]] = []
    base = root if root.is_dir() else root.parent
    if yaml_file is not None:
        import yaml

        cfg = yaml.safe_load(yaml_file.read_text()) or {}
        base = (yaml_file.parent / cfg["path"]) if isinstance(cfg.get("path"), str) else yaml_file.parent
        if not base.is_dir():
            base = yaml_file.parent
        for key in ("train", "val", "test"):
            entries = cfg.get(key)
            for entry in entries if isinstance(entries, list) else [entries] if entries else []:
                p = base / str(entry)
                if p.is_file() and p.suffix == ".txt":
                    files = [base / line.strip() for line in p.read_text().splitlines() if line.strip()]
                else:
                    files = _images_recursive(p)
                sets.append((SPLIT_ALIASES.get(key), files))
        if sets:
            return sets
    img_root = base / "images" if (base / "images").is_dir() else base
    split_dirs = [d for d in sorted(img_root.iterdir()) if d.is_dir() and _split_of(d.name)] if img_root.is_dir() else []
    if split_dirs:
        return [(_split_of(d.name), _images_recursive(d)) for d in split_dirs]
    return [(None, _images_recursive(img_root))]


def _images_recursive(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_yolo(root: str | Path) -> BoxDataset:
    """YOLO txt labels (``class cx cy w h``, normalised to 0-1), class names from data.yaml or classes.txt."""
    root = Path(root)
    yaml_file = _yolo_yaml(root)
    labels = _yolo_names(yaml_file, root if root.is_dir() else root.parent)
    checker = _Checker()
    samples: list[BoxSample] = []
    used: set[Path] = set()
    for split, images in _yolo_image_sets(root, yaml_file):
        for image in images:
            txt = _label_path(image)
            size = image_frame(image)
            if not txt.is_file():
                checker.add(image, None, "no_labels", "no label file; kept as a negative (no objects)")
                samples.append(BoxSample(image, np.zeros((0, 4), np.float32), (), split, size))
                continue
            used.add(txt.resolve())
            parsed = _yolo_lines(txt, labels, checker)
            if parsed is None:
                continue
            if size is None:
                checker.add(image, None, "missing_image", "the image header cannot be read; skipped")
                continue
            w, h = size
            raw = [((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
                   for cx, cy, bw, bh in parsed[0]]
            checked = checker.boxes(txt, raw, parsed[1], parsed[2], size, pixel_format=False)
            if checked is not None:
                samples.append(BoxSample(image, checked[0], checked[1], split, size))
    label_dirs = {_label_path(s.path).parent for s in samples}
    for d in label_dirs:
        for txt in sorted(d.glob("*.txt")) if d.is_dir() else []:
            if txt.resolve() not in used and txt.name != "classes.txt":
                checker.add(txt, None, "missing_image", "label file without an image; skipped")
    return _finish(root, "yolo", samples, labels, checker)


def _yolo_lines(txt: Path, labels: Sequence[str], checker: _Checker
                ) -> tuple[list[tuple[float, ...]], list[str], list[int]] | None:
    coords, names, lines = [], [], []
    for n, line in enumerate(txt.read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 5:
            checker.add(txt, n, "bad_line", f"expected `class cx cy w h`, got {line.strip()[:60]!r}; dropped")
            continue
        try:
            cls = int(float(fields[0]))
            values = tuple(float(v) for v in fields[1:5])
        except ValueError:
            checker.add(txt, n, "bad_line", f"expected numbers `class cx cy w h`, got {line.strip()[:60]!r}; dropped")
            continue
        if len(fields) > 5 and len(fields) % 2 == 1:
            checker.add(txt, n, "bad_line", "a segmentation polygon, not a box; dropped (recog reads YOLO boxes)")
            continue
        if not 0 <= cls < len(labels):
            checker.add(txt, n, "unknown_class", f"class id {cls} is not in 0..{len(labels) - 1} "
                        f"({', '.join(labels)}); dropped")
            continue
        if max(values) > 1.0 + 1e-3:
            checker.add(txt, n, "normalized", f"YOLO coordinates are normalised to 0-1 (cx cy w h), but this line "
                        f"has {max(values):g}: they look like pixels; divide x and w by the image width, y and h by "
                        "its height (the image was skipped)")
            return None
        coords.append(values)
        names.append(labels[cls])
        lines.append(n)
    return coords, names, lines


# --------------------------------------------------------------------------- CSV


def read_csv(path: str | Path) -> BoxDataset:
    """``path,x1,y1,x2,y2,label[,split]`` rows (pixels); paths relative to the CSV's folder.

    A header row is optional; an image with no objects is a row with the box fields empty.
    """
    path = Path(path)
    checker = _Checker()
    per_image: dict[Path, dict[str, Any]] = {}
    missing: set[str] = set()
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DatasetError(f"{path}: the CSV file is empty.", hint="expected rows path,x1,y1,x2,y2,label[,split]")
    start = 1 if rows[0] and rows[0][0].strip().lower() in ("path", "image", "file", "filename") else 0
    for n, row in enumerate(rows[start:], start + 1):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < 6 or len(row) > 7:
            checker.add(path, n, "bad_line", f"expected 6 or 7 fields (path,x1,y1,x2,y2,label[,split]), got "
                        f"{len(row)}; row dropped")
            continue
        rel = row[0].strip()
        image = (path.parent / rel) if not Path(rel).is_absolute() else Path(rel)
        if not image.is_file():
            if rel not in missing:
                checker.add(path, n, "missing_image", f"image {rel} does not exist; its rows skipped")
                missing.add(rel)
            continue
        split = SPLIT_ALIASES.get(row[6].strip().lower()) if len(row) == 7 and row[6].strip() else None
        if len(row) == 7 and row[6].strip() and split is None:
            checker.add(path, n, "bad_line", f"split {row[6]!r} is not train/val/test; the image has no split")
        entry = per_image.setdefault(image, {"boxes": [], "names": [], "lines": [], "split": split})
        fields = [c.strip() for c in row[1:6]]
        if not any(fields):
            continue  # a negative image
        try:
            coords = [float(v) for v in fields[:4]]
        except ValueError:
            checker.add(path, n, "bad_line", f"x1,y1,x2,y2 must be numbers, got {','.join(fields[:4])!r}; row dropped")
            continue
        if not fields[4]:
            checker.add(path, n, "bad_line", "the label is empty; row dropped")
            continue
        entry["boxes"].append(coords)
        entry["names"].append(fields[4])
        entry["lines"].append(n)
    samples = []
    for image, e in per_image.items():
        size = image_frame(image)
        if not e["boxes"]:
            checker.add(image, None, "no_labels", "no boxes; kept as a negative (no objects)")
        checked = checker.boxes(path, e["boxes"], e["names"], e["lines"], size)
        if checked is not None:
            samples.append(BoxSample(image, checked[0], checked[1], e["split"], size))
    labels = sorted({n for s in samples for n in s.names})
    return _finish(path, "csv", samples, labels, checker)


def _is_box_csv(path: Path) -> bool:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        for row in csv.reader(f):
            if not row or not any(c.strip() for c in row):
                continue
            if row[0].strip().lower() in ("path", "image", "file", "filename"):
                cols = [c.strip().lower() for c in row]
                return cols[1:5] == ["x1", "y1", "x2", "y2"]
            return len(row) in (6, 7)
    return False


# --------------------------------------------------------------------------- detection


READERS: dict[str, Callable[[Path], BoxDataset]] = {"voc": read_voc, "coco": read_coco, "yolo": read_yolo,
                                                    "csv": read_csv}


def detect_format(path: str | Path) -> str:
    """The box format at ``path`` (``voc``, ``coco``, ``yolo``, ``csv``).

    Raises:
        DatasetError: nothing recognisable, or more than one format (naming each, with how to pick one).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder.")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".csv" and _is_box_csv(path):
            return "csv"
        if suffix == ".json" and _is_coco(path):
            return "coco"
        if suffix in (".yaml", ".yml"):
            return "yolo"
        raise DatasetError(f"{path}: not a box annotation file (expected a COCO .json, a YOLO data.yaml, or a CSV "
                           "path,x1,y1,x2,y2,label[,split]).")
    found = []
    if _coco_files(path):
        found.append(("coco", "COCO JSON " + ", ".join(p.name for p in _coco_files(path)[:3])))
    if _yolo_yaml(path) is not None or ((path / "labels").is_dir() and any((path / "labels").rglob("*.txt"))):
        found.append(("yolo", "YOLO labels/ (or data.yaml)"))
    xmls = _voc_xml_files(path)
    if xmls and b"<annotation" in xmls[0].read_bytes()[:4096]:
        found.append(("voc", f"VOC XML ({len(xmls)} files)"))
    csvs = [p for p in sorted(path.glob("*.csv")) if _is_box_csv(p)]
    if csvs:
        found.append(("csv", f"CSV {csvs[0].name}"))
    if not found:
        raise DatasetError(f"{path}: no box annotations found (looked for VOC Annotations/*.xml, COCO *.json, YOLO "
                           "data.yaml or labels/, and a path,x1,y1,x2,y2,label CSV).",
                           hint="for classification data, drop --task detect")
    if len(found) > 1:
        raise DatasetError(f"{path}: holds more than one annotation format: {'; '.join(d for _, d in found)}.",
                           hint="pass the annotation file itself (the .json, data.yaml or .csv), or format=")
    return found[0][0]


def looks_like_boxes(path: str | Path) -> bool:
    """True when ``path`` holds box annotations in a known format (for routing ``recog data info``)."""
    try:
        detect_format(path)
    except DatasetError as exc:
        return "more than one annotation format" in str(exc)
    return True


def load_boxes(path: str | Path, format: str | None = None) -> BoxDataset:
    """Read box annotations at ``path`` in ``format`` (auto-detected when None).

    Example:
        >>> ds = load_boxes("../shared/data/bccd/BCCD")      # doctest: +SKIP
        >>> ds.format, ds.labels
        ('voc', ('Platelets', 'RBC', 'WBC'))
    """
    fmt = format or detect_format(path)
    if fmt not in READERS:
        raise DatasetError(f"unknown box format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    path = Path(path)
    if fmt == "csv" and path.is_dir():
        csvs = [p for p in sorted(path.glob("*.csv")) if _is_box_csv(p)]
        if not csvs:
            raise DatasetError(f"{path}: no path,x1,y1,x2,y2,label CSV in this folder.")
        path = csvs[0]
    return READERS[fmt](path)
