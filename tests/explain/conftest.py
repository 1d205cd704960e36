"""Explanation test data: a synthetic pointing-game set on real photographs, and a tiny model trained on it.

Each image is a crop of a real photograph (scikit-image) with one small bright
square pasted at a random place; the square's colour (red or green) is the
class, so the only evidence for the label is inside the square's box. A
4k-parameter resnet-micro at 64 px learns it in a few seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

LABELS = ["green", "red"]
COLOURS = {"red": (255, 40, 40), "green": (40, 255, 40)}
#: original image size (width, height): not the model's, so the test crosses the resize mapping
ORIGINAL = (128, 96)
INPUT = 96  # resnet-micro's last stage is 1/8 of it: 12 x 12 cells, finer than the 20 px square
SQUARE = 20  # pixels of the original image


@dataclass
class Synthetic:
    images: list  # PIL images at ORIGINAL size
    labels: np.ndarray
    boxes: list  # [x1, y1, x2, y2] of the square, original pixels


def make_set(n: int, seed: int) -> Synthetic:
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")]
    w, h = ORIGINAL
    images, labels, boxes = [], [], []
    for _ in range(n):
        photo = photos[rng.integers(len(photos))]
        y0, x0 = rng.integers(0, photo.shape[0] - h * 2), rng.integers(0, photo.shape[1] - w * 2)
        crop = Image.fromarray(np.ascontiguousarray(photo[y0:y0 + 2 * h, x0:x0 + 2 * w, :3])).resize((w, h))
        arr = np.asarray(crop).copy()
        label = int(rng.integers(2))
        x, y = int(rng.integers(0, w - SQUARE)), int(rng.integers(0, h - SQUARE))
        arr[y:y + SQUARE, x:x + SQUARE] = COLOURS[LABELS[label]]
        images.append(Image.fromarray(arr))
        labels.append(label)
        boxes.append([x, y, x + SQUARE, y + SQUARE])
    return Synthetic(images, np.array(labels), boxes)


def train_pointing_model(seed: int = 0, n: int = 256, max_epochs: int = 40):
    """A resnet-micro (96 px, stretch) trained on :func:`make_set` until 97 % train accuracy (at most
    ``max_epochs``); returns (model, preprocessing, train accuracy)."""
    import torch

    from recog.data.transforms import preprocess
    from recog.models import create_model
    from recog.tasks import get_task
    from recog.types import Preprocessing

    torch.manual_seed(seed)
    prep = Preprocessing(size=(INPUT, INPUT), resize="stretch", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    created = create_model("resnet-micro", LABELS, weights="none", image_size=INPUT)
    model, task = created.model, get_task("classify")
    train = make_set(n, seed=seed + 1)
    x = torch.from_numpy(np.stack([preprocess(im, prep) for im in train.images]))
    y = torch.from_numpy(train.labels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for epoch in range(max_epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            loss = torch.nn.functional.cross_entropy(task.forward(model, x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = float((task.forward(model, x).argmax(1) == y).float().mean())
        model.train()
        if acc >= 0.97:
            break
    return model.eval(), prep, acc


@pytest.fixture(scope="session")
def pointing(tmp_path_factory):
    """(bundle path, test set, train accuracy, labels) of the trained pointing-game model."""
    from recog.models import save_bundle

    model, prep, acc = train_pointing_model()
    out = tmp_path_factory.mktemp("explain") / "pointing"
    bundle = save_bundle(out, model, labels=LABELS, preprocessing=prep, source_model="resnet-micro")
    return Path(bundle), make_set(24, seed=123), acc, LABELS


#: the two-object detection set: original size, the model's input, side of the squares (original pixels)
DET_ORIGINAL = 96
DET_INPUT = 64
DET_SQUARE = (18, 26)


@dataclass
class TwoObjects:
    images: list  # PIL images, DET_ORIGINAL square
    boxes: list  # per image: two [x1, y1, x2, y2] boxes of the squares, original pixels


def make_two_objects(n: int, seed: int) -> TwoObjects:
    """Crops of real photographs, each with two red squares of one class ("square") at random, apart."""
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")]
    size = DET_ORIGINAL
    images, boxes = [], []
    for _ in range(n):
        photo = photos[rng.integers(len(photos))]
        y0, x0 = rng.integers(0, photo.shape[0] - 2 * size), rng.integers(0, photo.shape[1] - 2 * size)
        crop = Image.fromarray(np.ascontiguousarray(photo[y0:y0 + 2 * size, x0:x0 + 2 * size, :3]))
        arr = np.asarray(crop.resize((size, size))).copy()
        while True:  # two squares with a gap of at least 4 px between them
            pair = []
            for _ in range(2):
                s = int(rng.integers(*DET_SQUARE))
                x, y = (int(v) for v in rng.integers(0, size - s, 2))
                pair.append([x, y, x + s, y + s])
            a, b = pair
            if a[2] + 4 <= b[0] or b[2] + 4 <= a[0] or a[3] + 4 <= b[1] or b[3] + 4 <= a[1]:
                break
        for x1, y1, x2, y2 in pair:
            arr[y1:y2, x1:x2] = COLOURS["red"]
        images.append(Image.fromarray(arr))
        boxes.append(pair)
    return TwoObjects(images, boxes)


def train_two_object_detector(seed: int = 0, n: int = 96, steps: int = 100):
    """FCOS on EfficientNet-Lite0 (ImageNet backbone frozen, a 32-channel head) trained ``steps`` batches
    of 16 on :func:`make_two_objects` at 64 px through the detect task's loss; returns (model, preprocessing).
    Finds both squares in 12/12 held-out images after 100 steps (about 20 s on one loaded core)."""
    import torch

    from recog.data.transforms import preprocess
    from recog.detect.network import FCOSLite
    from recog.models.efficientnet_lite import IMAGENET_PREPROCESSING
    from recog.tasks import get_task
    from recog.types import Preprocessing

    torch.manual_seed(seed)
    base = IMAGENET_PREPROCESSING["lite0"]
    prep = Preprocessing(size=(DET_INPUT, DET_INPUT), resize="stretch", crop_pct=1.0, mean=base["mean"],
                         std=base["std"])
    train = make_two_objects(n, seed=seed + 1)
    x = torch.from_numpy(np.stack([preprocess(im, prep) for im in train.images]))
    scale = DET_INPUT / DET_ORIGINAL
    y = torch.tensor([[[*(v * scale for v in b), 0.0] for b in pair] for pair in train.boxes], dtype=torch.float32)
    model = FCOSLite("lite0", num_classes=1, channels=32, head_convs=1, frozen_blocks=16).load_pretrained()
    task = get_task("detect")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (16,))
        loss = task.loss(model, x[idx], y[idx])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), prep


@pytest.fixture(scope="session")
def two_objects(tmp_path_factory):
    """(detect bundle path, held-out two-square images) for the pointing game of boxes."""
    import torch

    from recog.models import save_bundle

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny detector's training is deterministic on one thread only (reduction order)
    try:
        model, prep = train_two_object_detector()
    finally:
        torch.set_num_threads(threads)
    out = tmp_path_factory.mktemp("explain") / "squares"
    bundle = save_bundle(out, model, labels=["square"], preprocessing=prep, task="detect",
                         source_model="efficientnet-lite0")
    return Path(bundle), make_two_objects(8, seed=321)


@pytest.fixture
def explain_cli():
    """A Typer app with only ``recog explain``: the tests do not depend on every other command module."""
    import typer

    from recog.cli import explain

    app = typer.Typer()
    explain.register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app
