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
