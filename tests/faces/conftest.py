"""Face fixtures: real portraits (scikit-image's astronaut, matplotlib's Grace Hopper), same-person
variants made by crop, flip and brightness, face-free photos (coffee, rocket), and a staff folder.

Everything is session-scoped and uses the HOG detector, so the dlib models load once and each
image is embedded once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

#: Where the face is in each portrait (HOG, upsample 1), [x1, y1, x2, y2].
ASTRONAUT_BOX = (175, 76, 266, 167)
HOPPER_BOX = (180, 139, 367, 326)


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


@pytest.fixture(scope="session")
def face_photos(photos, tmp_path_factory) -> dict[str, Path]:
    """Portraits, their variants and face-free photos as files."""
    out = tmp_path_factory.mktemp("face_photos")
    gh = Image.open(photos["grace_hopper"]).convert("RGB")
    astro = Image.open(photos["astronaut"]).convert("RGB")
    astro_top = astro.crop((60, 0, 400, 300))  # the face, not the helmet lower left
    images = {
        "hopper": gh,
        "hopper_flip": gh.transpose(Image.FLIP_LEFT_RIGHT),
        "hopper_crop": gh.crop((100, 60, 450, 420)),
        "hopper_bright": ImageEnhance.Brightness(gh).enhance(1.35),
        "astronaut_face": astro_top,
        "astronaut_flip": astro_top.transpose(Image.FLIP_LEFT_RIGHT),
        "astronaut_dark": ImageEnhance.Brightness(astro_top).enhance(0.7),
    }
    paths = {name: out / f"{name}.jpg" for name in images}
    for name, img in images.items():
        img.save(paths[name], quality=92)
    for name in ("astronaut", "grace_hopper", "coffee", "rocket"):
        paths[name] = photos[name]
    return paths


@pytest.fixture(scope="session")
def analyzer():
    from recog.faces import FaceAnalyzer

    return FaceAnalyzer()  # HOG, upsample 1


@pytest.fixture(scope="session")
def embedded(analyzer, face_photos) -> dict[str, tuple]:
    """``name -> (FaceDetections, (n, 128) embeddings)`` for every fixture image, computed once."""
    return {name: analyzer.analyze(path) for name, path in face_photos.items()}


def make_staff(root: Path, face_photos: dict[str, Path], photos: dict[str, Path]) -> Path:
    """staff/<person>/ images: 3 usable faces, plus one image without a face, one with two, one corrupt."""
    staff = root / "staff"
    hopper, eileen = staff / "Grace Hopper", staff / "Eileen Collins"
    hopper.mkdir(parents=True)
    eileen.mkdir(parents=True)
    shutil.copy(face_photos["hopper"], hopper / "1.jpg")
    shutil.copy(face_photos["hopper_bright"], hopper / "2.jpg")
    shutil.copy(face_photos["astronaut_face"], eileen / "1.jpg")
    shutil.copy(photos["coffee"], eileen / "coffee.jpg")           # no face
    shutil.copy(photos["astronaut"], eileen / "full.jpg")          # two detections at upsample 1
    (eileen / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)  # truncated JPEG
    return staff


@pytest.fixture
def staff(tmp_path, face_photos, photos) -> Path:
    return make_staff(tmp_path, face_photos, photos)


@pytest.fixture(scope="session")
def random_gallery():
    """Unit-length random embeddings for 50 people x 4 faces (index tests without models)."""
    rng = np.random.default_rng(0)
    v = rng.normal(size=(200, 128)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    names = [f"person-{i // 4:02d}" for i in range(200)]
    return names, v
