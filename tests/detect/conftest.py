"""Fixtures for detection tests: BCCD (skipped when absent), a small synthetic box set, a tiny trained detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

BCCD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "bccd" / "BCCD"


@pytest.fixture(scope="session")
def bccd() -> Path:
    if not (BCCD / "Annotations").is_dir():
        pytest.skip(f"the shared BCCD data is not at {BCCD} (see ../shared/data/README.md)")
    return BCCD


def shapes_image(rng: np.random.Generator, size: tuple[int, int] = (96, 72)) -> tuple[np.ndarray, list, list]:
    """A noisy background with 1-2 filled squares (``square``) and maybe a disc (``disc``): image, boxes, names."""
    w, h = size
    img = (rng.random((h, w, 3)) * 60 + 40).astype(np.uint8)
    boxes, names = [], []
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(1, 3))):
        s = int(rng.integers(14, 26))
        x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        img[y:y + s, x:x + s] = (230, 60, 40)
        boxes.append([x, y, x + s, y + s])
        names.append("square")
    if rng.random() < 0.6:
        r = int(rng.integers(7, 12))
        cx, cy = int(rng.integers(r, w - r)), int(rng.integers(r, h - r))
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (40, 90, 230)
        boxes.append([cx - r, cy - r, cx + r + 1, cy + r + 1])
        names.append("disc")
    return img, boxes, names


def write_voc(root: Path, n: int, seed: int = 0, splits: bool = True) -> Path:
    """A VOC folder of ``n`` synthetic PNG photos (train/val/test split files when ``splits``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    stems = []
    for i in range(n):
        img, boxes, names = shapes_image(rng)
        stem = f"img{i:03d}"
        stems.append(stem)
        Image.fromarray(img).save(root / "JPEGImages" / f"{stem}.png")
        objs = "".join(f"<object><name>{nm}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                       f"<ymax>{b[3]}</ymax></bndbox></object>\n" for b, nm in zip(boxes, names))
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation>\n<filename>{stem}.png</filename>\n<size><width>96</width><height>72</height></size>\n"
            f"{objs}</annotation>\n")
    if splits:
        main = root / "ImageSets" / "Main"
        main.mkdir(parents=True)
        k = int(n * 0.7)
        (main / "train.txt").write_text("\n".join(stems[:k]))
        (main / "val.txt").write_text("\n".join(stems[k:k + (n - k) // 2]))
        (main / "test.txt").write_text("\n".join(stems[k + (n - k) // 2:]))
    return root


@pytest.fixture(scope="session")
def shapes_voc(tmp_path_factory) -> Path:
    return write_voc(tmp_path_factory.mktemp("shapes") / "voc", 40)


@pytest.fixture(scope="session")
def tiny_detector(shapes_voc, tmp_path_factory) -> Path:
    """A detector trained for 2 epochs at 64 px on the synthetic shapes (the pipeline, not accuracy)."""
    from recog.engine.config import load_config
    from recog.engine.train import train

    out = tmp_path_factory.mktemp("runs") / "shapes"
    result = train(load_config({"data": str(shapes_voc), "task": "detect", "epochs": 2, "image_size": 64,
                                "batch_size": 8, "out": str(out), "workers": 1}))
    return result.best
